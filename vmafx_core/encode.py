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
from collections.abc import Iterator, Sequence
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


def scale_filter(spec: Encode) -> str | None:
    """The filter that brings the reference to the rung's `size`, or None to encode it as it is."""
    if not spec.size:
        return None
    width, height = spec.size.split("x")
    return f"scale={width}:{height}:flags=bicubic"


def codec_options(spec: Encode) -> list[tuple[str, str]]:
    """The encoder and its options from the structured fields, as (option, value) pairs."""
    pairs = [("-c:v", spec.encoder), ("-crf", None if spec.crf is None else f"{spec.crf:g}"),
             ("-b:v", spec.bitrate), ("-preset", spec.preset), ("-pix_fmt", spec.pix_fmt)]
    return [(option, value) for option, value in pairs if value is not None]


def encoder_args(spec: Encode) -> list[str]:
    """The output options of the encoder ffmpeg, from the structured fields."""
    args = ["-map", "0:v:0", "-an", "-sn", "-dn"]
    scale = scale_filter(spec)
    if scale:
        args += ["-vf", scale]
    args += [a for pair in codec_options(spec) for a in pair]
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


# --- a ladder: one encoder ffmpeg for every rung -------------------------------------------------

#: the reference travels to the scorer as stream 0 of the shared NUT, as decoded pixels
REFERENCE_CODEC = "rawvideo"


class SharedEncoderFailed(JobFailed):
    """The shared encoder of a ladder exited non-zero: one of its rungs, unknown which, failed."""


class NotShareable(Exception):
    """A rung whose options cannot be written per stream (see `rung_args`): encode it on its own."""


def rung_args(spec: Encode, stream: int) -> list[str]:
    """A rung's encoder options for output stream `stream` of a shared output, each with its stream
    specifier (`-crf:v:2 28`). `extra_args` are read as option/value pairs; anything else is
    `NotShareable`."""
    def own(option: str) -> str:
        return option.split(":", 1)[0] + f":v:{stream}"

    args = [a for option, value in codec_options(spec) for a in (own(option), value)]
    extra = list(spec.extra_args)
    if len(extra) % 2:
        raise NotShareable(f"extra_args {extra!r} are not option/value pairs")
    for option, value in zip(extra[::2], extra[1::2], strict=True):
        if not option.startswith("-") or len(option) < 2 or option[1].isdigit():
            raise NotShareable(f"extra_args {extra!r} are not option/value pairs")
        args += [own(option), value]
    return args


def ladder_argv(ffmpeg: str, ref_args: Sequence[str], specs: Sequence[Encode], rung_urls: Sequence[str]) -> list[str]:
    """The shared encoder: the reference decoded once, split to the raw copy (stream 0) and one
    encoder per rung (stream i+1), all muxed into one NUT on stdout; each rung's stream also goes
    alone to its own NUT (`rung_urls`) through the tee muxer, for its byte count and `--save-encode`.

    `max_interleave_delta 0`: the muxer holds the raw frames until every encoder has caught up,
    however long its lookahead, instead of flushing them early; that queue is inside this one
    process, so the scorer reading the NUT sees the streams interleaved and nothing can deadlock.
    """
    n = len(specs)
    graph = "[0:v:0]split=" + str(n + 1) + "[ref]" + "".join(f"[e{i}]" for i in range(n))
    outputs = ["-map", "[ref]", "-c:v:0", REFERENCE_CODEC]
    for i, spec in enumerate(specs):
        label = f"[e{i}]"
        scale = scale_filter(spec)
        if scale:
            graph += f";{label}{scale}[s{i}]"
            label = f"[s{i}]"
        outputs += ["-map", label, *rung_args(spec, i + 1)]
    slaves = ["[f=nut:onfail=abort]pipe:1",
              *(f"[f=nut:select={i + 1}:onfail=abort]{url}" for i, url in enumerate(rung_urls))]
    return [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-xerror", *ref_args,
            "-filter_complex", graph, *outputs, "-an", "-sn", "-dn", "-max_interleave_delta", "0",
            "-f", "tee", "|".join(slaves)]


@attrs.define
class LadderRun:
    """The shared encode of a ladder: the one input the scorer reads, and each rung's own run."""

    prepared: PreparedInput  #: stream 0 the reference, stream i+1 rung i
    rungs: list[EncodeRun]
    failed: dict[int, VmafxError] = attrs.field(factory=dict)  #: a rung whose saving failed


def rung_hint(spec: Encode, ref_info: StreamInfo) -> RawVideo:
    """What a rung's encode holds, for the scorer's probe (an encode streamed in is never probed)."""
    width, height = (map(int, spec.size.split("x")) if spec.size else ref_info.display_size)
    return RawVideo(width=width, height=height, pix_fmt=spec.pix_fmt or ref_info.pix_fmt or "yuv420p",
                    fps=ref_info.fps or 25.0)


@contextlib.contextmanager
def start_ladder(ffmpeg: str, reference: PreparedInput, reference_raw: RawVideo | None, ref_info: StreamInfo,
                 specs: Sequence[Encode], saves: Sequence[str | None] = (),
                 sinks: Sequence[IO[bytes] | None] = ()) -> Iterator[LadderRun]:
    """Run the shared encoder of a ladder; yield the NUT pipe (reference plus every rung) for the
    scorer. Always stops the encoder. Rung i's own NUT is counted and, when `sinks[i]` is given,
    copied there; a rung whose copy fails is drained on (the others go on) and marked in `failed`."""
    saves = list(saves) or [None] * len(specs)
    sinks = list(sinks) or [None] * len(specs)
    read_fd, write_fd = os.pipe()
    rung_pipes = [os.pipe() for _ in specs]
    run = LadderRun(prepared=PreparedInput(role="distorted", url="pipe:0", display="ladder",
                                           input_options=("-f", "nut"), stdin_fd=read_fd),
                    rungs=[EncodeRun(prepared=PreparedInput(role="distorted", url="pipe:0", display=describe(spec),
                                                            input_options=("-f", "nut"), stdin_fd=read_fd,
                                                            stream_hint=rung_hint(spec, ref_info)),
                                     spec=spec, saved_to=save) for spec, save in zip(specs, saves, strict=True)])
    encoder: Child | None = None
    relays: list[threading.Thread] = []
    try:
        with InputArgs(reference, reference_raw) as ref_in:
            argv = ladder_argv(ffmpeg, ref_in.args, specs, [f"pipe:{w}" for _, w in rung_pipes])
            encoder = Child(argv, name="ffmpeg encoder", pass_fds=[*ref_in.pass_fds, *(w for _, w in rung_pipes)],
                            stdout=write_fd, secrets=reference.secrets, tail_lines=30)
        for fd in (write_fd, *(w for _, w in rung_pipes)):  # the encoder holds them now
            os.close(fd)
        write_fd = -1
        rung_pipes = [(r, -1) for r, _ in rung_pipes]

        def drain(index: int, fd: int) -> None:
            rung, sink = run.rungs[index], sinks[index]
            with os.fdopen(fd, "rb", buffering=0) as source:
                while chunk := source.read(CHUNK):
                    rung.bytes += len(chunk)
                    if sink is not None and index not in run.failed:
                        try:
                            sink.write(chunk)
                        except (OSError, VmafxError) as exc:  # this rung fails; the encoder is drained on
                            run.failed[index] = _save_error(saves[index], exc)

        for index, (fd, _) in enumerate(rung_pipes):
            relays.append(threading.Thread(target=drain, args=(index, fd), name=f"ladder-rung-{index}", daemon=True))
            relays[-1].start()
        rung_pipes = []  # the relays own the read ends

        def encoder_failed(code: int | None) -> JobFailed:
            names = ", ".join(dict.fromkeys(s.encoder for s in specs))
            return SharedEncoderFailed(f"the shared encoder ({names}) failed (exit {code}): "
                                       f"{last_error(encoder.tail())}", detail=encoder.tail(15))

        try:
            yield run
        except Exception as exc:
            code = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = encoder.wait(timeout=2)
            if code not in (None, 0):
                raise encoder_failed(code) from exc
            raise
        code = encoder.wait(timeout=60)
        finished = time.monotonic()
        for relay in relays:
            relay.join(timeout=30)
        for rung in run.rungs:
            rung.exit_code, rung.finished = code, finished
        if code != 0:
            raise encoder_failed(code)
    finally:
        if encoder is not None:
            encoder.stop(timeout=2.0)
        for relay in relays:
            relay.join(timeout=5)
        for fd in (read_fd, write_fd, *(f for pair in rung_pipes for f in pair)):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
