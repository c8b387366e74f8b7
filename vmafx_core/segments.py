"""One long pair scored as several segments at once, pooled exactly as one run.

A pair of two hours takes hours in one ffmpeg, while libvmaf's own threads help only within one
machine and not linearly. Here the pair is cut into K segments of consecutive paired frames; each
segment is one ffmpeg that starts both inputs at its first frame (ffmpeg's exact seek: decode from
the keyframe before, drop what precedes), so the segments run side by side, and their per-frame
values, joined, are the whole run's.

Why the values are the same, frame for frame:

- **Where a segment starts.** Both inputs' own index (their packets' timestamps, read without
  decoding; a raw file's frame size) says which timestamp frame n has. Only an input whose
  timestamps are those of a constant rate (each within a quarter of a frame of start + n/rate) is
  cut, and a segment seeks to half a frame before its first frame, so it starts on that frame and
  no other. Cut points are placed just after the reference's keyframes, so a segment decodes
  little it does not use.
- **What a frame's score depends on.** libvmaf's only temporal feature is motion: motion2 needs
  the frame before and the one after, the v1 models' a few more. Each segment therefore starts
  `WARM_UP` frames before its first kept frame and reads `LOOK_AHEAD` frames past its last; those
  frames' values are dropped. Under `n_subsample` a segment starts on a multiple of it, so libvmaf
  scores the same frame numbers as the whole run.
- **Every alignment decision** is the whole pair's plan (`alignment.plan_pairing`, made once),
  applied inside each segment; offsets become where each input is seeked to.
- **Checked, not assumed.** Each segment must pair exactly the frames its cut points promise;
  where two segments overlap, the values that do not depend on neighbouring frames (every feature
  but motion and the models built on it) must be identical in both; otherwise the pair is scored
  whole and the result says why.

Where exactness cannot be shown the pair runs whole, and the result's notes and
`provenance.segments.whole_because` say why: a rate conversion or a variable rate (frames chosen
by timestamp), deinterlacing, `--sync auto` (the offset is known only after a search), frame
mismatch scoring, an input read from a pipe, an input without a usable index.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import logging
import os
import statistics
import threading
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import attrs

from vmafx_core import interrupts
from vmafx_core.alignment import Plan, rate_text
from vmafx_core.errors import Interrupted, JobFailed
from vmafx_core.ffmpeg import StreamInfo
from vmafx_core.supervise import declared_frames
from vmafx_core.types import PreparedInput, RawVideo, ScoreOutput, ScoreRequest

log = logging.getLogger(__name__)

#: frames decoded and scored before a segment's first kept frame, their values dropped: more than
#: any libvmaf model's motion reaches back (motion2: one frame; the v1 models' window: four)
WARM_UP = 8
#: frames scored past a segment's last kept frame, dropped: motion2 looks one frame ahead
LOOK_AHEAD = 3
#: `segments = "auto"` splits only pairs of at least this many paired frames per segment (a
#: minute at 25 fps): below that the start-up of an ffmpeg and the warm-up weigh too much, and on
#: one machine libvmaf's threads already share the cores
AUTO_MIN_FRAMES = 1500

Score = Callable[[ScoreRequest, Plan, tuple[float | None, float | None]], ScoreOutput]


class NoIndex(Exception):
    """An input whose frames cannot be located exactly without decoding it: scored whole."""


class Mismatch(JobFailed):
    """A segment did not pair the frames its cut points promised: the pair is scored whole."""


@attrs.frozen
class Index:
    """Where an input's frames are: its frame count and each frame's seek time, from its own index."""

    frames: int
    rate: Fraction
    #: seconds from the input's start (what ffmpeg's `-ss` counts from) to its first frame
    first: float
    #: presentation numbers of its keyframes (every frame of a raw file)
    keyframes: tuple[int, ...]

    def seek_time(self, frame: int) -> float | None:
        """The `-ss` that starts decoding's output on `frame`: half a frame before its timestamp."""
        if frame <= 0:
            return None
        return self.first + (frame - 0.5) / float(self.rate)


def read_index(prepared: PreparedInput, raw: RawVideo | None, timeout: float = 60.0) -> Index:
    """The input's frame index: a raw file's from its size, a container's from its packets' timestamps.

    The packets are read with PyAV (FFmpeg's own demuxers, in this process, so a credential in the
    URL never reaches an argv) and nothing is decoded. `NoIndex` says why an input cannot be cut.
    """
    if prepared.stdin_fd is not None or prepared.url.startswith("pipe:"):
        raise NoIndex(f"{prepared.role} is read from a pipe")
    if raw is not None:
        if prepared.size is None:
            raise NoIndex(f"{prepared.role}: raw video of unknown size")
        rate = _rate(raw.fps)
        count = prepared.size // raw.frame_bytes
        return Index(frames=count, rate=rate, first=0.0, keyframes=tuple(range(count)))
    try:
        import av
    except ImportError:  # pragma: no cover - a core dependency
        raise NoIndex("PyAV is not installed") from None
    url = prepared.url.removeprefix("file:") if prepared.url.startswith("file:/") else prepared.url
    stamps: list[int] = []
    keys: list[int] = []
    try:
        with av.open(url, timeout=timeout) as container:
            if not container.streams.video:
                raise NoIndex(f"{prepared.role} has no video stream")
            stream = container.streams.video[0]
            time_base = stream.time_base
            start = container.start_time  # microseconds; what ffmpeg adds to -ss
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's flush packet
                if packet.pts is None:
                    raise NoIndex(f"{prepared.role}: packets without timestamps")
                stamps.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
    except NoIndex:
        raise
    except Exception as exc:  # noqa: BLE001 - any demuxing failure: scored whole, ffmpeg reports real faults
        raise NoIndex(f"{prepared.role}: its packets could not be read ({type(exc).__name__})") from None
    if time_base is None or len(stamps) < 2:
        raise NoIndex(f"{prepared.role}: too few packets with timestamps")
    stamps.sort()
    if len(set(stamps)) != len(stamps):
        raise NoIndex(f"{prepared.role}: two packets share a timestamp (fields coded apart?)")
    step = statistics.median(b - a for a, b in zip(stamps, stamps[1:], strict=False))
    rate = _rate(1 / float(step * time_base))
    frame = 1 / rate  # seconds
    origin = stamps[0]
    for number, stamp in enumerate(stamps):
        if abs(float((stamp - origin) * time_base) - number * float(frame)) > float(frame) / 4:
            raise NoIndex(f"{prepared.role}: its timestamps are not those of a constant rate "
                          f"(frame {number} is off by more than a quarter of a frame)")
    first = float(origin * time_base) - (start / 1_000_000 if start is not None else 0.0)
    keyframes = tuple(sorted(bisect.bisect_left(stamps, k) for k in keys))
    return Index(frames=len(stamps), rate=rate, first=first, keyframes=keyframes)


def _rate(fps: float) -> Fraction:
    from vmafx_core.alignment import nominal_rate

    rate = nominal_rate(fps)
    if rate is None:
        raise NoIndex("no frame rate")
    return rate


@attrs.frozen
class Part:
    """One segment: the paired frames it scores and keeps, and where each input starts."""

    first: int  #: paired frame number of the segment's first frame (warm-up included)
    keep_from: int  #: first paired frame whose values are kept
    keep_to: int  #: one past the last kept
    frames: int | None  #: paired frames this segment reads (warm-up and look-ahead included)
    seeks: tuple[float | None, float | None]


def plan_parts(count: int, pieces: int, keyframes: Sequence[int], subsample: int = 1,
               limit_reads: int | None = None) -> list[Part] | None:
    """Cut `count` paired frames into at most `pieces` segments; None when it is too short to cut.

    A cut is put `WARM_UP` frames after a keyframe of the reference (paired numbering), the one
    nearest to an even split, so the segment's decoding starts on that keyframe. `limit_reads`:
    the last segment reads to the inputs' end unless the whole run has a frame limit.
    """
    warm = WARM_UP + 2 * (subsample - 1)  # subsampled motion may reach back further
    least = 2 * (warm + LOOK_AHEAD) + 1
    if pieces < 2 or count < 2 * least:
        return None
    cuts: list[int] = []
    usable = [k + warm for k in keyframes if least <= k + warm <= count - least]
    for j in range(1, pieces):
        target = round(j * count / pieces)
        choice = min(usable, key=lambda c: abs(c - target)) if usable else target
        if cuts and choice - cuts[-1] < least:
            continue
        if count - choice < least:
            continue
        cuts.append(choice)
    if not cuts:
        return None
    bounds = [0, *cuts, count]
    parts = []
    for j in range(len(bounds) - 1):
        keep_from, keep_to = bounds[j], bounds[j + 1]
        first = 0 if j == 0 else max(0, (keep_from - warm) // subsample * subsample)
        last = j == len(bounds) - 2
        if not last:
            frames: int | None = min(keep_to + LOOK_AHEAD, count) - first
        else:
            frames = None if limit_reads is None else limit_reads - first
        parts.append(Part(first, keep_from, keep_to, frames, (None, None)))
    return parts


def why_whole(request: ScoreRequest, plan: Plan) -> str | None:
    """Why this pair cannot be cut exactly, from its settings and plan alone; None when it can."""
    settings = request.alignment
    if settings.sync == "auto":
        return "--sync auto: the distorted's offset is known only after a search over the whole start"
    if settings.allow_frame_mismatch:
        return "--allow-frame-mismatch: the pairing check follows the whole pair"
    if request.reference.stdin_fd is not None or request.distorted.stdin_fd is not None:
        return "an input is read from a pipe (an encode)"
    for side in (plan.reference, plan.distorted):
        if side.deinterlace:
            return f"the {side.role} is deinterlaced: a field's neighbours cross the cuts"
        if side.resample_to is not None or side.vfr or side.by_timestamp:
            return (f"the {side.role} is resampled by timestamp (a rate conversion or a variable rate): "
                    "which frames are kept depends on the whole sequence")
    return None


def pieces_wanted(wanted: int | str, count: int, threads: int) -> int:
    """K for `segments = N` (N; `plan_parts` makes fewer of a short pair) or "auto": one per core, at
    most one per `AUTO_MIN_FRAMES` paired frames (README: Segments)."""
    if wanted == "auto":
        return max(1, min(threads, count // AUTO_MIN_FRAMES))
    return int(wanted)


def score(request: ScoreRequest, ref_info: StreamInfo, dis_info: StreamInfo, plan: Plan, one: Score, *,
          whole_graph: str) -> ScoreOutput:
    """The pair scored in segments side by side when that is exact, else whole with the reason noted."""
    options = request.options
    threads = options.threads() if callable(getattr(options, "threads", None)) else (os.cpu_count() or 1)
    reason = why_whole(request, plan)
    parts: list[Part] | None = None
    counts: tuple[int, int] | None = None
    indexes: tuple[Index, Index] | None = None
    if reason is None:
        try:
            with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="vmafx-index") as readers:
                both = [readers.submit(read_index, p, raw, request.stall_timeout)
                        for p, raw in ((request.reference, request.reference_raw),
                                       (request.distorted, request.distorted_raw))]
                indexes = (both[0].result(), both[1].result())
            reason, parts, counts = _cut(request, plan, indexes, threads)
        except NoIndex as exc:
            reason = f"no usable index: {exc}"
    if parts is None or indexes is None or counts is None:
        return _whole(request, plan, one, reason or "too short to cut")
    try:
        return _run(request, (ref_info, dis_info), plan, one, parts, counts, whole_graph)
    except Mismatch as exc:
        log.warning("segments: %s; scoring the pair whole", exc.message)
        return _whole(request, plan, one, exc.message)


def _whole(request: ScoreRequest, plan: Plan, one: Score, reason: str) -> ScoreOutput:
    output = one(request, plan, (None, None))
    note = f"scored whole, not in segments: {reason}"
    return attrs.evolve(output, notes=[*output.notes, note],
                        provenance={**output.provenance, "segments": {"count": 1, "whole_because": reason}})


def _cut(request: ScoreRequest, plan: Plan, indexes: tuple[Index, Index],
         threads: int) -> tuple[str | None, list[Part] | None, tuple[int, int] | None]:
    ref, dis = indexes
    for index, side in zip(indexes, (plan.reference, plan.distorted), strict=True):
        if side.rate is not None and index.rate != side.rate:
            return (f"the {side.role}'s packets say {rate_text(index.rate)} fps, its header "
                    f"{rate_text(side.rate)}"), None, None
    ro, do = plan.reference.offset, plan.distorted.offset
    left = (ref.frames - ro, dis.frames - do)
    if plan.frames is None and left[0] != left[1]:
        return (f"frame counts differ by the index (reference {left[0]}, distorted {left[1]} after "
                "offsets): the whole run says what to do"), None, None
    count = min(left) if plan.frames is None else min(*left, plan.frames)
    pieces = pieces_wanted(request.segments, count, threads)
    if pieces < 2:
        return f"{count} paired frames are too few for --segments auto (at least {2 * AUTO_MIN_FRAMES})", None, None
    subsample = int(getattr(request.options, "n_subsample", 1) or 1)
    # the last segment reads to the end, so its counts are the whole run's; with a frame limit, to it
    last_reads = None if plan.frames is None else count
    parts = plan_parts(count, pieces, [k - ro for k in ref.keyframes], subsample, last_reads)
    if parts is None:
        return f"{count} paired frames are too few for {pieces} segments", None, None
    parts = [attrs.evolve(p, seeks=(ref.seek_time(p.first + ro), dis.seek_time(p.first + do))) for p in parts]
    return None, parts, left


def _run(request: ScoreRequest, infos: tuple[StreamInfo, StreamInfo], plan: Plan, one: Score, parts: list[Part],
         left: tuple[int, int], whole_graph: str) -> ScoreOutput:
    """Run every segment at once (a thread each, an ffmpeg each), rerun a failed one alone, join them."""
    options = request.options
    threads = options.threads() if callable(getattr(options, "threads", None)) else 1
    each = max(1, threads // len(parts))
    part_options = attrs.evolve(options, n_threads=each) if hasattr(options, "n_threads") else options
    stop = threading.Event()
    outer = request.cancelled

    def cancelled() -> bool:
        return stop.is_set() or (outer is not None and outer())

    done = [0] * len(parts)
    lock = threading.Lock()
    total = sum(p.keep_to - p.keep_from for p in parts)

    def progress_of(i: int) -> Callable[[int, int | None, float], None] | None:
        if request.progress is None:
            return None
        callback = request.progress

        def report(frame: int, _total: int | None, fps: float) -> None:
            with lock:
                done[i] = frame
                callback(min(sum(done), total), total, fps * len(parts))

        return report

    def run(i: int) -> ScoreOutput:
        part = parts[i]
        part_plan = attrs.evolve(plan, reference=attrs.evolve(plan.reference, offset=0),
                                 distorted=attrs.evolve(plan.distorted, offset=0),
                                 frames=part.frames if part.frames is not None else _never(left, part.first))
        part_request = attrs.evolve(request, options=part_options, cancelled=cancelled,
                                    progress=progress_of(i), segments=1)
        for attempt in (1, 2):
            try:
                out = one(part_request, part_plan, part.seeks)
                if part.frames is None:  # the limit no input reaches is ours, not the user's
                    out = attrs.evolve(out, notes=[n for n in out.notes
                                                   if not n.startswith(f"asked for {part_plan.frames} frames;")])
                return out
            except JobFailed as exc:
                if attempt == 2 or cancelled() or isinstance(exc, Mismatch) or interrupts.ends_the_run(exc):
                    raise
                log.warning("segment %d of %d failed (%s); running it again alone", i + 1, len(parts),
                            exc.message)
        raise AssertionError("unreachable")

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="vmafx-segment")
    futures = [pool.submit(run, i) for i in range(len(parts))]
    try:
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        failed = [f.exception() for f in futures if f.done() and f.exception() is not None]
        if failed:
            stop.set()  # the others stop their ffmpeg within the watchdog's tick
            concurrent.futures.wait(futures)
            failed = [f.exception() for f in futures if f.exception() is not None]
            # the segment that failed, not the ones stopped because of it
            raise next((e for e in failed if not isinstance(e, Interrupted)), failed[0])  # type: ignore[misc]
        outputs = [f.result() for f in futures]
    finally:
        stop.set()  # Ctrl-C in this thread included: every segment's ffmpeg is stopped before leaving
        pool.shutdown(wait=True)
    return _join(request, infos, plan, parts, outputs, whole_graph, each)


def _never(left: tuple[int, int], first: int) -> int:
    """A frame limit no input reaches: the last segment reads to the end, its counts still taken."""
    return max(left) - first + 1


def _independent(key: str, models: set[str]) -> bool:
    """Whether a per-frame value depends on this frame alone (not motion, not a model built on it)."""
    return "motion" not in key and key not in models and not key.startswith("vmaf")


def _join(request: ScoreRequest, infos: tuple[StreamInfo, StreamInfo], plan: Plan, parts: list[Part],
          outputs: list[ScoreOutput], whole_graph: str, each: int) -> ScoreOutput:
    """The segments' outputs as the whole run's: kept frames in order, counts and checks of the whole."""
    frames: list[dict[str, float]] = []
    numbers: list[int] = []
    seen: dict[int, dict[str, float]] = {}
    models = set()
    for model in getattr(request.options, "models", ()):
        models.add(getattr(model, "metric", None) or "vmaf")
    last = len(parts) - 1
    for i, (part, out) in enumerate(zip(parts, outputs, strict=True)):
        got = out.compared_frames or (out.reference_frames, out.distorted_frames)
        if i != last and got != (part.frames, part.frames):
            raise Mismatch(f"segment {i + 1} paired {got[0]}/{got[1]} frames where its cut points promise "
                           f"{part.frames}")
        local_numbers = list(out.frame_numbers) or list(range(len(out.frames)))
        for number, values in zip(local_numbers, out.frames, strict=True):
            n = part.first + number
            earlier = seen.get(n)
            if earlier is not None:
                for key, value in values.items():
                    if _independent(key, models) and key in earlier and earlier[key] != value:
                        raise Mismatch(f"segment {i + 1} does not start on the frame its index promised "
                                       f"(frame {n}: {key} {value} against {earlier[key]})")
            seen[n] = dict(values)
            if part.keep_from <= n < part.keep_to:
                numbers.append(n)
                frames.append(dict(values))
    tail = outputs[last]
    tail_got = tail.compared_frames or (tail.reference_frames, tail.distorted_frames)
    first = parts[last].first
    compared = (first + tail_got[0], first + tail_got[1])
    if plan.frames is None:
        decoded = (plan.reference.offset + compared[0], plan.distorted.offset + compared[1])
    else:
        decoded = (-1, -1)
    head = outputs[0]
    provenance: dict[str, Any] = {
        **head.provenance,
        "filter_graph": whole_graph,
        "n_threads": getattr(request.options, "threads", lambda: each)(),
        "score_seconds": max(float(o.provenance.get("score_seconds", 0.0)) for o in outputs),
        "segments": {
            "count": len(parts),
            "n_threads_each": each,
            "warm_up": WARM_UP, "look_ahead": LOOK_AHEAD,
            "parts": [{"frames": [p.keep_from, p.keep_to], "decoded_from": p.first,
                       "seek_s": [None if s is None else round(s, 6) for s in p.seeks],
                       "score_seconds": o.provenance.get("score_seconds")}
                      for p, o in zip(parts, outputs, strict=True)],
        },
    }
    return ScoreOutput(frames=frames, reference_frames=decoded[0], distorted_frames=decoded[1],
                       provenance=provenance, notes=[n for o in outputs for n in o.notes],
                       compared_frames=compared, frame_numbers=numbers, frame_rate=head.frame_rate,
                       # pooled by vmafx from the joined values: libvmaf's own mean of a segment covers
                       # its warm-up too (they differ from the whole run's below 1e-6)
                       subsample=head.subsample, pooled={},
                       declared_frames=declared_frames(infos, reads_all=plan.frames is None))
