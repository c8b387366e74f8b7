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
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Literal, NewType

import attrs

from vmafx_core import alignment, hookimpl, tempdirs
from vmafx_core.alignment import SIGNATURE_FILTER, Plan
from vmafx_core.errors import BadInput, JobFailed
from vmafx_core.ffmpeg import InputArgs, StreamInfo, require_libvmaf
from vmafx_core.job import NonNegativeInt, PositiveInt, converter
from vmafx_core.process import Child
from vmafx_core.supervise import (
    DECODED_RE,
    ENCODED_RE,
    TRUNCATED_RE,
    Progress,
    last_error,
    probe_both,
    watch,
)
from vmafx_core.types import ScoreOutput, Scorer, ScoreRequest

#: models built into libvmaf (selected by version); anything with a "/" or ".json" is a model file
BUILTIN_MODELS = ("vmaf_v0.6.1", "vmaf_v0.6.1neg", "vmaf_4k_v0.6.1", "vmaf_4k_v0.6.1neg",
                  "vmaf_float_v0.6.1", "vmaf_float_v0.6.1neg")
FEATURES = ("psnr", "float_ssim", "float_ms_ssim", "ciede", "cambi", "psnr_hvs")
Feature = Literal["psnr", "float_ssim", "float_ms_ssim", "ciede", "cambi", "psnr_hvs"]

#: formats libvmaf reads; anything else is converted to the nearest of these
_VMAF_PIX_FMTS = {"yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le",
                  "yuv420p12le", "yuv422p12le", "yuv444p12le", "yuv420p16le", "yuv422p16le", "yuv444p16le"}
_UNSAFE_IN_FILTER = set(":|'\\,;[]=\n")


Model = NewType("Model", str)


def _structure_model(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    if _is_model_file(value):
        bad = _UNSAFE_IN_FILTER & set(value)
        if bad:
            raise ValueError(f"model file path must not contain {' '.join(sorted(bad))}")
    elif value not in BUILTIN_MODELS:
        raise ValueError(f"unknown model {value!r}; use one of {', '.join(BUILTIN_MODELS)} or a model file path")
    return value


converter.register_structure_hook(Model, _structure_model)


def _is_model_file(model: str) -> bool:
    return "/" in model or model.endswith((".json", ".pkl"))


@attrs.frozen
class LibvmafOptions:
    """Options of the libvmaf scorer (the job's `scorer` table)."""

    model: Model = Model("vmaf_v0.6.1")
    features: tuple[Feature, ...] = ()
    n_subsample: PositiveInt = PositiveInt(1)
    n_threads: NonNegativeInt = NonNegativeInt(0)  #: 0: all cores

    def threads(self) -> int:
        return self.n_threads or (os.cpu_count() or 1)


def _target_pix_fmt(pix_fmt: str) -> str:
    if pix_fmt in _VMAF_PIX_FMTS:
        return pix_fmt
    if pix_fmt.startswith("yuvj"):
        return "yuv" + pix_fmt[4:] if "yuv" + pix_fmt[4:] in _VMAF_PIX_FMTS else "yuv420p"
    if "10" in pix_fmt:
        return "yuv420p10le"
    return "yuv420p"


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
    model = f"path={options.model}" if _is_model_file(options.model) else f"version={options.model}"
    vmaf_args = [
        f"model={model}",
        "log_fmt=json",
        f"log_path={log_path}",
        f"n_threads={options.threads()}",
        f"n_subsample={options.n_subsample}",
    ]
    if options.features:
        vmaf_args.append("feature=" + "\\|".join(f"name={f}" for f in options.features))
    counted = signatures is not None or plan.changes_counts
    if counted:
        vmaf_args += ["shortest=1"]
    if not counted:
        return (f"[1:v:0]{','.join(dis_chain)}[dis];"
                f"[0:v:0]{','.join(ref_chain)}[ref];"
                f"[dis][ref]libvmaf={':'.join(vmaf_args)}"), ["-f", "null", "-"]
    tap = f",{SIGNATURE_FILTER}" if signatures is not None else ""
    graph = (f"[1:v:0]{','.join(dis_chain)},split=2[dis][dis_n];[dis_n]null{tap}[dis_count];"
             f"[0:v:0]{','.join(ref_chain)},split=2[ref][ref_n];[ref_n]null{tap}[ref_count];"
             f"[dis][ref]libvmaf={':'.join(vmaf_args)}[scored]")
    outputs = ["-map", "[scored]", "-f", "null", "-"]
    for label, path in (("ref_count", signatures[0] if signatures else None),
                        ("dis_count", signatures[1] if signatures else None)):
        outputs += ["-map", f"[{label}]", *(["-f", "rawvideo", path] if path else ["-f", "null", "-"])]
    return graph, outputs


def score(request: ScoreRequest) -> ScoreOutput:
    options: LibvmafOptions = request.options
    ffmpeg = request.ffmpeg
    info = require_libvmaf(ffmpeg)
    if _is_model_file(options.model) and not Path(options.model).is_file():
        raise BadInput(f"model file {options.model} does not exist")
    ref_info, dis_info = probe_both(ffmpeg, request)
    plan = _plan(ffmpeg, request, ref_info, dis_info)
    workdir = tempdirs.make("libvmaf")
    stack = contextlib.ExitStack()
    try:
        log_path = os.path.join(workdir, "vmaf.json")
        # the pairing check's thumbnails come back on pipes: no media is written to disk
        thumbs = _Thumbnails() if request.alignment.allow_frame_mismatch else None
        if thumbs is not None:
            stack.callback(thumbs.close)
        signatures = thumbs.urls if thumbs is not None else None
        graph, outputs = build_filter_graph(ref_info, dis_info, options, plan, log_path, signatures)
        decoded: dict[int, int] = {}
        encoded: dict[int, int] = {}
        cut_short: list[str] = []

        def on_line(line: str) -> None:
            m = DECODED_RE.search(line)
            e = ENCODED_RE.search(line)
            if m:
                decoded[int(m.group(1))] = int(m.group(2))
            elif e:
                encoded[int(e.group(1))] = int(e.group(2))
            elif TRUNCATED_RE.search(line):
                cut_short.append(line.strip())

        expected = ref_info.expected_frames
        estimated = False
        if request.reference_raw is not None and request.reference.size:
            expected = request.reference.size // request.reference_raw.frame_bytes
        elif expected is None:  # through ffconcat ffmpeg reports no duration: size / bitrate, for the ETA
            expected = ref_info.estimated_frames(request.reference.size)
            estimated = expected is not None
        progress = Progress(expected, request.progress, estimated)
        with InputArgs(request.reference, request.reference_raw) as ref_in, \
                InputArgs(request.distorted, request.distorted_raw) as dis_in:
            argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "verbose", "-xerror",
                    "-progress", "pipe:1", *ref_in.args, *dis_in.args,
                    "-filter_complex", graph, *outputs]
            started = time.monotonic()
            child = Child(argv, name="ffmpeg", pass_fds=[*ref_in.pass_fds, *dis_in.pass_fds,
                                                         *(thumbs.child_fds if thumbs is not None else [])],
                          stdout=subprocess.PIPE,
                          stdin=request.distorted.stdin_fd if request.distorted.stdin_fd is not None
                          else subprocess.DEVNULL,
                          secrets=[*request.reference.secrets, *request.distorted.secrets],
                          on_stderr_line=on_line, tail_lines=60)
            if thumbs is not None:
                thumbs.started()
        with child:
            assert child.proc.stdout is not None
            pump = threading.Thread(target=progress.pump, args=(child.proc.stdout,), daemon=True)
            pump.start()
            code = watch(child, progress, request.stall_timeout, request.deadline,
                          [request.reference, request.distorted], request.cancelled)
            pump.join(timeout=2)
        elapsed = time.monotonic() - started
        if cut_short:
            # ffmpeg may exit 0 on a stream cut off mid-way: never score what was read of it
            raise JobFailed(f"an input was cut off while reading ({cut_short[0]}); no score is reported",
                            detail=child.tail(15))
        if code != 0:
            raise JobFailed(f"ffmpeg failed (exit {code}): {last_error(child.tail())}", detail=child.tail(15))
        # with a frame limit ffmpeg stops reading once the pairs are done: fewer decoded is expected
        notes = [] if plan.frames else _check_declared_frames(request, (ref_info, dis_info), decoded)
        log = _read_log(log_path, child.tail(15))
        compared = (encoded[1], encoded[2]) if 1 in encoded and 2 in encoded else None
        if thumbs is not None:
            ref_sigs, dis_sigs = thumbs.collected()
            compared = (len(ref_sigs), len(dis_sigs))
            if compared[0] != compared[1]:
                # scoring an overlap is only honest when its frames are the same pictures, pair by pair
                broken = alignment.check_pairing(ref_sigs, dis_sigs)
                if broken is not None:
                    raise BadInput(alignment.explain_break(broken))
        if plan.frames and compared is not None and min(compared) < plan.frames:
            notes.append(f"asked for {plan.frames} frames; the inputs have {min(compared)} after alignment")
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)
    frames = [f["metrics"] for f in log.get("frames", [])]
    provenance = {
        "ffmpeg": info.version,
        "ffmpeg_path": ffmpeg,
        "libvmaf": log.get("version", "unknown"),
        "model": options.model,
        "features": list(options.features),
        "n_subsample": options.n_subsample,
        "n_threads": options.threads(),
        "filter_graph": graph.replace(log_path, "<log>"),
        "alignment": plan.decisions,
        "pooled_by_libvmaf": log.get("pooled_metrics", {}),
        "reference_stream": attrs.asdict(ref_info),
        "distorted_stream": attrs.asdict(dis_info),
        "score_seconds": elapsed,
    }
    return ScoreOutput(frames=frames, reference_frames=decoded.get(0, -1), distorted_frames=decoded.get(1, -1),
                       provenance=provenance, notes=notes, compared_frames=compared)


def _plan(ffmpeg: str, request: ScoreRequest, ref: StreamInfo, dis: StreamInfo) -> Plan:
    """The pairing plan; with `sync = "auto"`, the distorted's offset found on a prefix of both first."""
    settings = request.alignment
    if request.distorted.stdin_fd is not None and dis.field_order is None:
        # an encode of the reference streamed in: it carries the reference's fields as they were woven
        dis = attrs.evolve(dis, field_order=ref.field_order)
    idet: dict[str, dict[str, int]] = {}
    for role, info, prepared, raw in (("reference", ref, request.reference, request.reference_raw),
                                      ("distorted", dis, request.distorted, request.distorted_raw)):
        if settings.interlace_check != "off" and info.field_order is None and prepared.stdin_fd is None:
            counts = alignment.check_interlace(ffmpeg, prepared, raw, settings.interlace_check_frames,
                                               request.stall_timeout)
            if counts is not None:
                idet[role] = counts
    plan = alignment.make_plan(ref, dis, settings, idet=idet, act_on_idet=settings.interlace_check == "deinterlace")
    if settings.sync != "auto":
        return plan
    if settings.reference_offset != "0" or settings.distorted_offset != "0":
        raise BadInput("give --sync auto or an offset (--reference-offset/--distorted-offset), not both")
    if request.distorted.stdin_fd is not None or request.reference.stdin_fd is not None:
        raise BadInput("--sync auto needs both inputs as files: an encode streamed into the scorer has no "
                       "prefix to search; give --distorted-offset instead")
    window = settings.sync_window
    count = 2 * window + 48
    target = _target_pix_fmt(ref.pix_fmt)
    unshifted = attrs.evolve(plan, reference=attrs.evolve(plan.reference, offset=0),
                             distorted=attrs.evolve(plan.distorted, offset=0), frames=None)
    thumbs = [alignment.thumbnails(ffmpeg, prepared, raw, unshifted.chain(role, target)[:-1], count,
                                   request.stall_timeout)
              for role, prepared, raw in (("reference", request.reference, request.reference_raw),
                                          ("distorted", request.distorted, request.distorted_raw))]
    costs = alignment.offset_costs(thumbs[0], thumbs[1], window, min_overlap=max(8, min(map(len, thumbs)) - window))
    best, margin = alignment.choose_offset(costs)
    if abs(best) == window:
        raise BadInput(f"sync: the best offset ({best:+d} frames) is at the edge of the search window; "
                       "the true one may lie beyond it: widen --sync-window")
    # margin: the next best offset's cost over the best's; None when the best matched exactly
    report = {"offset": best, "margin": round(margin, 3) if margin != float("inf") else None,
              "window": window, "frames_compared": min(map(len, thumbs)), "cost": round(costs[best], 4)}
    return alignment.make_plan(ref, dis, settings, sync_offset=best, sync_report=report, idet=idet,
                               act_on_idet=settings.interlace_check == "deinterlace")


class _Thumbnails:
    """Two pipes ffmpeg writes each side's luma thumbnails into, and the threads that drain them."""

    def __init__(self) -> None:
        self._pipes = [os.pipe(), os.pipe()]
        self._data = [bytearray(), bytearray()]
        self._readers: list[threading.Thread] = []
        self.child_fds = [w for _, w in self._pipes]
        self.urls = (f"pipe:{self._pipes[0][1]}", f"pipe:{self._pipes[1][1]}")

    def started(self) -> None:
        """The child holds the write ends now: close ours, so its exit ends the reads."""
        for _, w in self._pipes:
            os.close(w)
        self._pipes = [(r, -1) for r, _ in self._pipes]
        for (r, _), buf in zip(self._pipes, self._data, strict=True):
            reader = threading.Thread(target=self._drain, args=(r, buf), name="ffmpeg-thumbnails", daemon=True)
            reader.start()
            self._readers.append(reader)

    @staticmethod
    def _drain(fd: int, buf: bytearray) -> None:
        while chunk := os.read(fd, 1 << 16):
            buf.extend(chunk)

    def collected(self) -> tuple[list[bytes], list[bytes]]:
        for reader in self._readers:
            reader.join(timeout=5)
        return (alignment.split_signatures(bytes(self._data[0])), alignment.split_signatures(bytes(self._data[1])))

    def close(self) -> None:
        for reader in self._readers:  # they end when ffmpeg (reaped by now) closed its ends
            reader.join(timeout=5)
        for r, w in self._pipes:
            for fd in (r, w):
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
        self._pipes = []


def _check_declared_frames(request: ScoreRequest, infos: tuple[StreamInfo, StreamInfo],
                           decoded: dict[int, int]) -> list[str]:
    """Fail when an input gave fewer frames than its container declares: it was cut short.

    A Matroska file cut in the middle, or one whose transfer ended early, decodes without a single
    error; only the count tells. A small slack allows for rounded durations. Under
    --allow-frame-mismatch the shorter input is expected to stop early: a note, not an error.
    """
    notes: list[str] = []
    inputs = (request.reference, request.distorted)
    counts = [decoded.get(0, -1), decoded.get(1, -1)]
    for index, (prepared, info) in enumerate(zip(inputs, infos, strict=True)):
        declared, got = info.declared_frames, counts[index]
        if not declared or got < 0 or got >= declared - max(2, declared // 200):
            continue
        problem = (f"{prepared.role} {prepared.display}: decoded {got} frames but its container declares "
                   f"{declared} ({info.fps:g} fps); the input was cut short, or its header is wrong")
        if request.alignment.allow_frame_mismatch:
            if got <= counts[1 - index]:  # the shorter one: scoring stopped with it
                notes.append(problem)
            continue
        raise JobFailed(problem + "; no score is reported (--allow-frame-mismatch scores what could be read)")
    return notes


def _read_log(path: str, tail: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
            return data
    except (OSError, json.JSONDecodeError) as exc:
        raise JobFailed(f"libvmaf wrote no readable log ({exc})", detail=tail) from None


SCORER = Scorer(
    name="libvmaf",
    description="VMAF and libvmaf's extra features through ffmpeg's libvmaf filter",
    metrics=("vmaf", *FEATURES),
    options_type=LibvmafOptions,
    score=score,
)


@hookimpl
def vmafx_scorers() -> list[Scorer]:
    return [SCORER]
