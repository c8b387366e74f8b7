"""The builtin scorer: ffmpeg's libvmaf filter.

One ffmpeg process decodes both inputs and scores them. Each input first goes through the chain
`vmafx_core.alignment` plans (deinterlacing, the distorted scaled to the reference's displayed
size, a rate conversion, offsets) and ends with timestamps that are its frame numbers, so libvmaf
pairs frame n with frame n whatever the containers' time bases. libvmaf writes its per-frame
scores to a JSON log in a private temp folder (scores only, never media); ffmpeg's exit statistics
say how many frames each input decoded, which is how a frame-count mismatch or a short read is
caught instead of being scored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from typing import Any, NewType

import attrs

from vmafx_core import alignment, hookimpl, tempdirs
from vmafx_core.alignment import SIGNATURE_FILTER, Plan
from vmafx_core.errors import BadInput, JobFailed
from vmafx_core.ffmpeg import StreamInfo, probe, require_libvmaf
from vmafx_core.job import NonNegativeInt, PositiveInt, converter
from vmafx_core.pixfmt import depth_of, scoring_format
from vmafx_core.scorers.libvmaf.features import FEATURES, FeatureChoice, parse_feature
from vmafx_core.scorers.libvmaf.models import ModelChoice, metric_names, names_in_binary, parse_models
from vmafx_core.supervise import (
    declared_frames,
    last_error,
    probe_both,
    run_scoring,
    strip_prefix,
    video_read,
)
from vmafx_core.types import CannotShare, CommandOption, PreparedInput, ScoreOutput, Scorer, ScoreRequest

#: formats libvmaf reads; anything else is converted to the nearest of these
_VMAF_PIX_FMTS = {"yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le",
                  "yuv420p12le", "yuv422p12le", "yuv444p12le", "yuv420p16le", "yuv422p16le", "yuv444p16le"}

#: one model or several (`models` has the syntax); built-in names are checked against
#: the ffmpeg binary when the job runs, since which ffmpeg is only known then
Models = NewType("Models", tuple)  # type: ignore[type-arg]
#: extra features, each with its options (`features`)
Features = NewType("Features", tuple)  # type: ignore[type-arg]


def _structure_models(value: Any, _: type) -> tuple[ModelChoice, ...]:
    chosen = parse_models(value)
    for model in chosen:
        if not model.is_file and not model.name.startswith("vmaf"):
            raise ValueError(f"unknown model {model.name!r}; `vmafx models` lists the models this ffmpeg has")
    return chosen


def _structure_features(value: Any, _: type) -> tuple[FeatureChoice, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"must be a list of features, got {value!r}")
    return tuple(parse_feature(v) for v in value)


converter.register_structure_hook(Models, _structure_models)
converter.register_structure_hook(Features, _structure_features)
converter.register_unstructure_hook(ModelChoice, lambda m: m.spec())
converter.register_unstructure_hook(FeatureChoice, lambda f: f.spec())


@attrs.frozen
class LibvmafOptions:
    """Options of the libvmaf scorer (the job's `scorer` table)."""

    model: Models = Models((ModelChoice("vmaf_v0.6.1"),))
    features: Features = Features(())
    n_subsample: PositiveInt = PositiveInt(1)
    n_threads: NonNegativeInt = NonNegativeInt(0)  #: 0: all cores

    def threads(self) -> int:
        return self.n_threads or (os.cpu_count() or 1)

    @property
    def models(self) -> tuple[ModelChoice, ...]:
        return tuple(self.model)

    def check(self, ffmpeg: str) -> None:
        """Refuse, before any input is read, a model this ffmpeg does not have."""
        from vmafx_core.scorers.libvmaf.models import check

        check(self.models, ffmpeg)


def _target_pix_fmt(pix_fmt: str) -> str:
    """The format libvmaf scores a reference decoded as `pix_fmt` in (`pixfmt.scoring_format`)."""
    return scoring_format(pix_fmt, _VMAF_PIX_FMTS)


def build_filter_graph(ref: StreamInfo, dis: StreamInfo, options: LibvmafOptions, plan: Plan,
                       log_path: str, signatures: tuple[str, str] | None = None) -> tuple[str, list[str]]:
    """The -filter_complex graph and its outputs: both inputs through their alignment chain into libvmaf.

    When the plan changes how many frames are paired (a rate conversion, an offset, a frame limit),
    or the pairing is to be checked (`signatures`: where each side's luma thumbnails go), each
    chain also feeds a second output, so ffmpeg's exit statistics count the frames that reached
    libvmaf from each side.
    """
    target = _target_pix_fmt(ref.pix_fmt)
    dis_chain = plan.chain("distorted", target)
    ref_chain = plan.chain("reference", target)
    groups = scoring_groups(options, target)
    if len(groups) == 1 and groups[0][0] is not None:  # one precision for all: convert in the chains
        dis_chain, ref_chain = dis_chain + [f"format={groups[0][0]}"], ref_chain + [f"format={groups[0][0]}"]
        groups = [(None, groups[0][1], groups[0][2])]
    vmaf_args = [[f"model={'|'.join(encode_side(m, plan, dis)[0].filter_value(n) for m, n in models)}",
                  "log_fmt=json",
                  f"log_path={log_paths(log_path, len(groups))[i]}", f"n_threads={options.threads()}",
                  f"n_subsample={options.n_subsample}"] for i, (_, models, _) in enumerate(groups)]
    for args, (_, _, with_features) in zip(vmaf_args, groups, strict=True):
        if with_features and options.features:
            args.append("feature=" + "\\|".join(f.filter_value() for f in options.features))
    counted = signatures is not None or plan.changes_counts
    if counted:
        for args in vmaf_args:
            args += ["shortest=1"]
    if not counted and len(groups) == 1:
        return (f"[1:v:0]{','.join(dis_chain)}[dis];"
                f"[0:v:0]{','.join(ref_chain)}[ref];"
                f"[dis][ref]libvmaf={':'.join(vmaf_args[0])}"), ["-f", "null", "-"]
    tap = f",{SIGNATURE_FILTER}" if signatures is not None else ""
    n = len(groups)

    def tag(i: int) -> str:  # one instance keeps the plain labels: [dis][ref] -> [scored]
        return "" if n == 1 else str(i)

    graph = ""
    for side, chain in (("dis", dis_chain), ("ref", ref_chain)):
        stream = "[1:v:0]" if side == "dis" else "[0:v:0]"
        labels = "".join(f"[{side}{tag(i)}]" for i in range(n)) + (f"[{side}_n]" if counted else "")
        graph += f"{stream}{','.join(chain)},split={n + counted}{labels};"
        if counted:
            graph += f"[{side}_n]null{tap}[{side}_count];"
        for i, (pix_fmt, _, _) in enumerate(groups):
            if pix_fmt is not None:  # this group's models are scored at another precision
                graph += f"[{side}{tag(i)}]format={pix_fmt}[{side}{tag(i)}f];"
    for i, (pix_fmt, _, _) in enumerate(groups):
        suffix = "f" if pix_fmt is not None else ""
        graph += f"[dis{tag(i)}{suffix}][ref{tag(i)}{suffix}]libvmaf={':'.join(vmaf_args[i])}[scored{tag(i)}];"
    graph = graph.rstrip(";")
    outputs: list[str] = []
    for i in range(n):
        outputs += ["-map", f"[scored{tag(i)}]", "-f", "null", "-"]
    if counted:
        for label, path in (("ref_count", signatures[0] if signatures else None),
                            ("dis_count", signatures[1] if signatures else None)):
            outputs += ["-map", f"[{label}]", *(["-f", "rawvideo", path] if path else ["-f", "null", "-"])]
    return graph, outputs


def encode_side(model: ModelChoice, plan: Plan, dis: StreamInfo) -> tuple[ModelChoice, dict[str, Any] | None]:
    """A v1 model with CAMBI told the distorted's encode-side size and bit depth, when it is scaled.

    Netflix's models_v1.md: CAMBI (banding) judges the picture at the size and depth it was
    encoded at; scored after scaling to the reference's size it would otherwise see the scaled
    picture. A `cambi.enc_*` parameter given with the model wins over what the distorted says.
    Returns the model to score with and the record of what was set (None: nothing).
    """
    if not model.is_v1 or plan.scale is None:
        return model, None
    width, height = dis.display_size
    given = dict(model.cambi)
    found: dict[str, int] = {}
    note = None
    scored = re.match(r"scale=(\d+):(\d+)", plan.scale)
    assert scored is not None, plan.scale
    scored_w, scored_h = int(scored.group(1)), int(scored.group(2))
    if width < CAMBI_MIN_SIZE[0] or height < CAMBI_MIN_SIZE[1]:
        # libvmaf refuses the model below CAMBI's range; CAMBI then takes the scored size
        note = (f"encode-side size {width}x{height} not passed: below CAMBI's smallest "
                f"({CAMBI_MIN_SIZE[0]}x{CAMBI_MIN_SIZE[1]})")
    elif abs((width / height) / (scored_w / scored_h) - 1) > 0.02:
        # CAMBI reads the scored picture at the encode-side size: libvmaf fails on another shape
        note = (f"encode-side size {width}x{height} not passed: its shape differs from the scored "
                f"{scored_w}x{scored_h}")
    else:
        found.update(enc_width=width, enc_height=height)
    found["enc_bitdepth"] = depth_of(dis.pix_fmt)
    merged = {**found, **given}
    record: dict[str, Any] = {**merged, "from": {k: "model parameter" if k in given else "distorted stream"
                                                 for k in merged}}
    if note:
        record["note"] = note
    return attrs.evolve(model, cambi=tuple(merged.items())), record


#: the smallest encode-side size libvmaf's CAMBI takes (its enc_width and enc_height minimums)
CAMBI_MIN_SIZE = (180, 150)


#: a group of models one libvmaf instance scores: the format it converts to first (None: as the
#: chain gives it), its models with their metric names, and whether the extra features go with it
Group = tuple[str | None, list[tuple[ModelChoice, str | None]], bool]


def scoring_groups(options: LibvmafOptions, target: str) -> list[Group]:
    """The models split by the precision they are scored at: one libvmaf instance each.

    The v1 models are documented to be measured at 10 bits even for 8-bit video; the others are
    scored as the inputs are. Each group sees the same frames, so one pass scores all of them and
    each score equals its own separate run. The features go with the first group.
    """
    models = options.models
    names = metric_names(models)
    single = len(models) == 1 and models[0].metric is None
    ten_bit = _ten_bit(target)
    by_format: dict[str | None, list[tuple[ModelChoice, str | None]]] = {}
    for model, name in zip(models, names, strict=True):
        key = ten_bit if (model.is_v1 and ten_bit is not None) else None
        by_format.setdefault(key, []).append((model, None if single else name))
    return [(fmt, group, i == 0) for i, (fmt, group) in enumerate(by_format.items())]


def _ten_bit(target: str) -> str | None:
    """The 10-bit form of an 8-bit libvmaf format; None when it has 10 bits or more already."""
    return target + "10le" if target in ("yuv420p", "yuv422p", "yuv444p") else None


def log_paths(log_path: str, count: int) -> list[str]:
    stem, ext = os.path.splitext(log_path)
    return [log_path, *(f"{stem}.{i}{ext}" for i in range(1, count))]


#: what libvmaf itself says when it fails (ffmpeg may still exit 0, with no log written)
_LIBVMAF_ERROR_RE = re.compile(r"libvmaf ERROR|problem during vmaf|problem flushing libvmaf|could not load libvmaf")


def score(request: ScoreRequest) -> ScoreOutput:
    options: LibvmafOptions = request.options
    ffmpeg = request.ffmpeg
    info = require_libvmaf(ffmpeg)
    options.check(ffmpeg)
    ref_info, dis_info = probe_both(ffmpeg, request)
    target = _target_pix_fmt(ref_info.pix_fmt)
    plan = alignment.plan_pairing(ffmpeg, request, ref_info, dis_info, target, **_model_facts(ffmpeg, request))
    if request.segments != 1:
        from vmafx_core import segments

        def one(part: ScoreRequest, part_plan: Plan, seeks: tuple[float | None, float | None]) -> ScoreOutput:
            return score_planned(part, info.version, ref_info, dis_info, target, part_plan, seeks)

        graph = build_filter_graph(ref_info, dis_info, options, plan, "<log>")[0]
        return segments.score(request, ref_info, dis_info, plan, one, whole_graph=graph)
    return score_planned(request, info.version, ref_info, dis_info, target, plan)


def score_planned(request: ScoreRequest, ffmpeg_version: str, ref_info: StreamInfo, dis_info: StreamInfo,
                  target: str, plan: Plan, seeks: tuple[float | None, float | None] = (None, None)) -> ScoreOutput:
    """Score a pair whose probes and plan are made: the whole pair, or one segment of it (`seeks`:
    where each input starts, `vmafx_core.segments`)."""
    options: LibvmafOptions = request.options
    ffmpeg = request.ffmpeg
    workdir = tempdirs.make("libvmaf")
    stack = contextlib.ExitStack()
    try:
        log_path = os.path.join(workdir, "vmaf.json")
        # the pairing check's thumbnails come back on pipes: no media is written to disk
        thumbs = alignment.Thumbnails() if request.alignment.allow_frame_mismatch else None
        if thumbs is not None:
            stack.callback(thumbs.close)
        signatures = thumbs.urls if thumbs is not None else None
        graph, outputs = build_filter_graph(ref_info, dis_info, options, plan, log_path, signatures)
        vmaf_errors: list[str] = []

        def on_line(line: str) -> None:
            if _LIBVMAF_ERROR_RE.search(line):
                vmaf_errors.append(strip_prefix(line))

        run = run_scoring(request, ref_info, graph, outputs, on_line=on_line,
                          pass_fds=thumbs.child_fds if thumbs is not None else (),
                          started=thumbs.started if thumbs is not None else None, seeks=seeks)
        code, decoded, encoded, cut_short, child = run.code, run.decoded, run.encoded, run.cut_short, run.child
        elapsed = run.elapsed
        if cut_short:
            # ffmpeg may exit 0 on a stream cut off mid-way: never score what was read of it
            raise JobFailed(f"an input was cut off while reading ({cut_short[0]}); no score is reported",
                            detail=child.tail(15))
        if vmaf_errors and (code != 0 or not os.path.exists(log_path)):
            _libvmaf_failed(vmaf_errors, options, ref_info, child.tail(15))
        if code != 0:
            raise JobFailed(f"ffmpeg failed (exit {code}): {last_error(child.tail())}", detail=child.tail(15))
        notes: list[str] = []
        groups = scoring_groups(options, target)
        log = _merge_logs([_read_log(p, child.tail(15)) for p in log_paths(log_path, len(groups))],
                          [fmt for fmt, _, _ in groups])
        n = len(groups)  # the scored outputs come first, then the two counting ones
        counted = (encoded[n], encoded[n + 1]) if n in encoded and n + 1 in encoded else None
        compared = alignment.compared_frames(counted, thumbs, plan, notes)
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return _output(ffmpeg_version, ffmpeg, options, groups, target, ref_info, dis_info, plan, log,
                   _hide_logs(graph, log_path, len(groups)), elapsed, (decoded.get(0, -1), decoded.get(1, -1)),
                   notes=notes, compared=compared, video=video_read(run.video_bytes.get(1), decoded.get(1), dis_info))


def _output(ffmpeg_version: str, ffmpeg: str, options: LibvmafOptions, groups: list[Group], target: str,
            ref_info: StreamInfo, dis_info: StreamInfo, plan: Plan, log: dict[str, Any], filter_graph: str,
            elapsed: float, decoded: tuple[int, int], *, notes: Sequence[str] = (),
            compared: tuple[int, int] | None = None, group: dict[str, Any] | None = None,
            video: tuple[int, float] | None = None) -> ScoreOutput:
    """One pair's output from its libvmaf log: the same for a separate run and a pass of several."""
    provenance = {
        "ffmpeg": ffmpeg_version,
        "ffmpeg_path": ffmpeg,
        "libvmaf": log.get("version", "unknown"),
        "model": options.models[0].spec() if len(options.models) == 1 else [m.spec() for m in options.models],
        "models": _models_provenance(options, groups, ref_info, dis_info, plan),
        "features": [f.spec() for f in options.features],
        "scored_as": target,
        "n_subsample": options.n_subsample,
        "n_threads": options.threads(),
        "filter_graph": filter_graph,
        "alignment": plan.decisions,
        "reference_stream": attrs.asdict(ref_info),
        "distorted_stream": attrs.asdict(dis_info),
        "score_seconds": elapsed,
        **({"group": group} if group is not None else {}),
    }
    return ScoreOutput(frames=[f["metrics"] for f in log.get("frames", [])], reference_frames=decoded[0],
                       distorted_frames=decoded[1], provenance=provenance, notes=notes, compared_frames=compared,
                       frame_numbers=[int(f.get("frameNum", i)) for i, f in enumerate(log.get("frames", []))],
                       frame_rate=float(plan.rate) if plan.rate is not None else ref_info.fps,
                       subsample=options.n_subsample, pooled=log.get("pooled_metrics", {}),
                       # with a frame limit ffmpeg stops reading once the pairs are done
                       declared_frames=declared_frames((ref_info, dis_info), reads_all=not plan.frames),
                       distorted_video=video)



def _hide_logs(graph: str, log_path: str, count: int) -> str:
    """The graph as provenance: the temp log paths as <log>, <log.1>, ..."""
    for index, path in reversed(list(enumerate(log_paths(log_path, count)))):
        graph = graph.replace(path, f"<log.{index}>" if index else "<log>")
    return graph


def _merge_logs(logs: list[dict[str, Any]], formats: Sequence[str | None] = ()) -> dict[str, Any]:
    """The logs of the libvmaf instances of one pass as one: their frames joined by frame number.

    A feature both instances computed (integer_adm2 at 8 and at 10 bits) keeps the first one's
    name; the later one's gets its format as a suffix (integer_adm2_yuv420p10le).
    """
    first = logs[0]
    if len(logs) == 1:
        return first
    frames = [dict(f, metrics=dict(f.get("metrics", {}))) for f in first.get("frames", [])]
    by_number = {f.get("frameNum"): f for f in frames}
    pooled = dict(first.get("pooled_metrics", {}))
    for index, other in enumerate(logs[1:], start=1):
        suffix = f"_{formats[index]}" if index < len(formats) and formats[index] else f"_{index}"
        numbers = [f.get("frameNum") for f in other.get("frames", [])]
        if numbers != list(by_number):
            raise JobFailed(f"the libvmaf instances of one pass scored different frames ({len(numbers)} and "
                            f"{len(by_number)}); no score is reported")
        for f in other.get("frames", []):
            into = by_number[f.get("frameNum")]["metrics"]
            for key, value in f.get("metrics", {}).items():
                into[key + suffix if key in into else key] = value
        for key, value in other.get("pooled_metrics", {}).items():
            pooled[key + suffix if key in pooled else key] = value
    return {**first, "frames": frames, "pooled_metrics": pooled}


def _models_provenance(options: LibvmafOptions, groups: list[Group], ref: StreamInfo, dis: StreamInfo,
                       plan: Plan) -> list[dict[str, Any]]:
    """Per model: its metric, parameters, and the precision it was scored at, and why."""
    target = _target_pix_fmt(ref.pix_fmt)
    rows = []
    for fmt, members, _ in groups:
        for model, name in members:
            ten_bit = _ten_bit(target) if model.is_v1 else None
            row: dict[str, Any] = {"model": model.spec(), "metric": name or "vmaf",
                                   "scored_as": fmt or ten_bit or target}
            cambi = encode_side(model, plan, dis)[1]
            if cambi:
                row["cambi_encode_side"] = cambi
            if ten_bit:
                row["precision"] = (f"converted to 10 bits ({row['scored_as']}) from {target}: VMAF v1 is "
                                    "documented to be measured at 10-bit precision, also for 8-bit video")
            rows.append(row)
    return rows


_TOO_SMALL_RE = re.compile(r"(?:\w+: )?image too small(?:, operating width or height is 0)?")


def _libvmaf_failed(errors: list[str], options: LibvmafOptions, ref: StreamInfo, tail: str) -> None:
    """Raise what libvmaf said first; a picture too small for a model is the user's to change."""
    # libvmaf writes its message in pieces and without a newline, from its own thread: ffmpeg's
    # lines can land between "libvmaf ERROR " and the cause, so the cause is looked for everywhere
    found = _TOO_SMALL_RE.search("\n".join([*errors, tail]))
    small = found.group(0) if found else None
    models = ", ".join(m.spec() for m in options.models)
    tiny_for_v1 = any(m.is_v1 for m in options.models) and ref.width * ref.height < 320 * 180
    if small is not None or tiny_for_v1:
        raise BadInput(f"the pictures ({ref.width}x{ref.height}) are too small for {models} "
                       f"(libvmaf: {small or errors[0].removeprefix('libvmaf ERROR ')}); the v1 models need "
                       "at least about 320x180, 640x360 for _5d0h: score at a larger size", detail=tail)
    raise JobFailed(f"libvmaf failed with {models}: {errors[0]}", detail=tail)


def _read_log(path: str, tail: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
            return data
    except (OSError, json.JSONDecodeError) as exc:
        raise JobFailed(f"libvmaf wrote no readable log ({exc})", detail=tail) from None


def _check(options: LibvmafOptions, ffmpeg: str) -> None:
    options.check(ffmpeg)


def cache_facts(options: LibvmafOptions) -> dict[str, Any] | None:
    """What the result cache's key needs beyond the options: each model file's SHA-256 (a file
    edited in place is another model) and "all cores" as the count it means on this machine, as the
    result's provenance says it. None when a model file cannot be read: not cached."""
    digests = []
    for model in options.models:
        if model.is_file:
            try:
                with open(model.name, "rb") as fh:
                    digests.append(hashlib.file_digest(fh, "sha256").hexdigest())
            except OSError:
                return None
    return {"n_threads": options.threads(), "model_files": digests}


def _summary_metric(name: str) -> bool:
    """The metrics `vmafx run` prints: VMAF and the extra features, not libvmaf's internal ones
    (integer_adm2, integer_motion, ...)."""
    return name == "vmaf" or name.startswith(("psnr", "float_", "ciede", "cambi"))


#: pairs that cannot share one pass (see `score_group`); the name kept for callers of old
NotGroupable = CannotShare


def score_group(requests: Sequence[ScoreRequest], shared: PreparedInput | None = None,
                reference_info: StreamInfo | None = None) -> list[ScoreOutput | Exception]:
    """Score several distorted against one reference in one ffmpeg pass: the reference decoded once.

    The reference's decoded frames are split to one branch per distorted; each branch and each
    distorted go through that pair's own alignment chain and libvmaf instance, exactly the graph a
    separate run builds, so every value equals the separate run's. Only plain pairings are grouped:
    one libvmaf instance per pair (models at one precision), no sync search, no frame-mismatch
    scoring, no chain that changes frame counts (rate conversion, offsets, frame limit) and no
    input on a pipe; otherwise `CannotShare` is raised before anything is read. An error of the
    whole pass (ffmpeg failed, an input cut off) is raised; a pair whose own checks fail gets its
    error in its place in the list.

    `shared` (an encode ladder, `vmafx_core.ladder`): one input on a pipe that holds the reference's
    decoded frames as stream 0 and pair i's distorted as stream i+1. ffmpeg reads only it; each
    request still describes its pair as a separate run sees it (the reference as stored, the
    distorted as the streamed encode), so the plans and graphs are the separate runs'.
    `reference_info` is the reference's probe when the caller has made it (not probed again).
    """
    first = requests[0]
    options: LibvmafOptions = first.options
    ffmpeg = first.ffmpeg
    info = require_libvmaf(ffmpeg)
    options.check(ffmpeg)
    settings = first.alignment
    if (settings.sync == "auto" or settings.allow_frame_mismatch or first.reference.stdin_fd is not None
            or (shared is None and any(r.distorted.stdin_fd is not None for r in requests))):
        raise CannotShare("sync, frame-mismatch scoring or a piped input")
    if reference_info is None:
        ref_info, dis_first = probe_both(ffmpeg, first)  # the reference is probed once for all
    else:  # the caller probed it already (a ladder, before starting its encoder)
        ref_info = reference_info
        dis_first = probe(ffmpeg, first.distorted, first.distorted_raw or first.distorted.stream_hint,
                          timeout=first.stall_timeout)
    probed = [(ref_info, dis_first), *((ref_info, probe(ffmpeg, r.distorted, r.distorted_raw or r.distorted.stream_hint,
                                                      timeout=r.stall_timeout)) for r in requests[1:])]
    target = _target_pix_fmt(ref_info.pix_fmt)
    plans = [alignment.plan_pairing(ffmpeg, r, ref_i, dis_i, target, **_model_facts(ffmpeg, r))
             for r, (ref_i, dis_i) in zip(requests, probed, strict=True)]
    if any(p.changes_counts for p in plans):
        raise CannotShare("a chain changes frame counts")
    groups = scoring_groups(options, target)
    if len(groups) != 1:
        raise CannotShare("models at several precisions")
    workdir = tempdirs.make("libvmaf")
    try:
        n = len(requests)
        logs = [os.path.join(workdir, f"vmaf-{i}.json") for i in range(n)]
        graphs = [build_filter_graph(ref_info, dis_i, options, plan, logs[i])[0]
                  for i, ((_, dis_i), plan) in enumerate(zip(probed, plans, strict=True))]
        graph = f"[0:v:0]split={n}" + "".join(f"[r{i}]" for i in range(n)) + ";"
        for i, one in enumerate(graphs):  # the separate run's graph, its labels renamed for pair i
            dis_label = f"[0:v:{i + 1}]" if shared is not None else f"[{i + 1}:v:0]"
            one = (one.replace("[1:v:0]", dis_label).replace("[0:v:0]", f"[r{i}]")
                   .replace("[dis]", f"[dis{i}]").replace("[ref]", f"[ref{i}]"))
            graph += one + f"[scored{i}];"
        graph = graph.rstrip(";")
        outputs: list[str] = []
        for i in range(n):
            outputs += ["-map", f"[scored{i}]", "-f", "null", "-"]
        vmaf_errors: list[str] = []

        def on_line(line: str) -> None:
            if _LIBVMAF_ERROR_RE.search(line):
                vmaf_errors.append(strip_prefix(line))

        run = run_scoring(first, ref_info, graph, outputs, on_line=on_line,
                          more_distorted=[(r.distorted, r.distorted_raw) for r in requests[1:]], only_input=shared)
        code, cut_short, child, elapsed = run.code, run.cut_short, run.child, run.elapsed
        if shared is not None:  # one input: the reference is its stream 0, pair i's distorted stream i + 1
            decoded = {i: run.stream_decoded.get((0, i), -1) for i in range(n + 1)}
        else:
            decoded = run.decoded
        if cut_short:
            raise JobFailed(f"an input was cut off while reading ({cut_short[0]}); no score is reported",
                            detail=child.tail(15))
        if vmaf_errors and code != 0:
            _libvmaf_failed(vmaf_errors, options, ref_info, child.tail(15))
        if code != 0:
            raise JobFailed(f"ffmpeg failed (exit {code}): {last_error(child.tail())}", detail=child.tail(15))
        results: list[ScoreOutput | Exception] = []
        for i, ((_, dis_info), plan) in enumerate(zip(probed, plans, strict=True)):
            try:
                log = _read_log(logs[i], child.tail(15))
            except Exception as exc:  # this pair alone
                results.append(exc)
                continue
            results.append(_output(
                info.version, ffmpeg, options, groups, target, ref_info, dis_info, plan, log,
                _hide_logs(graphs[i], logs[i], 1), elapsed, (decoded.get(0, -1), decoded.get(i + 1, -1)),
                group={"size": n, "index": i, "reference_decoded_once": True,
                       **({"shared_encode": True} if shared is not None else {})},
                # a shared encode's distorted is raw video in one pipe: its rate is the encoder's
                video=None if shared is not None else video_read(run.video_bytes.get(i + 1), decoded.get(i + 1),
                                                                  dis_info)))
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


SCORER = Scorer(
    name="libvmaf",
    description="VMAF and libvmaf's extra features through ffmpeg's libvmaf filter",
    metrics=("vmaf", *FEATURES),
    options_type=LibvmafOptions,
    score=score,
    check=_check,
    score_shared=score_group,
    cache_facts=cache_facts,
    threads_option="n_threads",
    summary_metric=_summary_metric,
)



def _model_facts(ffmpeg: str, request: ScoreRequest) -> dict[str, tuple[str, ...]]:
    """What the colour plan needs of libvmaf's models: the HDR-VMAF models in this ffmpeg's libvmaf
    (looked for only when the job asks for them) and the names of the models the job scores with."""
    hdr: tuple[str, ...] = ()
    if request.alignment.hdr_policy == "hdr-models":
        hdr = tuple(name for name in names_in_binary(ffmpeg) if "hdr" in name.lower())
    return {"hdr_models": hdr, "models": tuple(m.name for m in request.options.models)}

@hookimpl
def vmafx_scorers() -> list[Scorer]:
    return [SCORER]


#: libvmaf's own flags on `vmafx run`: each sets its option in the job's scorer table
COMMAND_OPTIONS = [
    CommandOption(flag="--model", key="model", target="scorer", scorer="libvmaf", multiple=True,
                  help="libvmaf model (repeatable: several in one pass): vmaf_v0.6.1 (default), vmaf_v1.0.16_3d0h, "
                       "... (`vmafx models` lists them) or a file; parameters as NAME:key=value, e.g. "
                       "vmaf_v0.6.1:enable_transform=true (the phone model)."),
    CommandOption(flag="--feature", key="features", target="scorer", scorer="libvmaf", multiple=True,
                  help="Extra libvmaf feature (repeatable): psnr, float_ssim, float_ms_ssim, ciede, cambi, psnr_hvs; "
                       "options as NAME:option=value, e.g. cambi:full_ref=true, psnr:enable_chroma=false."),
    CommandOption(flag="--n-subsample", key="n_subsample", target="scorer", scorer="libvmaf", value_type=int,
                  help="Score every Nth frame."),
    CommandOption(flag="--n-threads", key="n_threads", target="scorer", scorer="libvmaf", value_type=int,
                  help="libvmaf threads (0: all cores)."),
]


@hookimpl
def vmafx_command_options() -> list[CommandOption]:
    return COMMAND_OPTIONS


@hookimpl
def vmafx_register_commands(cli: Any) -> None:
    """`vmafx models`: the models this ffmpeg's libvmaf has."""
    from vmafx_core.scorers.libvmaf.command import models

    cli.add_command(models, "models")
