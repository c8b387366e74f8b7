"""Signal storms: many real `vmafx run`s, each sent SIGINT or SIGTERM at a random moment.

A signal can land anywhere: during imports, plugin loading, while storage starts (rclone forking,
a mount coming up), while probing or scoring, during cleanup. Each run must exit 130 with one line,
never 0 with a score, and leave nothing: no process carrying its marker, no temp folder or mount
named after its pid.

The delay counts from the moment the run's own signal handlers are installed (SIGTERM shows as
caught in /proc/PID/status): before that, the kernel's default action ends the process, which no
program can change.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs

from testkit.procs import cmdline

RUNS = int(os.environ.get("VMAFX_STORM_RUNS", "100"))  #: per signal and storage mode
PARALLEL = int(os.environ.get("VMAFX_STORM_PARALLEL", "4"))
RUN_MARKER = "VMAFX_STORM_RUN"


@attrs.frozen
class Outcome:
    index: int
    signum: int
    delay: float
    code: int | None
    stdout: str
    stderr: str
    leftovers: tuple[str, ...]

    def problem(self) -> str | None:
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        if self.code != 130:
            return f"exit {self.code}"
        if self.stdout:
            return "printed a result"
        if len(lines) != 1 or not lines[0].startswith("vmafx: error: interrupted"):
            return "stderr is not one 'interrupted' line"
        if self.leftovers:
            return "left " + ", ".join(self.leftovers)
        return None

    def describe(self) -> str:
        name = signal.Signals(self.signum).name
        return (f"run {self.index} ({name} after {self.delay:.3f}s): {self.problem()}\n"
                f"  stderr: {self.stderr.strip()[-1500:]!r}")


def _handlers_installed(pid: int) -> bool:
    """The run's own SIGTERM handler is in place (and this is no longer the forked test process)."""
    if b"vmafx_core" not in cmdline(pid):
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def _marked(marker: str) -> list[int]:
    """Processes whose environment carries `marker` (every child vmafx starts inherits it)."""
    needle = f"{RUN_MARKER}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _left_by(pid: int, marker: str) -> list[str]:
    """What a finished run left: its processes, temp folders, mounts (names carry its pid)."""
    deadline = time.monotonic() + 5  # a child SIGTERMed by the kernel may take a moment to go
    while True:
        left = [f"process {p} ({cmdline(p)[:80]!r})" for p in _marked(marker)]
        tag = f"-{pid}-"
        left += [f"folder {n}" for n in os.listdir(tempfile.gettempdir()) if n.startswith("vmafx-") and tag in n]
        left += [f"mount {line.split()[1]}" for line in Path("/proc/mounts").read_text().splitlines()
                 if tag in line.split()[1] and "vmafx-" in line.split()[1]]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def one_run(index: int, argv: Sequence[str], env: Mapping[str, str], signum: int, delay: float) -> Outcome:
    marker = secrets.token_hex(6)
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, **env, RUN_MARKER: marker})
    deadline = time.monotonic() + 60
    while not _handlers_installed(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(delay)
    proc.send_signal(signum)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        stderr += "\n(test: did not exit within 120 s of the signal)"
    return Outcome(index, signum, delay, proc.returncode, stdout, stderr, tuple(_left_by(proc.pid, marker)))


def storm(argv: Sequence[str], env: Mapping[str, str] | None = None, *, runs: int = RUNS,
          seed: int | None = None) -> list[Outcome]:
    """`runs` SIGINTs and `runs` SIGTERMs at delays drawn uniformly from 0 to 1 s; returns the failures."""
    seed = secrets.randbits(32) if seed is None else seed
    rng = random.Random(seed)  # noqa: S311 - delays, not secrets
    plan = [(i, sig, rng.uniform(0.0, 1.0)) for i, sig in
            enumerate([signal.SIGINT, signal.SIGTERM] * runs)]
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(lambda p: one_run(p[0], argv, env or {}, p[1], p[2]), plan))
    failed = [o for o in outcomes if o.problem()]
    if failed:
        print(f"storm seed {seed}: {len(failed)} of {len(outcomes)} runs failed")
    return failed
