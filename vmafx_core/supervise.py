"""Supervising an ffmpeg that scores (or encodes): the core's one place for it.

Every scorer that runs ffmpeg, the builtin libvmaf one and any plugin's, gets the same care
through these pieces:

- `probe_both` probes both inputs at once (each probe mostly waits on storage);
- `Progress` reads ffmpeg's `-progress` blocks into frames done and fps for the progress bar;
- `watch` waits for the child and stops it when no frame advanced for the stall bound, past the
  job's deadline, as soon as the storage behind an input says it broke, or when the job is
  cancelled (Ctrl-C or SIGTERM included: `ScoreRequest.cancelled` sees those);
- `DECODED_RE`, `ENCODED_RE` and `TRUNCATED_RE` read ffmpeg's own accounting and its short-read
  markers from stderr: what the frame checks compare;
- `run_scoring` runs one scoring ffmpeg under all of the above and returns its accounting;
- `declared_frames` says what each container declares, for the executor's cut-short check;
- `last_error` picks the line of ffmpeg's stderr that best says why it failed.

Messages name both the flag and the job-file field (a batch has no `--stall-timeout`).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

import attrs

from vmafx_core.errors import Interrupted, JobFailed
from vmafx_core.ffmpeg import InputArgs, StreamInfo, parse_stream_info, probe
from vmafx_core.process import Child
from vmafx_core.storagehealth import await_storage_failure, storage_failure
from vmafx_core.types import DeclaredFrames, PreparedInput, RawVideo, ScoreRequest

DECODED_RE = re.compile(r"Input stream #(\d+):(\d+) \(video\): .*?(\d+) frames decoded")
#: the same line's packet accounting: bytes of an input's video packets, the bitrate's numerator
PACKETS_RE = re.compile(r"Input stream #(\d+):(\d+) \(video\): (\d+) packets read \((\d+) bytes\)")
ENCODED_RE = re.compile(r"Output stream #(\d+):\d+ \(video\): (\d+) frames encoded")
#: what ffmpeg says when an input ends before its end: over http, through a mount, or in a file
TRUNCATED_RE = re.compile(r"Stream ends prematurely|partial file|Error during demuxing|"
                           r"Transport endpoint is not connected|Input/output error|Connection reset by peer",
                           re.IGNORECASE)


class Progress:
    """Reads ffmpeg's -progress key=value blocks and reports frames and fps."""

    def __init__(self, total: int | None, callback: Callable[[int, int | None, float], None] | None,
                 estimated: bool = False) -> None:
        self.total = total
        self.callback = callback
        self.estimated = estimated  #: total is a guess: dropped once the count passes it
        self.frame = 0

    def pump(self, stream: IO[bytes]) -> None:
        fps = 0.0
        for raw in stream:
            key, _, value = raw.decode("ascii", "replace").strip().partition("=")
            if key == "frame" and value.isdigit():
                self.frame = int(value)
            elif key == "fps":
                try:
                    fps = float(value)
                except ValueError:
                    pass
            elif key == "progress" and self.callback is not None:
                if self.estimated and self.total is not None and self.frame >= self.total:
                    self.total = None  # the guess was low: show a count, not a full bar that stays full
                self.callback(self.frame, self.total, fps)



def watch(child: Child, progress: Progress, stall_timeout: float, deadline: float | None,
           inputs: list[PreparedInput], cancelled: Callable[[], bool] | None = None) -> int:
    """Wait for ffmpeg, stopping it when no frame advanced for `stall_timeout`, past `deadline`, as
    soon as the storage behind an input reports it broke, or when the job is cancelled."""
    last_frame, last_change = -1, time.monotonic()
    while True:
        try:
            return child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        failure = storage_failure(inputs, f"while scoring (after frame {max(progress.frame, 0)})", child.tail(15))
        if failure is not None:
            child.stop(timeout=1.0)  # its output is of no use any more
            raise failure
        if cancelled is not None and cancelled():
            child.stop(timeout=1.0)
            raise Interrupted(f"the job was cancelled (at frame {max(progress.frame, 0)}); no score is reported")
        now = time.monotonic()
        if progress.frame != last_frame:
            last_frame, last_change = progress.frame, now
        if now - last_change > stall_timeout:
            child.stop(timeout=1.0)
            for prepared in inputs:
                cause = prepared.stall_cause(last_change) if prepared.stall_cause is not None else None
                if cause is not None:
                    raise type(cause)(f"{prepared.role} {prepared.display}: {cause.message}: no frame scored for "
                                      f"{stall_timeout:g}s (after frame {max(last_frame, 0)}; raise --stall-timeout, "
                                      "limits.stall_timeout in a job file, if the storage is just slow); no score is "
                                      "reported", detail=cause.detail or child.tail(15))
            raise JobFailed(f"no frame scored for {stall_timeout:g}s (after frame {max(last_frame, 0)}): "
                            "reading the inputs stalled; raise --stall-timeout (limits.stall_timeout in a "
                            "job file) if the storage is just slow",
                            detail=child.tail(15))
        if deadline is not None and now > deadline:
            child.stop(timeout=1.0)
            raise JobFailed(f"the job ran past its --timeout (limits.timeout in a job file; stopped at frame "
                            f"{max(last_frame, 0)})",
                            detail=child.tail(15))



def probe_both(ffmpeg: str, request: ScoreRequest) -> tuple[StreamInfo, StreamInfo]:
    """Probe both inputs at once: local files by one ffmpeg, others each by its own, side by side
    (each probe is then mostly waiting on storage)."""
    together = _probe_together(ffmpeg, request)
    if together is not None:
        return together
    results: dict[str, StreamInfo | BaseException] = {}

    def run(role: str) -> None:
        prepared = request.reference if role == "reference" else request.distorted
        raw = request.reference_raw if role == "reference" else request.distorted_raw
        try:
            # a pipe cannot be probed without eating it: its producer says what it carries
            results[role] = probe(ffmpeg, prepared, raw or prepared.stream_hint, timeout=request.stall_timeout)
        except BaseException as exc:  # re-raised in the caller's thread
            results[role] = exc

    # daemon threads: an interrupt must not wait for a probe; its ffmpeg is stopped by the CLI
    threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in ("reference", "distorted")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for role in ("reference", "distorted"):
        if isinstance(results[role], BaseException):
            raise results[role]  # type: ignore[misc]
    return results["reference"], results["distorted"]  # type: ignore[return-value]



_SECOND_INPUT_RE = re.compile(r"^Input #1, ", re.MULTILINE)


def _probe_together(ffmpeg: str, request: ScoreRequest) -> tuple[StreamInfo, StreamInfo] | None:
    """Both headers of two local container files read by one ffmpeg: one process start a job
    instead of two, the fixed cost that weighs on a short clip. None when the inputs are not two
    plain local files, or when anything is unexpected: each is then probed alone, and a bad input
    gets its own error as always."""
    inputs = (request.reference, request.distorted)
    if request.reference_raw is not None or request.distorted_raw is not None:
        return None
    if any(p.url_has_secret or p.stdin_fd is not None or p.stream_hint is not None or p.input_options
           or "://" in p.url or p.url.startswith("pipe:") for p in inputs):
        return None
    # verbose, as `ffmpeg.probe`: only then does the stream summary name the chroma location
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "verbose"]
    for prepared in inputs:
        argv += ["-i", prepared.url]
    child = Child(argv, name="ffmpeg-probe", tail_lines=400)
    try:
        child.wait(request.stall_timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        child.stop()
    text = child.tail()
    split = _SECOND_INPUT_RE.search(text)
    if split is None:
        return None
    first, second = parse_stream_info(text[:split.start()]), parse_stream_info(text[split.start():])
    if first is None or second is None:
        return None
    return first, second


#: ffmpeg's lines that name a cause; the first of them is usually the root one
_CAUSE_RE = re.compile(r"corrupt|partial file|ends prematurely|invalid data found|moov atom not found|"
                       r"no such file|permission denied|connection (?:refused|reset)|input/output error|"
                       r"invalid nal|error while decoding|end of file", re.IGNORECASE)
#: lines that look like errors but only say that something failed, or count things
_NOISE_RE = re.compile(r"Conversion failed|Exiting with exit code|decode errors;|packets read|Statistics:",
                       re.IGNORECASE)
_PREFIX_RE = re.compile(r"^(?:\[[^\]]*@ 0x[0-9a-f]+\]\s*)+")


def strip_prefix(line: str) -> str:
    """An ffmpeg log line without its `[demuxer @ 0x...]` prefixes."""
    return _PREFIX_RE.sub("", line.strip())


def last_error(stderr: str) -> str:
    """The line of ffmpeg's stderr that best says why it failed, without its `[demuxer @ 0x...]` prefix."""
    lines = [_PREFIX_RE.sub("", ln.strip()) for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and not _NOISE_RE.search(ln)]
    causes = [ln for ln in lines if _CAUSE_RE.search(ln)]
    if causes:
        return causes[0]
    interesting = [ln for ln in lines
                   if re.search(r"error|fail|invalid|could not|cannot|premature|partial|refused|returned",
                                ln, re.IGNORECASE)]
    if interesting:
        return interesting[-1]
    return lines[-1] if lines else "no message"


def declared_frames(infos: tuple[StreamInfo, StreamInfo], *, reads_all: bool = True,
                    ) -> tuple[DeclaredFrames | None, DeclaredFrames | None]:
    """What each input's container declares, for `ScoreOutput.declared_frames`: the executor fails
    an input that decoded fewer (it was cut short). `reads_all=False` when ffmpeg is expected to
    stop reading early (a frame limit): no count is then comparable."""
    def one(info: StreamInfo) -> DeclaredFrames | None:
        if not reads_all or not info.declared_frames:
            return None
        return DeclaredFrames(info.declared_frames, info.fps)

    return one(infos[0]), one(infos[1])


@attrs.define
class Supervised:
    """What one supervised ffmpeg run left: its exit code and ffmpeg's own accounting."""

    code: int
    decoded: dict[int, int]  #: input index -> frames decoded
    encoded: dict[int, int]  #: output index -> frames that reached it
    cut_short: list[str]  #: ffmpeg's short-read lines
    child: Child
    elapsed: float
    #: (input index, stream index) -> frames decoded: one input may carry several video streams
    stream_decoded: dict[tuple[int, int], int] = attrs.field(factory=dict)
    #: input index -> bytes of its first video stream's packets read
    video_bytes: dict[int, int] = attrs.field(factory=dict)

    def tail(self, lines: int | None = None) -> str:
        return self.child.tail(lines)


def video_read(packet_bytes: int | None, frames: int | None, info: StreamInfo) -> tuple[int, float] | None:
    """(bytes, seconds) of a distorted's video as ffmpeg read it (`Supervised.video_bytes`), for
    `ScoreOutput.distorted_video`: its packets' bytes over the frames decoded at the stream's rate
    (its own duration when the rate is unknown)."""
    if not packet_bytes or not frames or frames < 0:
        return None
    seconds = frames / info.fps if info.fps else info.duration
    return (packet_bytes, seconds) if seconds else None


def expected_frames(request: ScoreRequest, ref: StreamInfo) -> tuple[int | None, bool]:
    """Frames the reference should give, for the progress bar, and whether that is a guess."""
    if request.reference_raw is not None and request.reference.size:
        return request.reference.size // request.reference_raw.frame_bytes, False
    if ref.expected_frames is not None:
        return ref.expected_frames, False
    guess = ref.estimated_frames(request.reference.size)  # through ffconcat: size / bitrate, for the ETA
    return guess, guess is not None


def run_scoring(request: ScoreRequest, ref: StreamInfo, graph: str, outputs: list[str], *,
                on_line: Callable[[str], None] | None = None, pass_fds: Sequence[int] = (),
                started: Callable[[], None] | None = None,
                more_distorted: Sequence[tuple[PreparedInput, RawVideo | None]] = (),
                only_input: PreparedInput | None = None, seeks: Sequence[float | None] = ()) -> Supervised:
    """Run ffmpeg on the request's two inputs (reference as input 0, distorted as input 1) through
    `graph` into `outputs`, with progress, the stall/deadline/storage/cancel watchdog and ffmpeg's
    accounting read from its stderr. `on_line` sees every other stderr line (a filter's own errors);
    `started` is called once the child holds `pass_fds`. `more_distorted` are further inputs (2, 3,
    ...: several distorted against one reference in one pass), watched like the first.
    `only_input` replaces them all: ffmpeg reads that one input (a pipe holding the reference and
    every distorted as its streams: an encode ladder), while the request's inputs stay watched for
    their storage's health. `seeks[i]`, where given, starts input i that many seconds in (a segment
    of a long pair, `vmafx_core.segments`). Raises only for the watchdog's reasons: the caller judges the exit code
    and the counts."""
    stream_decoded: dict[tuple[int, int], int] = {}
    stream_bytes: dict[tuple[int, int], int] = {}
    encoded: dict[int, int] = {}
    cut_short: list[str] = []

    def line(text: str) -> None:
        m = DECODED_RE.search(text)
        e = ENCODED_RE.search(text)
        if m:
            stream_decoded[(int(m.group(1)), int(m.group(2)))] = int(m.group(3))
            b = PACKETS_RE.search(text)
            if b:
                stream_bytes[(int(b.group(1)), int(b.group(2)))] = int(b.group(4))
        elif e:
            encoded[int(e.group(1))] = int(e.group(2))
        elif TRUNCATED_RE.search(text):
            cut_short.append(text.strip())
        if on_line is not None and not m and not e:
            on_line(text)

    expected, estimated = expected_frames(request, ref)
    progress = Progress(expected, request.progress, estimated)
    inputs = [(request.reference, request.reference_raw), (request.distorted, request.distorted_raw),
              *more_distorted]
    watched = [prepared for prepared, _ in inputs]
    if only_input is not None:
        inputs = [(only_input, None)]
    stdin = next((p.stdin_fd for p, _ in inputs if p.stdin_fd is not None), None)
    with contextlib.ExitStack() as opened:
        args = [opened.enter_context(InputArgs(prepared, raw, seeks[i] if i < len(seeks) else None))
                for i, (prepared, raw) in enumerate(inputs)]
        argv = [request.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "verbose", "-xerror",
                "-progress", "pipe:1", *(a for one in args for a in one.args), "-filter_complex", graph, *outputs]
        began = time.monotonic()
        child = Child(argv, name="ffmpeg", pass_fds=[*(fd for one in args for fd in one.pass_fds), *pass_fds],
                      stdout=subprocess.PIPE,
                      stdin=stdin if stdin is not None else subprocess.DEVNULL,
                      secrets=[s for p in [*watched, *([only_input] if only_input else [])] for s in p.secrets],
                      on_stderr_line=line, tail_lines=60)
        if started is not None:
            started()
    with child:
        assert child.proc.stdout is not None
        pump = threading.Thread(target=progress.pump, args=(child.proc.stdout,), daemon=True)
        pump.start()
        code = watch(child, progress, request.stall_timeout, request.deadline, watched, request.cancelled)
        pump.join(timeout=2)
    if code != 0 or cut_short:  # the storage's account of a failed read, when it has one, is the cause
        failure = await_storage_failure(watched, f"while scoring (after frame {max(progress.frame, 0)})",
                                        child.tail(15))
        if failure is not None:
            raise failure
    # an input's frames decoded: those of its first video stream (the lowest index, written last)
    decoded = {i: n for (i, _), n in sorted(stream_decoded.items(), reverse=True)}
    video_bytes = {i: n for (i, _), n in sorted(stream_bytes.items(), reverse=True)}
    return Supervised(code, decoded, encoded, cut_short, child, time.monotonic() - began, stream_decoded,
                      video_bytes)
