"""Which reference frame is scored against which distorted frame, and why.

libvmaf pairs its two inputs by timestamp. Containers round timestamps to their own time base
(MP4 often 1/30000, Matroska 1 ms), so two copies of the same 29.97 fps video disagree by a
fraction of a frame, and resetting the start time is not enough: about one frame in three was
paired with its neighbour. vmafx therefore gives both inputs timestamps that depend only on the
frame number (`settb=1/rate,setpts=N`) once they run at one constant rate, so frame n meets frame
n whatever the containers did. Everything that makes the two sequences comparable first (a rate
conversion by timestamp, deinterlacing, an offset, scaling on the displayed picture) is decided
here, before scoring, and described in `Plan.decisions`, which goes into the result's provenance.
"""

from __future__ import annotations

import operator
import os
import re
import subprocess
import threading
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import attrs

from vmafx_core import colour
from vmafx_core.errors import BadInput, JobFailed
from vmafx_core.ffmpeg import InputArgs, StreamInfo
from vmafx_core.process import Child
from vmafx_core.types import PreparedInput, RawVideo, ScoreRequest

#: an input whose average rate and timestamp rate differ by more than this is variable-rate
_VFR_TOLERANCE = 0.01
#: size of the luma thumbnails compared by the sync search and the pairing check
SIG_W, SIG_H = 32, 18
SIG_BYTES = SIG_W * SIG_H
SIGNATURE_FILTER = f"scale={SIG_W}:{SIG_H}:flags=area,format=gray"


def nominal_rate(fps: float | None) -> Fraction | None:
    """The exact rate behind a printed one: 29.97 is 30000/1001, 23.98 is 24000/1001."""
    if not fps or fps <= 0:
        return None
    for base in (24, 30, 48, 60, 120, 240):
        ntsc = Fraction(base * 1000, 1001)
        if abs(fps - float(ntsc)) < 0.006:
            return ntsc
    return Fraction(fps).limit_denominator(1001)


def parse_rate(text: str) -> Fraction:
    if "/" in text:
        num, den = text.split("/")
        return Fraction(int(num), int(den))
    rate = nominal_rate(float(text))
    assert rate is not None
    return rate


def rate_text(rate: Fraction | None) -> str:
    """A rate as people write it: 25, 29.97, 23.976."""
    if rate is None:
        return "unknown"
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def is_interlaced(info: StreamInfo) -> bool:
    return info.field_order in ("tt", "bb", "tb", "bt")


def is_vfr(info: StreamInfo) -> bool:
    """The average rate differs from the timestamps' rate: frames were dropped or timestamps jitter."""
    if not info.fps or not info.tbr or info.codec == "rawvideo":
        return False
    if is_interlaced(info) and abs(info.tbr - 2 * info.fps) <= _VFR_TOLERANCE * info.tbr:
        return False  # the timestamps count fields
    return abs(info.fps - info.tbr) > _VFR_TOLERANCE * info.tbr


@attrs.frozen
class Side:
    """What is done to one input before it is paired."""

    role: str
    rate: Fraction | None  #: its rate after deinterlacing, before any conversion
    vfr: bool
    deinterlace: str | None  #: "bwdif=mode=send_frame" etc., or None
    resample_to: Fraction | None
    offset: int  #: frames skipped at the start, at the paired rate
    #: resampled by its own timestamps even though it looks constant-rate (`vfr = "always"`)
    by_timestamp: bool = False

    def describe(self) -> dict[str, Any]:
        return {"rate": rate_text(self.rate), "variable_rate": self.vfr, "deinterlaced": self.deinterlace,
                "resampled_to": rate_text(self.resample_to) if self.resample_to else None,
                "offset_frames": self.offset, "resampled_by_timestamp": self.by_timestamp or self.vfr}


@attrs.frozen
class Plan:
    """The filters each input goes through before libvmaf, and a record of every decision."""

    reference: Side
    distorted: Side
    rate: Fraction | None  #: the rate both are paired at
    frames: int | None  #: at most this many pairs
    scale: str | None  #: the distorted's scale filter, or None
    decisions: dict[str, Any]
    summary: tuple[str, ...]  #: the decisions worth a line in the summary (empty: the trivial case)
    #: the colour filters (`vmafx_core.colour`): tagging and conversion first, PU21 last
    colour: colour.ColourPlan | None = None

    def chain(self, role: str, target_pix_fmt: str) -> list[str]:
        side = self.reference if role == "reference" else self.distorted
        chain: list[str] = list(self.colour.pre[role]) if self.colour else []
        if side.deinterlace:
            chain.append(side.deinterlace)
        if role == "distorted" and self.scale:
            chain.append(self.scale + (self.colour.scale_options if self.colour else ""))
        if side.resample_to is not None:
            if side.vfr or side.by_timestamp or side.rate is None:  # the timestamps are all there is to go by
                chain.append("setpts=PTS-STARTPTS")
            else:  # constant rate: exact times from the frame number, not the container's rounded ones
                chain += [f"settb={side.rate.denominator}/{side.rate.numerator}", "setpts=N"]
            chain.append(f"fps={side.resample_to.numerator}/{side.resample_to.denominator}")
        if side.offset or self.frames:
            end = f":end_frame={side.offset + self.frames}" if self.frames else ""
            chain.append(f"trim=start_frame={side.offset}{end}")
        if self.colour:  # matrix and range pinned: ffmpeg's negotiation has nothing left to convert
            chain.append(f"format=pix_fmts={target_pix_fmt}{self.colour.format_options}")
            chain += self.colour.post[role]
        else:
            chain.append(f"format={target_pix_fmt}")
        if self.rate is not None:
            # frame n gets timestamp n on both sides: libvmaf's framesync then pairs n with n
            chain += [f"settb={self.rate.denominator}/{self.rate.numerator}", "setpts=N"]
        else:
            chain.append("setpts=N")
        return chain

    @property
    def changes_counts(self) -> bool:
        """Whether the frames paired differ in number from the frames decoded."""
        return any(s.resample_to is not None or s.offset or (s.deinterlace or "").endswith("send_field")
                   for s in (self.reference, self.distorted)) or self.frames is not None


def _deinterlacer(info: StreamInfo, choice: str, double: bool, detected: bool) -> str | None:
    if choice == "off" or not is_interlaced(info):
        return None
    # frames of an input found interlaced by looking carry no field flags: say which field is first
    parity = ("setfield=tff," if info.field_order in ("tt", "bt") else "setfield=bff,") if detected else ""
    return f"{parity}{choice}=mode={'send_field' if double else 'send_frame'}"


_IDET_RE = re.compile(r"Multi frame detection: TFF:\s*(\d+) BFF:\s*(\d+) Progressive:\s*(\d+) Undetermined:\s*(\d+)")


def parse_idet(stderr: str) -> dict[str, int] | None:
    """The last multi-frame summary of ffmpeg's idet filter."""
    found = _IDET_RE.findall(stderr)
    if not found:
        return None
    tff, bff, progressive, undetermined = map(int, found[-1])
    return {"tff": tff, "bff": bff, "progressive": progressive, "undetermined": undetermined}


def idet_field_order(counts: dict[str, int]) -> str:
    """"tt", "bb" or "progressive": interlaced only when most decided frames clearly are."""
    fields = counts["tff"] + counts["bff"]
    if fields >= 4 and fields > 3 * counts["progressive"]:
        return "tt" if counts["tff"] >= counts["bff"] else "bb"
    return "progressive"


def check_interlace(ffmpeg: str, prepared: PreparedInput, raw: RawVideo | None, frames: int,
                    timeout: float) -> dict[str, int] | None:
    """idet's counts over the first `frames` frames (a bounded prefix), or None when it said nothing."""
    with InputArgs(prepared, raw) as inp:
        argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", *inp.args, "-map", "0:v:0",
                "-vf", "idet", "-frames:v", str(frames), "-f", "null", "-"]
        child = Child(argv, name="ffmpeg-idet", pass_fds=inp.pass_fds, secrets=prepared.secrets, tail_lines=40)
    with child:
        code = _wait_bounded(child, prepared, timeout, "to check for interlacing")
    if code != 0:
        raise JobFailed(f"{prepared.role} {prepared.display}: could not read its first frames to check for "
                        "interlacing", detail=child.tail())
    return parse_idet(child.tail())


_STANDARD_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50",
                                                "60000/1001", "60", "100", "120"))


def _own_rate(info: StreamInfo) -> Fraction | None:
    """An input's nominal rate: a VFR file's average is not it."""
    if not is_vfr(info):
        # the average is off by a little where the last frame's duration is missing (24.02 for 24);
        # the timestamps' rate is not, except where it counts fields
        fields = is_interlaced(info) and info.tbr and info.fps and info.tbr > 1.5 * info.fps
        return nominal_rate(info.fps if fields or not info.tbr else info.tbr)
    assert info.fps and info.tbr
    if abs(info.tbr - info.fps) <= 0.1 * info.fps:  # frames dropped: the timestamps' rate is the nominal one
        return nominal_rate(info.tbr)
    # jittered timestamps in a fine time base (tbr 90k): the standard rate nearest the average
    nearest = min(_STANDARD_RATES, key=lambda r: abs(float(r) - info.fps))  # type: ignore[operator]
    return nearest if abs(float(nearest) - info.fps) <= 0.03 * info.fps else nominal_rate(info.fps)


def _close(a: Fraction | None, b: Fraction | None) -> bool:
    return bool(a and b and abs(a / b - 1) < 0.03)


def _offset_frames(text: str, rate: Fraction | None, role: str) -> int:
    if text.endswith("s"):
        if rate is None:
            raise BadInput(f"--{role}-offset {text}: the {role}'s frame rate is unknown; give the offset in frames")
        return round(float(text[:-1]) * rate)
    return int(text)


def _display_aspect(info: StreamInfo) -> float:
    """Width over height of the picture as shown: the pixel grid, its sample aspect ratio, the rotation."""
    num, den = (int(x) for x in (info.sar or "1:1").split(":"))
    if num <= 0 or den <= 0:
        num = den = 1
    width, height = info.display_size
    sar = num / den if width == info.width else den / num  # turned by 90 degrees: the pixels too
    return width * sar / height


def make_plan(ref: StreamInfo, dis: StreamInfo, alignment: Any, *, sync_offset: int | None = None,
              sync_report: dict[str, Any] | None = None,
              idet: dict[str, dict[str, int]] | None = None, act_on_idet: bool = False,
              hdr_models: tuple[str, ...] = (), models: tuple[str, ...] = ()) -> Plan:
    """Decide how the two inputs are paired; BadInput when they cannot be without the user's say.

    The colour decisions (`vmafx_core.colour.plan_colour`) are made here too, so every path that
    builds a pair's chains from a plan converts colour the same way.

    `idet` holds, per role, the counts of a content check for interlacing of an input that states
    no field order; with `act_on_idet` its verdict is taken as the field order, otherwise an input
    it finds interlaced is only named in the summary.
    """
    seen = idet or {}
    stated = {"reference": ref.field_order, "distorted": dis.field_order}
    looks_interlaced = [role for role, counts in seen.items() if idet_field_order(counts) != "progressive"]
    idet = seen if act_on_idet else {}
    if "reference" in idet:
        ref = attrs.evolve(ref, field_order=idet_field_order(idet["reference"]))
    if "distorted" in idet:
        dis = attrs.evolve(dis, field_order=idet_field_order(idet["distorted"]))
    ref_rate, dis_rate = _own_rate(ref), _own_rate(dis)
    # an interlaced input against one at twice its rate: one picture per field, as a TV shows it
    ref_double = bool(is_interlaced(ref) and ref_rate and dis_rate and dis_rate == 2 * ref_rate
                      and not is_interlaced(dis))
    dis_double = bool(is_interlaced(dis) and ref_rate and dis_rate and ref_rate == 2 * dis_rate
                      and not is_interlaced(ref))
    ref_deint = _deinterlacer(ref, alignment.deinterlace, ref_double, "reference" in idet)
    dis_deint = _deinterlacer(dis, alignment.deinterlace, dis_double, "distorted" in idet)
    if ref_deint and ref_double and ref_rate:
        ref_rate *= 2
    if dis_deint and dis_double and dis_rate:
        dis_rate *= 2
    vfr = {"reference": is_vfr(ref), "distorted": is_vfr(dis)}
    # a variable-rate input near the other's rate is shown at that rate (29.8 on average against 30)
    if vfr["distorted"] and not vfr["reference"] and _close(dis_rate, ref_rate):
        dis_rate = ref_rate
    elif vfr["reference"] and not vfr["distorted"] and _close(ref_rate, dis_rate):
        ref_rate = dis_rate
    if any(vfr.values()) and alignment.vfr == "error":
        which = " and ".join(role for role, v in vfr.items() if v)
        raise BadInput(f"{which} has a variable frame rate (average {ref.fps if vfr['reference'] else dis.fps:g} fps "
                       f"against {ref.tbr if vfr['reference'] else dis.tbr:g} by its timestamps); "
                       "score it resampled to a constant rate with --vfr resample (alignment.vfr)")
    target: Fraction | None
    as_they_are = alignment.fps == "index"  # timing ignored: frame n against frame n as decoded
    if as_they_are:
        target = ref_rate or dis_rate
        how = "--frame-rate index"
        vfr = {"reference": False, "distorted": False} if alignment.vfr != "always" else vfr
    elif alignment.fps is not None:
        if alignment.fps in ("reference", "distorted"):
            target = ref_rate if alignment.fps == "reference" else dis_rate
        else:
            target = parse_rate(alignment.fps)
        if target is None:
            raise BadInput(f"--frame-rate {alignment.fps}: that input's frame rate is unknown; give a number")
        how = f"--frame-rate {alignment.fps}"
    elif ref_rate is not None and dis_rate is not None and ref_rate != dis_rate:
        raise BadInput(f"frame rates differ: reference {rate_text(ref_rate)} fps, distorted {rate_text(dis_rate)} "
                       "fps; score both at one rate with --frame-rate reference (or distorted, or a number): "
                       "the other input is then resampled by timestamp, as a player would show it "
                       "(--frame-rate index pairs the frames as decoded, for a stream without timing such as OBU)")
    else:
        target = ref_rate or dis_rate
        how = "variable rate resampled to the reference's nominal rate" if any(vfr.values()) else ""
    by_timestamp = alignment.vfr == "always"
    if by_timestamp:
        how = "--vfr always: shown by timestamp at one rate"

    def resample(rate: Fraction | None, is_var: bool) -> Fraction | None:
        if target is None:
            return None
        if as_they_are and not by_timestamp:
            return None
        return target if (rate != target or is_var or by_timestamp) else None

    ref_offset = _offset_frames(alignment.reference_offset, target, "reference")
    dis_offset = _offset_frames(alignment.distorted_offset, target, "distorted")
    if sync_offset is not None:
        ref_offset, dis_offset = (0, sync_offset) if sync_offset >= 0 else (-sync_offset, 0)
    sides = (Side("reference", ref_rate, vfr["reference"], ref_deint, resample(ref_rate, vfr["reference"]),
                  ref_offset, by_timestamp),
             Side("distorted", dis_rate, vfr["distorted"], dis_deint, resample(dis_rate, vfr["distorted"]),
                  dis_offset, by_timestamp))
    scale = None
    ref_size, dis_size = ref.display_size, dis.display_size
    if dis_size != ref_size:
        if alignment.scale_filter == "none":
            raise BadInput(f"distorted is {dis_size[0]}x{dis_size[1]} but reference is {ref_size[0]}x{ref_size[1]} "
                           "(as displayed); allow scaling with --scale-filter bicubic (or another scaler)")
        scale = f"scale={ref_size[0]}:{ref_size[1]}:flags={alignment.scale_filter}"
    ref_dar, dis_dar = _display_aspect(ref), _display_aspect(dis)
    pairing = ("frame index (rates ignored: --frame-rate index)" if as_they_are else
               "frame index" if target is not None else "frame index (frame rates unknown)")
    decisions: dict[str, Any] = {
        "pairing": pairing,
        "rate": rate_text(target),
        "rate_exact": f"{target.numerator}/{target.denominator}" if target else None,
        "reference": {**sides[0].describe(), "displayed_size": list(ref_size), "rotation": ref.rotation,
                      "field_order": ref.field_order, "field_order_stated": stated["reference"],
                      "interlace_check": seen.get("reference")},
        "distorted": {**sides[1].describe(), "displayed_size": list(dis_size), "rotation": dis.rotation,
                      "field_order": dis.field_order, "field_order_stated": stated["distorted"],
                      "interlace_check": seen.get("distorted"),
                      "scaled": f"{dis_size[0]}x{dis_size[1]} -> {ref_size[0]}x{ref_size[1]} "
                                f"({alignment.scale_filter})" if scale else None},
        "display_aspect": {"reference": round(ref_dar, 4), "distorted": round(dis_dar, 4)},
        "frames_limit": alignment.frames,
        "sync": sync_report,
    }
    summary: list[str] = []
    for side in sides:
        if side.resample_to is not None:
            summary.append(f"{side.role} resampled {rate_text(side.rate)}{' (variable)' if side.vfr else ''}"
                           f" -> {rate_text(side.resample_to)} fps{f' ({how})' if how else ''}")
        if side.deinterlace:
            why = " found interlaced by idet" if side.role in idet else ""
            summary.append(f"{side.role}{why} deinterlaced ({side.deinterlace})")
        if side.offset:
            summary.append(f"{side.role} starts at its frame {side.offset}")
        info = ref if side.role == "reference" else dis
        if info.rotation:
            summary.append(f"{side.role} rotated {info.rotation:g} degrees as displayed")
        if is_interlaced(info) and not side.deinterlace:
            summary.append(f"{side.role} is interlaced and scored as it is (deinterlace off)")
    if not act_on_idet:
        for role in looks_interlaced:
            c = seen[role]
            summary.append(f"{role} states no field order and looks interlaced to idet (TFF {c['tff']}, BFF "
                           f"{c['bff']}, progressive {c['progressive']}); scored as progressive: pass "
                           "--interlace-check deinterlace to deinterlace it")
    if scale:
        summary.append(f"distorted scaled {decisions['distorted']['scaled']}")
    if abs(ref_dar / dis_dar - 1) > 0.01:
        summary.append(f"display aspect ratios differ (reference {ref_dar:.3f}, distorted {dis_dar:.3f}): the "
                       "distorted is stretched to the reference's picture; check for cropping or letterboxing")
    if sync_report:
        summary.append(f"sync found distorted offset {sync_report['offset']:+d} frames "
                       f"({margin_text(sync_report.get('margin'))})")
    if alignment.frames:
        summary.append(f"at most {alignment.frames} frames")
    if target is None:
        summary.append("frame rates unknown: paired by frame index")
    if as_they_are and ref_rate != dis_rate:
        summary.append(f"rates ignored ({rate_text(ref_rate)} and {rate_text(dis_rate)} fps): "
                       "paired frame by frame as decoded (--frame-rate index)")
    colour_plan = colour.plan_colour(describe_colour(ref), describe_colour(dis), alignment,
                                     scaled=scale is not None, hdr_models=hdr_models, models=models)
    decisions["colour"] = colour_plan.decisions
    summary += colour_plan.summary
    decisions["summary"] = summary
    return Plan(reference=sides[0], distorted=sides[1], rate=target, frames=alignment.frames, scale=scale,
                decisions=decisions, summary=tuple(summary), colour=colour_plan)


def describe_colour(info: StreamInfo) -> colour.Description:
    """An input's colour description from its probe (`vmafx_core.colour.describe`)."""
    return colour.describe(dict(info.colour_tags), info.pix_fmt, info.width, info.height, info.hdr_metadata)


def inherited_colour(ref: StreamInfo) -> tuple[tuple[str, str], ...]:
    """The reference's colour description as the stated tags of an encode made from it."""
    desc = describe_colour(ref)
    if desc.matrix == "gbr":  # an RGB reference is encoded to YUV by the encoder's own choice: not inherited
        return ()
    tags = {"range": desc.range, "matrix": desc.matrix, "primaries": desc.primaries, "transfer": desc.transfer,
            "chroma_location": desc.chroma_location or ""}
    return tuple(sorted((k, v) for k, v in tags.items() if v and v != "gbr"))


# --- comparing frames: the sync search and the pairing check -----------------------------------


def frame_cost(a: bytes, b: bytes) -> float:
    """Mean absolute luma difference of two thumbnails (0..255)."""
    return sum(map(abs, map(operator.sub, a, b))) / len(a)


def split_signatures(data: bytes) -> list[bytes]:
    return [data[i:i + SIG_BYTES] for i in range(0, len(data) - SIG_BYTES + 1, SIG_BYTES)]


def offset_costs(ref: Sequence[bytes], dis: Sequence[bytes], window: int, min_overlap: int) -> dict[int, float]:
    """Mean cost of pairing ref[i] with dis[i + d] for every d in [-window, window]."""
    costs: dict[int, float] = {}
    for d in range(-window, window + 1):
        pairs = [(ref[i], dis[i + d]) for i in range(max(0, -d), min(len(ref), len(dis) - d))]
        if len(pairs) >= min_overlap:
            costs[d] = sum(frame_cost(a, b) for a, b in pairs) / len(pairs)
    return costs


#: the best offset must be this many times better than the next best to be trusted
SYNC_MARGIN = 1.15


def choose_offset(costs: dict[int, float]) -> tuple[int, float]:
    """The best offset and how many times worse the next best is; BadInput when none stands out."""
    if len(costs) < 2:
        raise BadInput("sync: the inputs are too short to compare at different offsets; "
                       "give --distorted-offset or --reference-offset instead")
    ranked = sorted(costs.items(), key=lambda kv: kv[1])
    (best, best_cost), (second, second_cost) = ranked[0], ranked[1]
    margin = second_cost / best_cost if best_cost > 0 else float("inf")
    if margin < SYNC_MARGIN or second_cost - best_cost < 0.5:  # half a grey level: static content ties
        raise BadInput(f"sync: no offset stands out (best {best:+d} frames, next best {second:+d} only "
                       f"{margin:.2f}x worse; {SYNC_MARGIN}x needed): the content may be static or different; "
                       "give --distorted-offset or --reference-offset instead")
    return best, margin


def thumbnails(ffmpeg: str, prepared: PreparedInput, raw: RawVideo | None, chain: Sequence[str], count: int,
               timeout: float) -> list[bytes]:
    """Luma thumbnails of the first `count` frames after `chain`: a bounded prefix, never the whole input."""
    with InputArgs(prepared, raw) as inp:
        argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *inp.args, "-map", "0:v:0",
                "-vf", ",".join([*chain, SIGNATURE_FILTER]), "-frames:v", str(count), "-f", "rawvideo", "pipe:1"]
        child = Child(argv, name="ffmpeg-sync", pass_fds=inp.pass_fds, stdout=subprocess.PIPE,
                      secrets=prepared.secrets, tail_lines=20)
    chunks: list[bytes] = []
    with child:
        out = child.proc.stdout
        assert out is not None
        reader = threading.Thread(target=lambda: chunks.append(out.read()), name="ffmpeg-sync-out", daemon=True)
        reader.start()
        code = _wait_bounded(child, prepared, timeout, "for sync")
        reader.join(timeout=5)
    if code != 0:
        raise JobFailed(f"{prepared.role} {prepared.display}: could not read its first frames for sync",
                        detail=child.tail())
    return split_signatures(b"".join(chunks))


def _wait_bounded(child: Child, prepared: PreparedInput, timeout: float, what: str) -> int:
    try:
        return child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.stop(timeout=1.0)
        raise JobFailed(f"{prepared.role} {prepared.display}: reading its first frames {what} took over "
                        f"{timeout:g}s; raise --stall-timeout if the storage is just slow") from None


@attrs.frozen
class PairingBreak:
    frame: int  #: the reference frame (counted from the paired start) where pairing breaks
    shift: int  #: from there, ref[n] looks like dis[n + shift]


def check_pairing(ref: Sequence[bytes], dis: Sequence[bytes], reach: int = 3, run: int = 3) -> PairingBreak | None:
    """The first frame from which the paired frames are clearly not the same picture, or None.

    For each pair n, the distorted frames n-reach..n+reach are compared with reference frame n; when
    another one is clearly closer (2/3 of the cost and a grey level less) for `run` frames in a
    row (or to the end), pairing broke at the first of them.
    """
    n_pairs = min(len(ref), len(dis))
    streak: list[tuple[int, int]] = []
    for n in range(n_pairs):
        here = frame_cost(ref[n], dis[n])
        best_d, best = 0, here
        for d in range(-reach, reach + 1) if here > 1.0 else ():  # closer than a grey level: paired
            if d and 0 <= n + d < len(dis):
                cost = frame_cost(ref[n], dis[n + d])
                if cost < best:
                    best_d, best = d, cost
        if best_d and best < here / 1.5 and here - best > 1.0:
            streak.append((n, best_d))
            if len(streak) >= run or n == n_pairs - 1:
                return PairingBreak(frame=streak[0][0], shift=streak[0][1])
        else:
            streak = []
    return None


def explain_break(broken: PairingBreak) -> str:
    where = f"reference frame {broken.frame}"
    if broken.shift > 0:
        what = (f"the distorted matches {broken.shift} frame{'s' if broken.shift > 1 else ''} later "
                "(extra frames in the distorted)")
    else:
        what = (f"the distorted matches {-broken.shift} frame{'s' if broken.shift < -1 else ''} earlier "
                "(frames missing from the distorted)")
    fix = ("--sync auto or --distorted-offset" if broken.frame == 0 else
           "the inputs are not the same sequence there: a dropped or inserted frame")
    return f"pairing breaks at {where}: {what}; no score is reported ({fix})"


# --- the command line ----------------------------------------------------------------------------


def cli_alignment(table: dict[str, Any], frame_rate: str | None, reference_offset: str | None,
                  distorted_offset: str | None, frame_count: int | None, sync: str | None,
                  sync_window: int | None, deinterlace: str | None, vfr: str | None,
                  interlace_check: str | None = None) -> bool:
    """Put `vmafx run`'s alignment flags into the job's `alignment` table; True for `--sync report`.

    `--sync report` finds the offset as `auto` does and scores only the first paired frame (which
    checks the offset end to end without reading the inputs further); only the offset is printed.
    """
    flags = {"fps": frame_rate, "reference_offset": reference_offset, "distorted_offset": distorted_offset,
             "frames": frame_count, "sync_window": sync_window, "deinterlace": deinterlace, "vfr": vfr,
             "interlace_check": interlace_check}
    for key, value in flags.items():
        if value is not None:
            table[key] = value
    if sync is not None:
        table["sync"] = "auto" if sync == "report" else sync
    if sync == "report":
        table["frames"] = 1
    return sync == "report"


def margin_text(margin: float | None) -> str:
    """How clearly the sync search's best offset won, in words."""
    return "an exact match" if margin is None else f"next best {margin:.2f}x worse"


def plan_pairing(ffmpeg: str, request: ScoreRequest, ref: StreamInfo, dis: StreamInfo, target: str, *,
                 hdr_models: tuple[str, ...] = (), models: tuple[str, ...] = ()) -> Plan:
    """The pairing plan of one scoring request, the same for every scorer: interlace checked, and with
    `sync = "auto"` the distorted's offset found on a prefix of both first. `target` is the pixel
    format the scorer's chains end in (what the sync search compares); `hdr_models` the HDR models
    the scorer has (for `hdr_policy = "hdr-models"`), `models` the names of those the job scores with."""
    settings = request.alignment
    encoded = request.distorted.stdin_fd is not None
    if encoded and dis.field_order is None:
        # an encode of the reference streamed in: it carries the reference's fields as they were woven
        dis = attrs.evolve(dis, field_order=ref.field_order)
    if encoded and not dis.colour_tags:
        # ...and its colour: the encoder converts none, so what the reference means (stated or assumed
        # by the reference's size, not the rung's) is what the encode means
        dis = attrs.evolve(dis, colour_tags=inherited_colour(ref), hdr_metadata=ref.hdr_metadata)
    idet: dict[str, dict[str, int]] = {}
    for role, info, prepared, raw in (("reference", ref, request.reference, request.reference_raw),
                                      ("distorted", dis, request.distorted, request.distorted_raw)):
        if settings.interlace_check != "off" and info.field_order is None and prepared.stdin_fd is None:
            counts = check_interlace(ffmpeg, prepared, raw, settings.interlace_check_frames,
                                               request.stall_timeout)
            if counts is not None:
                idet[role] = counts
    plan = make_plan(ref, dis, settings, idet=idet, act_on_idet=settings.interlace_check == "deinterlace",
                     hdr_models=hdr_models, models=models)
    if encoded and "colour" in plan.decisions:
        plan.decisions["colour"]["distorted"]["described_by"] = "the reference (an encode of it, streamed in)"
    if settings.sync != "auto":
        return plan
    if settings.reference_offset != "0" or settings.distorted_offset != "0":
        raise BadInput("give --sync auto or an offset (--reference-offset/--distorted-offset), not both")
    if request.distorted.stdin_fd is not None or request.reference.stdin_fd is not None:
        raise BadInput("--sync auto needs both inputs as files: an encode streamed into the scorer has no "
                       "prefix to search; give --distorted-offset instead")
    window = settings.sync_window
    count = 2 * window + 48
    unshifted = attrs.evolve(plan, reference=attrs.evolve(plan.reference, offset=0),
                             distorted=attrs.evolve(plan.distorted, offset=0), frames=None)
    thumbs = [thumbnails(ffmpeg, prepared, raw, unshifted.chain(role, target)[:-1], count,
                                   request.stall_timeout)
              for role, prepared, raw in (("reference", request.reference, request.reference_raw),
                                          ("distorted", request.distorted, request.distorted_raw))]
    costs = offset_costs(thumbs[0], thumbs[1], window, min_overlap=max(8, min(map(len, thumbs)) - window))
    best, margin = choose_offset(costs)
    if abs(best) == window:
        raise BadInput(f"sync: the best offset ({best:+d} frames) is at the edge of the search window; "
                       "the true one may lie beyond it: widen --sync-window")
    # margin: the next best offset's cost over the best's; None when the best matched exactly
    report = {"offset": best, "margin": round(margin, 3) if margin != float("inf") else None,
              "window": window, "frames_compared": min(map(len, thumbs)), "cost": round(costs[best], 4)}
    return make_plan(ref, dis, settings, sync_offset=best, sync_report=report, idet=idet,
                     act_on_idet=settings.interlace_check == "deinterlace", hdr_models=hdr_models,
                     models=models)


class Thumbnails:
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
        return (split_signatures(bytes(self._data[0])), split_signatures(bytes(self._data[1])))

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


def compared_frames(counted: tuple[int, int] | None, thumbs: Thumbnails | None, plan: Plan,
                    notes: list[str]) -> tuple[int, int] | None:
    """The frames of each input that reached the comparison (`counted` from ffmpeg's counting
    outputs, or the thumbnails when the pairing is checked). With the check on, an overlap is scored
    only when its frames are the same pictures pair by pair (BadInput naming where pairing breaks);
    a --frame-count the inputs fall short of is a note."""
    compared = counted
    if thumbs is not None:
        ref_sigs, dis_sigs = thumbs.collected()
        compared = (len(ref_sigs), len(dis_sigs))
        if compared[0] != compared[1]:
            broken = check_pairing(ref_sigs, dis_sigs)
            if broken is not None:
                raise BadInput(explain_break(broken))
    if plan.frames and compared is not None and min(compared) < plan.frames:
        notes.append(f"asked for {plan.frames} frames; the inputs have {min(compared)} after alignment")
    return compared
