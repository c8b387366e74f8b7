"""Tiny clips in every container vmafx meets, and the hand-paired truth to score them against.

The truth decodes each input to raw YUV with `-fps_mode passthrough` (every decoded frame, in
order, nothing duplicated or dropped) and scores raw against raw with a bare `ffmpeg -lavfi
libvmaf`: raw video has no timestamps to disagree about, so frame n can only meet frame n. Any
trimming or resampling the truth needs is done by hand on those raw files (or by ffmpeg's own
filters into them), never by vmafx.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs

from testkit.cli import CliRun, run_vmafx
from testkit.media import ffmpeg_run

W, H = 160, 90
FRAME_BYTES = W * H * 3 // 2
#: the rates people meet, as ffmpeg takes them
RATES = {"23.976": "24000/1001", "24": "24", "25": "25", "29.97": "30000/1001", "30": "30", "50": "50",
         "59.94": "60000/1001", "60": "60"}


def _codec(ext: str, quality: str) -> list[str]:
    # "dis": heavy, so that a neighbour's frame scores differently; "mid": an ordinary encode
    x264 = {"ref": "6", "mid": "30", "dis": "44"}[quality]
    vp9 = {"ref": "8", "mid": "40", "dis": "60"}[quality]
    if ext in (".mp4", ".mkv", ".ts", ".mov"):
        return ["-c:v", "libx264", "-preset", "veryfast", "-crf", x264, "-pix_fmt", "yuv420p"]
    if ext in (".webm", ".ivf"):
        return ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "0",
                "-crf", vp9, "-pix_fmt", "yuv420p"]
    if ext == ".obu":
        return ["-c:v", "libsvtav1", "-preset", "12", "-crf", "4" if quality == "ref" else "55",
                "-pix_fmt", "yuv420p"]
    if ext == ".y4m":
        return ["-pix_fmt", "yuv420p"]
    if ext == ".yuv":
        return ["-f", "rawvideo", "-pix_fmt", "yuv420p"]
    raise ValueError(ext)


@attrs.frozen
class Clip:
    path: Path
    rate: str  #: as ffmpeg takes it: "30000/1001"

    @property
    def raw(self) -> bool:
        return self.path.suffix == ".yuv"

    def input_args(self) -> list[str]:
        if self.raw:
            return ["-f", "rawvideo", "-video_size", f"{W}x{H}", "-pixel_format", "yuv420p",
                    "-framerate", self.rate, "-i", str(self.path)]
        return ["-i", str(self.path)]

    def source(self) -> dict[str, Any]:
        """The job file's source table."""
        src: dict[str, Any] = {"uri": str(self.path)}
        if self.raw:
            src["raw"] = {"width": W, "height": H, "pix_fmt": "yuv420p", "fps": float(Fraction(self.rate))}
        return src


def make_reference(folder: Path, ext: str, rate: str, frames: int = 24, source: str = "testsrc2",
                   extra_vf: str | None = None, name: str = "ref") -> Clip:
    """A nearly lossless clip of moving test content."""
    path = folder / f"{name}{ext}"
    vf = ["-vf", extra_vf] if extra_vf else []
    ffmpeg_run("-f", "lavfi", "-i", f"{source}=size={W}x{H}:rate={rate}", "-frames:v", str(frames), *vf,
               *_codec(ext, "ref"), str(path))
    return Clip(path, rate)


def make_distorted(folder: Path, ref: Clip, ext: str, *, vf: str | None = None, rate: str | None = None,
                   name: str = "dis", output_args: Sequence[str] = ()) -> Clip:
    """A heavy lossy encode of `ref` (raw outputs: a lossy encode decoded back to raw)."""
    path = folder / f"{name}{ext}"
    filters = ["-vf", vf] if vf else []
    if ext in (".y4m", ".yuv"):
        lossy = folder / f"{name}-lossy.mkv"
        ffmpeg_run(*ref.input_args(), *filters, *output_args, *_codec(".mkv", "dis"), str(lossy))
        ffmpeg_run("-i", str(lossy), "-fps_mode", "passthrough", *_codec(ext, "dis"), str(path))
    else:
        ffmpeg_run(*ref.input_args(), *filters, *output_args, *_codec(ext, "dis"), str(path))
    return Clip(path, rate or ref.rate)


def decode_raw(clip: Clip, out: Path, vf: str | None = None, frame_bytes: int = FRAME_BYTES) -> int:
    """Every frame ffmpeg decodes from `clip`, in order, as raw yuv420p; returns the frame count."""
    filters = ["-vf", vf] if vf else []
    ffmpeg_run(*clip.input_args(), "-map", "0:v:0", *filters, "-fps_mode", "passthrough", "-f", "rawvideo",
               "-pix_fmt", "yuv420p", str(out))
    size = out.stat().st_size
    assert size % frame_bytes == 0
    return size // frame_bytes


def trim_raw(path: Path, out: Path, start: int, count: int | None = None) -> None:
    """Frames start..start+count of a raw file, by hand."""
    data = path.read_bytes()[start * FRAME_BYTES:]
    if count is not None:
        data = data[:count * FRAME_BYTES]
    out.write_bytes(data)


def bare_raw_vmaf(ref_yuv: Path, dis_yuv: Path, log: Path, size: str = f"{W}x{H}") -> dict[str, Any]:
    """A bare libvmaf run on two raw files: it can only pair frame n with frame n."""
    raw = ["-f", "rawvideo", "-video_size", size, "-pixel_format", "yuv420p", "-framerate", "25"]
    ffmpeg_run(*raw, "-i", str(dis_yuv), *raw, "-i", str(ref_yuv), "-lavfi",
               f"[0:v][1:v]libvmaf=model=version=vmaf_v0.6.1:log_fmt=json:log_path={log}:n_threads=2",
               "-f", "null", "-")
    data: dict[str, Any] = json.loads(log.read_text())
    return data


def run_job(folder: Path, ref: Clip, dis: Clip, *flags: str, alignment: dict[str, Any] | None = None,
            name: str = "job") -> tuple[CliRun, list[float]]:
    """vmafx on the pair through a job file; returns the run and its per-frame VMAF."""
    job = {"reference": ref.source(), "distorted": dis.source(), "scorer": {"name": "libvmaf", "n_threads": 2}}
    if alignment:
        job["alignment"] = alignment
    job_file, frames = folder / f"{name}.json", folder / f"{name}-frames.json"
    job_file.write_text(json.dumps(job))
    if frames.exists():
        os.unlink(frames)
    out = run_vmafx("run", "--job", str(job_file), "--json", "--frames", str(frames), *flags)
    per_frame = [row["vmaf"] for row in json.loads(frames.read_text())] if out.code == 0 else []
    return out, per_frame


def assert_matches(out: CliRun, per_frame: list[float], truth: dict[str, Any]) -> dict[str, Any]:
    """vmafx equals the hand-paired truth: 1e-4 on the pooled mean and on every frame."""
    assert out.code == 0, out.stderr
    result: dict[str, Any] = out.json()
    expected = [f["metrics"]["vmaf"] for f in truth["frames"]]
    assert len(per_frame) == len(expected), (len(per_frame), len(expected))
    assert abs(result["metrics"]["vmaf"]["mean"] - truth["pooled_metrics"]["vmaf"]["mean"]) < 1e-4, \
        (result["metrics"]["vmaf"]["mean"], truth["pooled_metrics"]["vmaf"]["mean"])
    worst = max(abs(a - b) for a, b in zip(per_frame, expected, strict=True))
    assert worst < 1e-4, f"a frame differs by {worst}"
    return result


def encode_clip(src: Clip, path: Path, quality: str = "ref", vf: str | None = None) -> Clip:
    """`src` encoded into `path` (its extension picks the codec), nearly lossless or heavily lossy."""
    filters = ["-vf", vf] if vf else []
    ffmpeg_run(*src.input_args(), *filters, *_codec(path.suffix, quality), str(path))
    return Clip(path, src.rate)


def raw_frames(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [data[i:i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]


def write_raw(path: Path, frames: Sequence[bytes], rate: str) -> Clip:
    path.write_bytes(b"".join(frames))
    return Clip(path, rate)
