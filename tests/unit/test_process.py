"""The child-process owner: waiting, and stopping what is still running when vmafx exits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testkit.procs import alive
from vmafx_core.process import Child


def test_child_wait_times_out_while_running_and_returns_the_code_after() -> None:
    child = Child([sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(7)"], name="waiter",
                  stdin=subprocess.PIPE)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.05)
        assert child.proc.stdin is not None
        child.proc.stdin.close()  # now it exits
        assert child.wait(timeout=30) == 7
        assert child.wait(timeout=0) == 7  # a reaped child answers at once
    finally:
        child.stop()
    assert not alive(child.pid)


def test_children_still_running_at_exit_are_stopped_quietly() -> None:
    code = ("import sys; from vmafx_core.process import Child; "
            "c = Child(['sleep', '300'], name='sleeper'); print(c.pid, flush=True); sys.exit(0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert not alive(int(done.stdout))
