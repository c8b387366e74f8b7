"""Test media made with ffmpeg: a 1080p x264 pair on local disk, and raw YUV objects streamed into S3.

Raw sources go from ffmpeg's stdout straight into a multipart upload, so even the 4 GiB one never
exists on local disk.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from tests.integration.s3server import S3Server

FPS = 25
RAW_WIDTH, RAW_HEIGHT, RAW_PIX_FMT = 1280, 720, "yuv420p"
RAW_FRAME_BYTES = RAW_WIDTH * RAW_HEIGHT * 3 // 2
_PART = 64 * 1024 * 1024


@dataclass(frozen=True)
class Clip:
    """A reference and a distorted x264 encode of it, both local files."""

    ref: Path
    dis: Path
    frames: int
    size: str  #: reference size, e.g. "1920x1080"
    dis_size: str


def make_clip(ffmpeg: str, folder: Path, seconds: float, size: str = "1920x1080", dis_size: str = "1280x720") -> Clip:
    """A synthetic reference (testsrc2, x264 crf 18) and a lower-rung distorted (scaled, crf 32)."""
    ref, dis = folder / "ref.mp4", folder / "dis.mp4"
    frames = round(seconds * FPS)
    common = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    subprocess.run([*common, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}", "-frames:v", str(frames),
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                    "-movflags", "+faststart", str(ref)], check=True)
    w, h = dis_size.split("x")
    subprocess.run([*common, "-i", str(ref), "-vf", f"scale={w}:{h}", "-c:v", "libx264", "-preset", "veryfast",
                    "-crf", "32", "-movflags", "+faststart", str(dis)], check=True)
    return Clip(ref, dis, frames, size, dis_size)


def raw_frames_for(size_bytes: int) -> int:
    """Frames of 720p yuv420p that make about `size_bytes`."""
    return max(1, round(size_bytes / RAW_FRAME_BYTES))


def upload_raw(ffmpeg: str, server: S3Server, bucket: str, key: str, frames: int) -> int:
    """Generate `frames` of raw 720p YUV and stream them into `bucket/key`; return the object size."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
            "-i", f"testsrc2=size={RAW_WIDTH}x{RAW_HEIGHT}:rate={FPS}", "-frames:v", str(frames),
            "-pix_fmt", RAW_PIX_FMT, "-f", "rawvideo", "pipe:1"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        server.client().put_object(bucket, key, cast(BinaryIO, proc.stdout), length=-1, part_size=_PART)
        if proc.wait(60) != 0:
            raise RuntimeError(f"ffmpeg exited {proc.returncode} while generating {key}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    size = int(server.client().stat_object(bucket, key).size or 0)
    if size != frames * RAW_FRAME_BYTES:
        raise RuntimeError(f"{key}: uploaded {size} bytes, expected {frames * RAW_FRAME_BYTES}")
    return size
