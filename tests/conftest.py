"""Shared fixtures: small real videos made by the real ffmpeg, and a way to run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from vmafx_core.ffmpeg import find_ffmpeg

# batches use the result cache by default; tests of scoring must score (tests/cli/test_cache.py
# turns it back on where the cache is what is tested)
os.environ["VMAFX_RESULT_CACHE"] = "off"


@attrs.frozen
class Media:
    folder: Path
    ref: Path
    dis: Path
    short_dis: Path
    ref_yuv: Path
    dis_yuv: Path
    ref_yuv10: Path
    dis_yuv10: Path
    width: int = 320
    height: int = 240
    fps: int = 24
    frames: int = 48


def ffmpeg_run(*args: str) -> None:
    subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True)


def clip_720p(path: Path, seconds: int) -> Path:
    """A 720p x264 clip of `seconds` (25 fps, ultrafast, crf 30): long enough to interrupt, cheap to make."""
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={seconds}", "-c:v", "libx264",
               "-preset", "ultrafast", "-crf", "30", str(path))
    return path


def cut_mkv(folder: Path) -> tuple[Path, Path]:
    """An 8 s Matroska clip and its first half: the half decodes without a single error."""
    full, cut = folder / "full.mkv", folder / "cut.mkv"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=8", "-c:v", "libx264",
               "-preset", "ultrafast", str(full))
    cut.write_bytes(full.read_bytes()[:full.stat().st_size // 2])
    return full, cut


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """A 2 s 320x240 reference, a degraded 160x120 encode of it, a shorter one, and raw YUV pairs."""
    d = tmp_path_factory.mktemp("media")
    ref, dis, short = d / "ref.mp4", d / "dis.mp4", d / "short.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24:duration=2", "-c:v", "libx264", "-crf", "12",
               "-pix_fmt", "yuv420p", str(ref))
    ffmpeg_run("-i", str(ref), "-vf", "scale=160:120", "-c:v", "libx264", "-crf", "34", str(dis))
    ffmpeg_run("-i", str(dis), "-frames:v", "40", "-c", "copy", str(short))
    m = Media(folder=d, ref=ref, dis=dis, short_dis=short, ref_yuv=d / "ref.yuv", dis_yuv=d / "dis.yuv",
              ref_yuv10=d / "ref10.yuv", dis_yuv10=d / "dis10.yuv")
    ffmpeg_run("-i", str(ref), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(m.ref_yuv))
    ffmpeg_run("-i", str(dis), "-vf", "scale=320:240", "-f", "rawvideo", "-pix_fmt", "yuv420p", str(m.dis_yuv))
    ffmpeg_run("-i", str(ref), "-f", "rawvideo", "-pix_fmt", "yuv420p10le", str(m.ref_yuv10))
    ffmpeg_run("-i", str(dis), "-vf", "scale=320:240", "-f", "rawvideo", "-pix_fmt", "yuv420p10le",
               str(m.dis_yuv10))
    return m


@attrs.frozen
class CliRun:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_vmafx(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 300) -> CliRun:
    """Run the real `vmafx` CLI in a child process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "vmafx_core", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def bare_libvmaf(ref: Sequence[str], dis: Sequence[str], log: Path, *, width: int, height: int,
                 model: str = "vmaf_v0.6.1", threads: int = 2) -> dict[str, Any]:
    """Score with a plain ffmpeg libvmaf command line, the way a user would without vmafx."""
    ffmpeg_run(*ref, *dis, "-lavfi",
               f"[1:v]scale={width}:{height}:flags=bicubic,setpts=PTS-STARTPTS[d];[0:v]setpts=PTS-STARTPTS[r];"
               f"[d][r]libvmaf=model=version={model}:log_fmt=json:log_path={log}:n_threads={threads}",
               "-f", "null", "-")
    data: dict[str, Any] = json.loads(log.read_text())
    return data
