"""The `ffmpeg-metrics` scorer: ffmpeg's own xpsnr, psnr, ssim, vif and msad filters in one pass.

Everything around the filters is the core's, exactly as the builtin libvmaf scorer gets it:
`vmafx_core.alignment.plan_pairing` decides the pairing (deinterlacing, scaling, rate conversion,
offsets, sync) and `Plan.chain` gives each input timestamps that are its frame numbers, so frame n
meets frame n whatever the containers' time bases; `vmafx_core.supervise.run_scoring` runs the one
ffmpeg with progress, the stall/deadline/storage/cancel watchdog and ffmpeg's frame accounting;
`ScoreOutput.declared_frames` (checked by the executor) and the short-read markers refuse an
input that was cut short.

The chosen filters are chained on the distorted: each one passes its main (distorted) frame on
with its values attached as frame metadata, and one `metadata=print` at the end writes every
frame's values to a private temp file (scores only, never media). ffmpeg's own pooled values,
printed when each filter ends, are kept in the provenance as `pooled_by_ffmpeg`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from typing import Any, NewType

import attrs

from vmafx_core import alignment, hookimpl, tempdirs
from vmafx_core.alignment import SIGNATURE_FILTER, Plan
from vmafx_core.errors import JobFailed
from vmafx_core.ffmpeg import StreamInfo, ffmpeg_info, probe
from vmafx_core.job import converter
from vmafx_core.pixfmt import depth_of, scoring_format
from vmafx_core.supervise import declared_frames, last_error, probe_both, run_scoring, strip_prefix, video_read
from vmafx_core.types import CannotShare, PreparedInput, ScoreOutput, Scorer, ScoreRequest

#: the filters this scorer can run, in the order they are chained
FILTERS = ("xpsnr", "psnr", "ssim", "vif", "msad")
#: the metric names each filter gives
METRICS: dict[str, tuple[str, ...]] = {
    "xpsnr": ("xpsnr", "xpsnr_y", "xpsnr_u", "xpsnr_v"),
    "psnr": ("psnr", "psnr_y", "psnr_u", "psnr_v"),
    "ssim": ("ssim", "ssim_y", "ssim_u", "ssim_v"),
    "vif": ("vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3"),
    "msad": ("msad", "msad_y", "msad_u", "msad_v"),
}
#: formats every one of the filters reads; anything else is converted to yuv420p(10le)
_PIX_FMTS = {"yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le"}

#: which filters to run: a list, or one comma-separated string (`--scorer-option metrics=psnr,ssim`)
Metrics = NewType("Metrics", tuple)  # type: ignore[type-arg]


def _structure_metrics(value: Any, _: type) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a non-empty list of metrics ({', '.join(FILTERS)}), got {value!r}")
    unknown = [v for v in value if v not in FILTERS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from {', '.join(FILTERS)}")
    return tuple(f for f in FILTERS if f in value)  # chain order, each once


converter.register_structure_hook(Metrics, _structure_metrics)


@attrs.frozen
class FfmpegMetricsOptions:
    """Options of the ffmpeg-metrics scorer (the job's `scorer` table)."""

    metrics: Metrics = Metrics(FILTERS)


def target_pix_fmt(pix_fmt: str) -> str:
    """The format the filters score a reference decoded as `pix_fmt` in: its layout, 8 or 10 bits
    (`vmafx_core.pixfmt.scoring_format`, the rule libvmaf's scoring follows too)."""
    return scoring_format(pix_fmt, _PIX_FMTS)


def xpsnr_weights(pix_fmt: str) -> tuple[int, int, int]:
    """Y, U, V weights of the combined XPSNR: each plane's share of the samples (4:1:1 for 4:2:0)."""
    if pix_fmt.startswith("yuv444"):
        return (1, 1, 1)
    if pix_fmt.startswith("yuv422"):
        return (2, 1, 1)
    return (4, 1, 1)


def weighted_xpsnr(y: float, u: float, v: float, weights: tuple[int, int, int]) -> float:
    """One XPSNR from the three planes': the weighted mean of their normalised errors, in dB."""
    error = sum(w * 10 ** (-x / 10) for w, x in zip(weights, (y, u, v), strict=True)) / sum(weights)
    return math.inf if error == 0 else -10 * math.log10(error)


def build_filter_graph(options: FfmpegMetricsOptions, plan: Plan, target: str, frames_path: str,
                       signatures: tuple[str, str] | None = None) -> tuple[str, list[str]]:
    """The graph and its outputs: both inputs through their alignment chain, the chosen filters
    chained on the distorted, each with its own copy of the reference.

    As in the libvmaf scorer, when the plan changes how many frames are paired or the pairing is to
    be checked, each chain also feeds a counting output (output 1: reference, 2: distorted).
    """
    filters = options.metrics
    counted = signatures is not None or plan.changes_counts
    n = len(filters)
    ref_labels = "".join(f"[ref{i}]" for i in range(n)) + ("[ref_n]" if counted else "")
    graph = f"[0:v:0]{','.join(plan.chain('reference', target))},split={n + counted}{ref_labels};"
    graph += f"[1:v:0]{','.join(plan.chain('distorted', target))}"
    graph += (",split=2[dis][dis_n];" if counted else "[dis];")
    tap = f",{SIGNATURE_FILTER}" if signatures is not None else ""
    if counted:
        graph += f"[ref_n]null{tap}[ref_count];[dis_n]null{tap}[dis_count];"
    main = "[dis]"
    for i, name in enumerate(filters):
        graph += f"{main}[ref{i}]{name}{'=shortest=1' if counted else ''}[m{i}];"
        main = f"[m{i}]"
    graph += f"{main}metadata=mode=print:file={frames_path}[scored]"
    outputs = ["-map", "[scored]", "-f", "null", "-"]
    if counted:
        for label, path in (("ref_count", signatures[0] if signatures else None),
                            ("dis_count", signatures[1] if signatures else None)):
            outputs += ["-map", f"[{label}]", *(["-f", "rawvideo", path] if path else ["-f", "null", "-"])]
    return graph, outputs


_FRAME_RE = re.compile(r"^frame:(\d+)\s")
_KEYS: dict[str, str] = {
    "lavfi.xpsnr.xpsnr.y": "xpsnr_y", "lavfi.xpsnr.xpsnr.u": "xpsnr_u", "lavfi.xpsnr.xpsnr.v": "xpsnr_v",
    "lavfi.psnr.psnr_avg": "psnr", "lavfi.psnr.psnr.y": "psnr_y", "lavfi.psnr.psnr.u": "psnr_u",
    "lavfi.psnr.psnr.v": "psnr_v",
    "lavfi.ssim.All": "ssim", "lavfi.ssim.Y": "ssim_y", "lavfi.ssim.U": "ssim_u", "lavfi.ssim.V": "ssim_v",
    **{f"lavfi.vif.scale.{i}": f"vif_scale{i}" for i in range(4)},
    "lavfi.msad.msad_avg": "msad", "lavfi.msad.msad.Y": "msad_y", "lavfi.msad.msad.U": "msad_u",
    "lavfi.msad.msad.V": "msad_v",
}


def psnr_cap(pix_fmt: str) -> float:
    """The dB a PSNR or XPSNR of identical planes is reported as: libvmaf's convention, 6 per bit + 12
    (60 dB at 8 bits, 72 at 10), since ffmpeg's infinity has no place in a mean or in JSON."""
    return 6.0 * depth_of(pix_fmt) + 12.0


def cap_infinite(values: dict[str, float], cap: float) -> int:
    """Replace each infinite PSNR/XPSNR in `values` by `cap`; return how many were."""
    capped = 0
    for key, value in values.items():
        if math.isinf(value) and value > 0 and "psnr" in key:
            values[key] = cap
            capped += 1
    return capped


def read_frames(path: str, weights: tuple[int, int, int], tail: str, cap: float = math.inf) -> list[dict[str, float]]:
    """The per-frame values `metadata=print` wrote, named as vmafx names them, with the combined XPSNR;
    an infinite PSNR or XPSNR (identical planes) becomes `cap`."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise JobFailed(f"ffmpeg wrote no per-frame values ({exc})", detail=tail) from None
    frames: list[dict[str, float]] = []
    for line in text.splitlines():
        if _FRAME_RE.match(line):
            frames.append({})
            continue
        key, sep, value = line.strip().partition("=")
        if sep and frames and key in _KEYS:
            frames[-1][_KEYS[key]] = float(value)
    for frame in frames:
        cap_infinite(frame, cap)
        if "xpsnr_y" in frame and "xpsnr_u" in frame:
            frame["xpsnr"] = weighted_xpsnr(frame["xpsnr_y"], frame["xpsnr_u"], frame["xpsnr_v"], weights)
    return frames


_NUM = r"(-?[\d.]+|inf|nan)"
_POOLED: dict[str, re.Pattern[str]] = {
    "xpsnr": re.compile(rf"^XPSNR\s+y:\s*{_NUM}\s+u:\s*{_NUM}\s+v:\s*{_NUM}"),
    "psnr": re.compile(rf"^PSNR y:{_NUM} u:{_NUM} v:{_NUM} average:{_NUM}"),
    "ssim": re.compile(rf"^SSIM Y:{_NUM} \([^)]*\) U:{_NUM} \([^)]*\) V:{_NUM} \([^)]*\) All:{_NUM}"),
    "vif": re.compile(rf"^VIF scale=(\d) average:{_NUM}"),
    "msad": re.compile(rf"^msad Y:{_NUM} U:{_NUM} V:{_NUM} average:{_NUM}"),
}


def read_pooled(line: str, pooled: dict[str, float], weights: tuple[int, int, int], cap: float = math.inf) -> None:
    """ffmpeg's own pooled value of a filter, from the line it prints when it ends (infinite PSNRs
    as `cap`)."""
    text = strip_prefix(line)
    for name, pattern in _POOLED.items():
        m = pattern.match(text)
        if not m:
            continue
        values = [cap if g == "inf" else float(g) for g in m.groups()] if name in ("psnr", "xpsnr") \
            else [float(g) for g in m.groups()]
        if name == "vif":
            pooled[f"vif_scale{int(values[0])}"] = values[1]
        elif name == "xpsnr":
            pooled.update(xpsnr_y=values[0], xpsnr_u=values[1], xpsnr_v=values[2],
                          xpsnr=weighted_xpsnr(values[0], values[1], values[2], weights))
        else:
            names = METRICS[name]
            pooled.update({names[1]: values[0], names[2]: values[1], names[3]: values[2], names[0]: values[3]})
        return


def score(request: ScoreRequest) -> ScoreOutput:
    options: FfmpegMetricsOptions = request.options
    ffmpeg = request.ffmpeg
    ref_info, dis_info = probe_both(ffmpeg, request)
    target = target_pix_fmt(ref_info.pix_fmt)
    weights = xpsnr_weights(target)
    cap = psnr_cap(target)
    plan = alignment.plan_pairing(ffmpeg, request, ref_info, dis_info, target)
    workdir = tempdirs.make("ffmpeg-metrics")
    stack = contextlib.ExitStack()
    try:
        frames_path = os.path.join(workdir, "frames.txt")
        # the pairing check's thumbnails come back on pipes: no media is written to disk
        thumbs = alignment.Thumbnails() if request.alignment.allow_frame_mismatch else None
        if thumbs is not None:
            stack.callback(thumbs.close)
        graph, outputs = build_filter_graph(options, plan, target, frames_path,
                                            thumbs.urls if thumbs is not None else None)
        pooled: dict[str, float] = {}
        run = run_scoring(request, ref_info, graph, outputs, on_line=lambda ln: read_pooled(ln, pooled, weights, cap),
                          pass_fds=thumbs.child_fds if thumbs is not None else (),
                          started=thumbs.started if thumbs is not None else None)
        if run.cut_short:
            # ffmpeg may exit 0 on a stream cut off mid-way: never score what was read of it
            raise JobFailed(f"an input was cut off while reading ({run.cut_short[0]}); no score is reported",
                            detail=run.tail(15))
        if run.code != 0:
            raise JobFailed(f"ffmpeg failed (exit {run.code}): {last_error(run.tail())}", detail=run.tail(15))
        notes: list[str] = []
        frames = read_frames(frames_path, weights, run.tail(15), cap)
        counted = (run.encoded[1], run.encoded[2]) if 1 in run.encoded and 2 in run.encoded else None
        compared = alignment.compared_frames(counted, thumbs, plan, notes)
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return _output(ffmpeg, options, target, cap, weights, frames, pooled, plan, ref_info, dis_info,
                   graph.replace(frames_path, "<frames>"), run.elapsed, run.tail(15),
                   (run.decoded.get(0, -1), run.decoded.get(1, -1)), notes=notes, compared=compared,
                   video=video_read(run.video_bytes.get(1), run.decoded.get(1), dis_info))


def _output(ffmpeg: str, options: FfmpegMetricsOptions, target: str, cap: float, weights: tuple[int, int, int],
            frames: list[dict[str, float]], pooled: dict[str, float], plan: Plan, ref_info: StreamInfo,
            dis_info: StreamInfo, filter_graph: str, elapsed: float, tail: str, decoded: tuple[int, int], *,
            notes: list[str], compared: tuple[int, int] | None = None,
            group: dict[str, Any] | None = None, video: tuple[int, float] | None = None) -> ScoreOutput:
    """One pair's output: the same for a separate run and a shared pass."""
    _check_metrics(frames, options.metrics, tail)
    identical = sum(1 for f in frames if any(v == cap for k, v in f.items() if "psnr" in k))
    if identical:
        notes.append(f"{identical} frame{'s' if identical != 1 else ''} had a plane identical to the reference's: "
                     f"its PSNR/XPSNR (infinite to ffmpeg) is reported as {cap:g} dB, libvmaf's convention")
    rate = float(plan.rate) if plan.rate is not None else ref_info.fps
    provenance = {
        "ffmpeg": ffmpeg_info(ffmpeg).version,
        "ffmpeg_path": ffmpeg,
        "metrics": list(options.metrics),
        "scored_as": target,
        "psnr_cap_db": cap,
        "xpsnr_weights": list(weights) if "xpsnr" in options.metrics else None,
        "filter_graph": filter_graph,
        "alignment": plan.decisions,
        "pooled_by_ffmpeg": pooled,
        "reference_stream": attrs.asdict(ref_info),
        "distorted_stream": attrs.asdict(dis_info),
        "score_seconds": elapsed,
        **({"group": group} if group is not None else {}),
    }
    return ScoreOutput(frames=frames, reference_frames=decoded[0], distorted_frames=decoded[1],
                       provenance=provenance, notes=notes, compared_frames=compared, frame_rate=rate,
                       # with a frame limit ffmpeg stops reading once the pairs are done
                       declared_frames=declared_frames((ref_info, dis_info), reads_all=not plan.frames),
                       distorted_video=video)


_LABEL_RE = re.compile(r"\[(ref\d+|dis|m\d+|scored)\]")
#: a filter instance of pair k is named `<filter>@p<k>`: its end-of-run line says whose it is
_INSTANCE_RE = re.compile(r"\[\w+@p(\d+) @ ")


def score_shared(requests: Sequence[ScoreRequest], shared: PreparedInput | None = None,
                 reference_info: StreamInfo | None = None) -> list[ScoreOutput | Exception]:
    """Several distorted against one reference in one ffmpeg pass, the reference decoded once
    (`Scorer.score_shared`).

    The reference's frames are split to one branch per pair; each pair's graph is exactly the one
    its separate run builds (its alignment chains and filters), its labels renamed and its filters
    named `<filter>@p<k>` so ffmpeg's pooled lines say which pair they are of. Only plain pairings
    share: no sync search, no frame-mismatch scoring, no chain that changes frame counts and no
    input on a pipe but `shared` (an encode ladder: the reference as stream 0, pair k's distorted
    as stream k+1), else `CannotShare` before anything is read.
    """
    first = requests[0]
    options: FfmpegMetricsOptions = first.options
    ffmpeg = first.ffmpeg
    settings = first.alignment
    if (settings.sync == "auto" or settings.allow_frame_mismatch or first.reference.stdin_fd is not None
            or (shared is None and any(r.distorted.stdin_fd is not None for r in requests))):
        raise CannotShare("sync, frame-mismatch scoring or a piped input")
    ref_info = reference_info or probe(ffmpeg, first.reference, first.reference_raw or first.reference.stream_hint,
                                       timeout=first.stall_timeout)
    probed = [probe(ffmpeg, r.distorted, r.distorted_raw or r.distorted.stream_hint, timeout=r.stall_timeout)
              for r in requests]
    target = target_pix_fmt(ref_info.pix_fmt)
    weights, cap = xpsnr_weights(target), psnr_cap(target)
    plans = [alignment.plan_pairing(ffmpeg, r, ref_info, dis_i, target) for r, dis_i in zip(requests, probed,
                                                                                             strict=True)]
    if any(p.changes_counts for p in plans):
        raise CannotShare("a chain changes frame counts")
    n = len(requests)
    workdir = tempdirs.make("ffmpeg-metrics")
    try:
        paths = [os.path.join(workdir, f"frames-{k}.txt") for k in range(n)]
        graphs = [build_filter_graph(options, plan, target, paths[k])[0] for k, plan in enumerate(plans)]
        graph = f"[0:v:0]split={n}" + "".join(f"[r{k}]" for k in range(n)) + ";"
        outputs: list[str] = []
        for k, one in enumerate(graphs):  # the separate run's graph, renamed for pair k
            dis_label = f"[0:v:{k + 1}]" if shared is not None else f"[{k + 1}:v:0]"
            one = _LABEL_RE.sub(lambda m, k=k: f"[p{k}_{m.group(1)}]", one)  # type: ignore[misc]
            for name in options.metrics:
                one = one.replace(f"]{name}[", f"]{name}@p{k}[")
            graph += one.replace("[1:v:0]", dis_label).replace("[0:v:0]", f"[r{k}]") + ";"
            outputs += ["-map", f"[p{k}_scored]", "-f", "null", "-"]
        pooled: list[dict[str, float]] = [{} for _ in range(n)]

        def on_line(line: str) -> None:
            owner = _INSTANCE_RE.search(line)
            if owner is not None and int(owner.group(1)) < n:
                read_pooled(line, pooled[int(owner.group(1))], weights, cap)

        run = run_scoring(first, ref_info, graph.rstrip(";"), outputs, on_line=on_line,
                          more_distorted=[(r.distorted, r.distorted_raw) for r in requests[1:]], only_input=shared)
        if run.cut_short:
            raise JobFailed(f"an input was cut off while reading ({run.cut_short[0]}); no score is reported",
                            detail=run.tail(15))
        if run.code != 0:
            raise JobFailed(f"ffmpeg failed (exit {run.code}): {last_error(run.tail())}", detail=run.tail(15))
        if shared is not None:
            decoded = {i: run.stream_decoded.get((0, i), -1) for i in range(n + 1)}
        else:
            decoded = dict(run.decoded)
        results: list[ScoreOutput | Exception] = []
        for k in range(n):
            try:  # this pair alone: the core scores it again on its own
                frames = read_frames(paths[k], weights, run.tail(15), cap)
                results.append(_output(
                    ffmpeg, options, target, cap, weights, frames, pooled[k], plans[k], ref_info, probed[k],
                    graphs[k].replace(paths[k], "<frames>"), run.elapsed, run.tail(15),
                    (decoded.get(0, -1), decoded.get(k + 1, -1)), notes=[],
                    group={"size": n, "index": k, "reference_decoded_once": True,
                           **({"shared_encode": True} if shared is not None else {})},
                    video=None if shared is not None else video_read(run.video_bytes.get(k + 1),
                                                                      decoded.get(k + 1), probed[k])))
            except Exception as exc:
                results.append(exc)
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


#: a value each filter writes on every frame
_SENTINEL = {"xpsnr": "xpsnr_y", "psnr": "psnr_y", "ssim": "ssim_y", "vif": "vif_scale0", "msad": "msad_y"}


def _check_metrics(frames: Sequence[Mapping[str, float]], chosen: Sequence[str], tail: str) -> None:
    """Every frame carries every chosen filter's values, or no score is reported."""
    for index, frame in enumerate(frames):
        missing = [_SENTINEL[f] for f in chosen if _SENTINEL[f] not in frame]
        if missing:
            raise JobFailed(f"frame {index} has no {missing[0]} value from ffmpeg; no score is reported", detail=tail)


SCORER = Scorer(
    name="ffmpeg-metrics",
    description="XPSNR, PSNR, SSIM, VIF and MSAD through ffmpeg's own filters, in one pass",
    metrics=tuple(m for f in FILTERS for m in METRICS[f]),
    options_type=FfmpegMetricsOptions,
    score=score,
    score_shared=score_shared,
)


@hookimpl
def vmafx_scorers() -> list[Scorer]:
    return [SCORER]
