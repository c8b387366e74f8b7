"""Test media made by the real ffmpeg, for tests and benchmarks alike.

Small clips for the tests (`make_media`, `clip_720p`, `cut_mkv`), the bare libvmaf score they are
checked against (`bare_libvmaf`), a 1080p x264 pair on local disk (`make_clip`), and raw YUV
objects in S3 (`upload_raw`, `upload_gib_raw`). `upload_raw` streams ffmpeg's stdout straight into
a multipart upload, so even the 4 GiB source of the benchmarks never exists on local disk.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import attrs

from vmafx_core.testing import ffmpeg as testing_ffmpeg

if TYPE_CHECKING:  # the S3 server's modules (docker, minio) load only where a server is used
    from testkit.s3server import S3Server

FPS = 25
RAW_WIDTH, RAW_HEIGHT, RAW_PIX_FMT = 1280, 720, "yuv420p"
RAW_FRAME_BYTES = RAW_WIDTH * RAW_HEIGHT * 3 // 2
_PART = 64 * 1024 * 1024
GIB = 1024 ** 3
BIG_W, BIG_H = 1280, 720


#: the ffmpeg vmafx uses, run quietly (the plugin authors' kit ships it; tests use the same)
ffmpeg_run = testing_ffmpeg


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


def make_media(d: Path) -> Media:
    """A 2 s 320x240 reference, a degraded 160x120 encode of it, a shorter one, and raw YUV pairs, in `d`."""
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


def bare_libvmaf(ref: Sequence[str], dis: Sequence[str], log: Path, *, width: int, height: int,
                 model: str = "vmaf_v0.6.1", threads: int = 2) -> dict[str, Any]:
    """Score with a plain ffmpeg libvmaf command line, the way a user would without vmafx."""
    ffmpeg_run(*ref, *dis, "-lavfi",
               f"[1:v]scale={width}:{height}:flags=bicubic,setpts=PTS-STARTPTS[d];[0:v]setpts=PTS-STARTPTS[r];"
               f"[d][r]libvmaf=model=version={model}:log_fmt=json:log_path={log}:n_threads={threads}",
               "-f", "null", "-")
    data: dict[str, Any] = json.loads(log.read_text())
    return data


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


def upload_gib_raw(s3_server: S3Server, bucket: str, key: str, scratch: Path) -> tuple[int, int]:
    """Make a raw 720p yuv420p source of at least 1 GiB, upload it, delete the local copy.

    Returns (frames, size in bytes).
    """
    frames = -(-GIB // (BIG_W * BIG_H * 3 // 2))
    source = scratch / "big.yuv"
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size={BIG_W}x{BIG_H}:rate=25", "-frames:v", str(frames),
               "-f", "rawvideo", "-pix_fmt", "yuv420p", str(source))
    size = source.stat().st_size
    assert size >= GIB
    s3_server.put_file(bucket, key, source)
    source.unlink()
    return frames, size
