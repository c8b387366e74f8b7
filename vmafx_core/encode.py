"""Encode, then score: the encoded stream flows from the encoder into the scorer through a pipe.

The encoder ffmpeg reads the reference (through whatever storage prepared it) and writes NUT, a
streamable container that carries every codec, to its stdout. A relay thread copies that into the
scorer's stdin, counting bytes and, with `--save-encode`, writing the same bytes to the stream the
destination's storage backend opened (`StorageBackend.write`: a local file, `rclone rcat`, ...).
The reference is read twice, once by each ffmpeg: the two processes are then coupled only through
the pipe, so no encoder lookahead can deadlock them (decoding once and feeding both would need to
buffer the whole lookahead).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import attrs

from vmafx_core.errors import BadInput, JobFailed, VmafxError
from vmafx_core.ffmpeg import InputArgs, StreamInfo
from vmafx_core.job import Encode
from vmafx_core.process import Child, child_environment
from vmafx_core.supervise import last_error
from vmafx_core.types import PreparedInput, RawVideo

CHUNK = 1 << 20


def video_encoders(ffmpeg: str) -> list[str]:
    """Names of the video encoders this ffmpeg has."""
    out = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL, env=child_environment())
    return sorted(m.group(1) for m in re.finditer(r"^\s*V\S*\s+(\S+)\s", out.stdout, re.MULTILINE))


def check_encoder(ffmpeg: str, spec: Encode) -> None:
    """BadInput before anything runs when this ffmpeg has no such encoder."""
    names = video_encoders(ffmpeg)
    if spec.encoder not in names:
        wanted = [n for n in names if n.startswith(("lib", "h26", "av1", "vp", "mpeg"))] or names
        raise BadInput(f"unknown encoder {spec.encoder!r}; this ffmpeg has: {', '.join(wanted)}")


def encoder_args(spec: Encode) -> list[str]:
    """The output options of the encoder ffmpeg, from the structured fields."""
    args = ["-map", "0:v:0", "-an", "-sn", "-dn"]
    if spec.size:
        width, height = spec.size.split("x")
        args += ["-vf", f"scale={width}:{height}:flags=bicubic"]
    args += ["-c:v", spec.encoder]
    if spec.crf is not None:
        args += ["-crf", f"{spec.crf:g}"]
    if spec.bitrate is not None:
        args += ["-b:v", spec.bitrate]
    if spec.preset is not None:
        args += ["-preset", spec.preset]
    if spec.pix_fmt is not None:
        args += ["-pix_fmt", spec.pix_fmt]
    return [*args, *spec.extra_args]


def describe(spec: Encode) -> str:
    parts = [spec.encoder]
    for name in ("crf", "bitrate", "preset", "pix_fmt", "size"):
        value = getattr(spec, name)
        if value is not None:
            parts.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}")
    return "encode:" + ",".join(parts)


@attrs.define
class EncodeRun:
    """A running encode: the input to hand the scorer, and what it measured."""

    prepared: PreparedInput
    spec: Encode
    bytes: int = 0
    started: float = attrs.field(factory=time.monotonic)
    finished: float | None = None
    exit_code: int | None = None
    saved_to: str | None = None

    def report(self, frames: int, fps: float | None) -> dict[str, Any]:
        seconds = (self.finished or time.monotonic()) - self.started
        duration = frames / fps if fps else None
        return {
            "encoder": self.spec.encoder,
            "options": attrs.asdict(self.spec),
            "encoded_bytes": self.bytes,
            "bitrate_bps": round(self.bytes * 8 / duration) if duration else None,
            "encode_seconds": round(seconds, 4),
            "encode_fps": round(frames / seconds, 2) if seconds > 0 else None,
            "saved_to": self.saved_to,
        }


@contextlib.contextmanager
def start(ffmpeg: str, reference: PreparedInput, reference_raw: RawVideo | None, ref_info: StreamInfo,
          spec: Encode, save: str | None = None, sink: IO[bytes] | None = None) -> Iterator[EncodeRun]:
    """Run the encoder; yield the distorted input (a pipe) for the scorer. Always stops the encoder.

    `sink`, when given, receives a copy of the encoded bytes (`save` names it in messages and the
    result); a failure to write there fails the job with one line, after stopping the encoder.
    """
    read_fd, write_fd = os.pipe()
    # the encoder gets the decoded picture, turned by any display matrix
    width, height = (map(int, spec.size.split("x")) if spec.size else ref_info.display_size)
    hint = RawVideo(width=width, height=height, pix_fmt=spec.pix_fmt or ref_info.pix_fmt or "yuv420p",
                    fps=ref_info.fps or 25.0)
    run = EncodeRun(prepared=PreparedInput(role="distorted", url="pipe:0", display=describe(spec),
                                           input_options=("-f", "nut"), stdin_fd=read_fd, stream_hint=hint),
                    spec=spec, saved_to=save)
    encoder: Child | None = None
    relay: threading.Thread | None = None
    failure: list[BaseException] = []
    save_failed: list[VmafxError] = []
    try:
        with InputArgs(reference, reference_raw) as ref_in:
            argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-xerror", *ref_in.args,
                    *encoder_args(spec), "-f", "nut", "pipe:1"]
            encoder = Child(argv, name="ffmpeg encoder", pass_fds=ref_in.pass_fds, stdout=subprocess.PIPE,
                            secrets=reference.secrets, tail_lines=30)
        out = os.fdopen(write_fd, "wb")
        write_fd = -1

        def copy() -> None:
            assert encoder is not None and encoder.proc.stdout is not None
            try:
                with out:
                    while chunk := encoder.proc.stdout.read1(CHUNK):  # type: ignore[attr-defined]
                        run.bytes += len(chunk)
                        if sink is not None:
                            try:
                                sink.write(chunk)
                            except (OSError, VmafxError) as exc:  # stop: the job fails for this
                                save_failed.append(_save_error(save, exc))
                                return
                        out.write(chunk)
            except BaseException as exc:  # the scorer went away: stop relaying, the scorer's error says why
                failure.append(exc)

        relay = threading.Thread(target=copy, name="encode-relay", daemon=True)
        relay.start()

        def encoder_failed() -> JobFailed:
            return JobFailed(f"the encoder {spec.encoder} failed (exit {run.exit_code}): "
                             f"{last_error(encoder.tail())}", detail=encoder.tail(15))

        try:
            yield run
        except Exception as exc:
            # a scorer that saw its input end early is a symptom: report the cause, the saving or the encoder
            if save_failed:
                raise save_failed[0] from exc
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.exit_code = encoder.wait(timeout=2)
            if run.exit_code not in (None, 0):
                raise encoder_failed() from exc
            raise
        if save_failed:
            raise save_failed[0]
        run.exit_code = encoder.wait(timeout=60)
        run.finished = time.monotonic()
        relay.join(timeout=30)
        if save_failed:
            raise save_failed[0]
        if run.exit_code != 0:
            raise encoder_failed()
    finally:
        if encoder is not None:
            encoder.stop(timeout=2.0)
        if relay is not None:
            relay.join(timeout=5)
        for fd in (read_fd, write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _save_error(save: str | None, exc: BaseException) -> VmafxError:
    """A failure to write the saved copy, as one line naming the flag and the destination."""
    what = exc.message if isinstance(exc, VmafxError) else f"{save}: writing failed ({exc.strerror or exc})" \
        if isinstance(exc, OSError) else str(exc)
    return JobFailed(f"--save-encode {what}", detail=getattr(exc, "detail", None))
