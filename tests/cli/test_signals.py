"""Ctrl-C and SIGTERM while scoring: ffmpeg is stopped, temp folders removed, documented exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.media import clip_720p, ffmpeg_run
from testkit.procs import alive, children, cmdline
from vmafx_core.errors import Interrupted
from vmafx_core.executor import run_job
from vmafx_core.job import parse_job
from vmafx_core.plugins import Plugins
from vmafx_core.process import live_children


@pytest.fixture(scope="module")
def long_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("long")
    ref = clip_720p(d / "ref.mp4", 40)
    return ref, ref


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_scoring_stops_everything(long_pair: tuple[Path, Path], sig: int) -> None:
    before = set(os.listdir(tempfile.gettempdir()))
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", str(long_pair[0]), str(long_pair[1])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ffmpeg_pid = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ffmpeg_pid is None:
        for child in children(proc.pid):
            if b"libvmaf" in cmdline(child):
                ffmpeg_pid = child
        time.sleep(0.05)
    assert ffmpeg_pid is not None, "scoring never started"
    time.sleep(0.5)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not alive(ffmpeg_pid)
    leftovers = {n for n in set(os.listdir(tempfile.gettempdir())) - before
                 if n.startswith(f"vmafx-libvmaf-{proc.pid}-")}
    assert not leftovers


def test_children_die_when_vmafx_is_killed_outright(long_pair: tuple[Path, Path], tmp_path: Path) -> None:
    """SIGKILL gives vmafx no chance to clean up: the kernel must end its children."""
    # a temp dir of its own: any other vmafx on the machine would sweep the dead run's folder too
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", str(long_pair[0]), str(long_pair[1])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ffmpeg_pid = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ffmpeg_pid is None:
        for child in children(proc.pid):
            if b"libvmaf" in cmdline(child):
                ffmpeg_pid = child
        time.sleep(0.05)
    assert ffmpeg_pid is not None, "scoring never started"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(ffmpeg_pid):
        time.sleep(0.05)
    assert not alive(ffmpeg_pid)
    # the killed run could not remove its temp folder; the next run does
    left = [n for n in os.listdir(tmp_path) if n.startswith(f"vmafx-libvmaf-{proc.pid}-")]
    assert left
    tiny = long_pair[0].parent / "tiny.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=64x64:rate=5:duration=1", str(tiny))
    again = subprocess.run([sys.executable, "-m", "vmafx_core", "run", str(tiny), str(tiny)], capture_output=True,
                           env=env)
    assert again.returncode == 0
    assert not [n for n in os.listdir(tmp_path) if n.startswith(f"vmafx-libvmaf-{proc.pid}-")]


def _job(ref: Path, dis: Path) -> tuple[Any, Any, Plugins]:
    plugins = Plugins()
    job, options = parse_job({"reference": {"uri": str(ref)}, "distorted": {"uri": str(dis)}}, "test",
                             lambda name: plugins.scorers()[name].item.options_type)
    return job, options, plugins


def test_cancelled_job_stops_its_ffmpeg(long_pair: tuple[Path, Path]) -> None:
    """What a Dask worker relies on: `cancelled()` turning True stops the scoring ffmpeg."""
    job, options, plugins = _job(*long_pair)
    started: list[int] = []

    def cancelled() -> bool:
        scoring = [c.pid for c in live_children() if "libvmaf" in " ".join(c.argv)]
        started.extend(scoring)
        return bool(started)  # cancel as soon as ffmpeg is seen scoring

    before = set(os.listdir(tempfile.gettempdir()))
    with pytest.raises(Interrupted, match="cancelled"):
        run_job(job, options, plugins, cancelled=cancelled)
    assert started, "scoring never started"
    assert not live_children() and not any(alive(pid) for pid in started)
    assert not [n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("vmafx-")]


def test_job_cancelled_before_scoring_starts_nothing(long_pair: tuple[Path, Path]) -> None:
    job, options, plugins = _job(*long_pair)
    with pytest.raises(Interrupted, match="before scoring started"):
        run_job(job, options, plugins, cancelled=lambda: True)
    assert not live_children()
