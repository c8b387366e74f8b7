"""The built-in sample: a synthetic reference and an x264 encode of it, made by ffmpeg here.

No download and no cloud account: ffmpeg's testsrc2 pattern gives a moving, detailed picture, and
a low-bitrate, downscaled x264 encode of it gives a distorted with a VMAF well below 100.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from vmafx_core.errors import EnvironmentMissing
from vmafx_core.ffmpeg import find_ffmpeg
from vmafx_core.process import child_environment

WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 25, 4


def make_sample(folder: Path, ffmpeg: str | None = None) -> tuple[Path, Path]:
    """Create (or reuse) `folder`/reference.mp4 and `folder`/distorted.mp4."""
    exe = find_ffmpeg(ffmpeg)
    folder.mkdir(parents=True, exist_ok=True)
    ref, dis = folder / "reference.mp4", folder / "distorted.mp4"
    if not ref.exists():
        _ffmpeg(exe, ["-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={SECONDS}",
                      "-c:v", "libx264", "-preset", "medium", "-crf", "10", "-pix_fmt", "yuv420p"], ref)
    if not dis.exists():
        _ffmpeg(exe, ["-i", str(ref), "-vf", f"scale={WIDTH // 2}:{HEIGHT // 2}",
                      "-c:v", "libx264", "-preset", "fast", "-b:v", "150k", "-pix_fmt", "yuv420p"], dis)
    return ref, dis


def _ffmpeg(exe: str, args: list[str], out: Path) -> None:
    tmp = out.with_name(f".{out.name}.part.mp4")
    proc = subprocess.run([exe, "-hide_banner", "-nostdin", "-v", "error", "-y", *args, str(tmp)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, env=child_environment())
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise EnvironmentMissing(f"ffmpeg could not make the sample: {proc.stderr.strip()[-300:]}")
    tmp.replace(out)
