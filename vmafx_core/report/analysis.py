"""What a report computes from results: worst frames and scenes, rate-quality curves, BD metrics.

BD-rate and BD-VMAF come from the `bjontegaard` package (FAU-LMS), which implements the
Bjontegaard delta with a choice of interpolation: `cubic` is the published VCEG-M33 method (a
least-squares cubic of log10 rate against quality, integrated over the overlap of the two curves),
`pchip` and `akima` are the piecewise interpolations later recommended for curves with few or
uneven points. The tests check it against the formula computed by hand.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from vmafx_core.report.inputs import Pair

#: metrics shown by default: the ones a person asks for, not libvmaf's elementary features
SHOWN_PREFIXES = ("vmaf", "psnr", "float_", "ciede", "cambi", "ssim", "ms_ssim")
BD_METHODS = ("cubic", "pchip", "akima")
#: points a curve needs for each interpolation
BD_MIN_POINTS = {"cubic": 4, "pchip": 2, "akima": 2}


def shown_metrics(pairs: Sequence[Pair], chosen: Sequence[str] = ()) -> list[str]:
    """The metrics to show, in first-seen order: `chosen`, or the well-known ones."""
    names = list(dict.fromkeys(name for p in pairs for name in p.metrics))
    if chosen:
        return [n for n in chosen if n in names]
    shown = [n for n in names if n.startswith(SHOWN_PREFIXES)]  # not libvmaf's "VMAF_integer_feature_..."
    shown.sort(key=lambda n: n != "vmaf")  # VMAF first, the others as they came
    return shown or names[:1]


def primary_metric(names: Sequence[str]) -> str:
    return "vmaf" if "vmaf" in names else names[0]


@attrs.frozen
class Spot:
    """A frame or a window of frames, located in the scored sequence and in the source."""

    index: int  #: first scored frame
    count: int  #: scored frames in it
    value: float  #: the frame's value, or the window's mean
    frame: int  #: first source frame (index * n_subsample)
    last_frame: int
    start_s: float | None  #: its time in the source, when the frame rate is known
    end_s: float | None


def frame_number(pair: Pair, index: int) -> int:
    return index * pair.subsample


def seconds(pair: Pair, index: int) -> float | None:
    fps = pair.fps
    return frame_number(pair, index) / fps if fps else None


def timestamp(value: float | None) -> str:
    """Seconds as h:mm:ss.mmm (m:ss.mmm under an hour); '-' when unknown."""
    if value is None:
        return "-"
    millis = round(value * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours}:{minutes:02d}:{secs:02d}.{ms:03d}" if hours else f"{minutes}:{secs:02d}.{ms:03d}"


def _spot(pair: Pair, index: int, count: int, value: float) -> Spot:
    fps = pair.fps
    last = index + count - 1
    return Spot(index=index, count=count, value=value, frame=frame_number(pair, index),
                last_frame=frame_number(pair, last), start_s=seconds(pair, index),
                end_s=(frame_number(pair, last) + 1) / fps if fps else None)


def series(pair: Pair, metric: str) -> list[tuple[int, float]]:
    """(scored index, value) of every frame that has `metric`."""
    assert pair.frames is not None
    return [(i, f[metric]) for i, f in enumerate(pair.frames) if metric in f]


def worst_frames(pair: Pair, metric: str, count: int = 10) -> list[Spot]:
    """The `count` lowest frames, lowest first (earlier first among equals)."""
    values = series(pair, metric)
    return [_spot(pair, i, 1, v) for i, v in sorted(values, key=lambda iv: (iv[1], iv[0]))[:count]]


def window_frames(pair: Pair, seconds_: float = 1.0, fallback: int = 24) -> int:
    """Scored frames in a window of `seconds_` (or `fallback` frames when the frame rate is unknown)."""
    fps = pair.fps
    return max(1, round(seconds_ * fps / pair.subsample)) if fps else fallback


def worst_windows(pair: Pair, metric: str, window: int, count: int = 5) -> list[Spot]:
    """The `count` non-overlapping windows of `window` frames with the lowest mean, lowest first.

    Greedy: the lowest window of all, then the lowest that does not overlap it, and so on.
    """
    values = series(pair, metric)
    n = len(values)
    if n == 0:
        return []
    window = min(window, n)
    sums = [0.0]
    for _, v in values:
        sums.append(sums[-1] + v)
    means = sorted(((sums[s + window] - sums[s]) / window, s) for s in range(n - window + 1))
    chosen: list[tuple[float, int]] = []
    for mean, start in means:
        if all(start + window <= other or other + window <= start for _, other in chosen):
            chosen.append((mean, start))
            if len(chosen) == count:
                break
    return [_spot(pair, values[s][0], window, mean) for mean, s in chosen]


# ---- rate-quality curves --------------------------------------------------------------------


@attrs.frozen
class RatePoint:
    label: str
    reference: str
    setting: str  #: encoder and options other than crf, bitrate and size
    size: str  #: the encode's size, or "source"
    bitrate_bps: float
    quality: float
    crf: float | None = None
    bitrate_option: str | None = None


@attrs.frozen
class Curve:
    reference: str
    name: str
    points: tuple[RatePoint, ...]  #: sorted by bitrate
    hull: bool = False  #: the convex hull of a setting across sizes


def rate_points(pairs: Sequence[Pair], metric: str = "vmaf",
                curve_by: Sequence[str] = ()) -> tuple[list[RatePoint], list[str]]:
    """One point per encode with a known bitrate; notes for those left out.

    An encode vmafx made carries its settings; a file encoded elsewhere carries the video bitrate
    measured while scoring and the job's labels: its curve is named by the labels in `curve_by`
    (one curve per codec, say), all such files of one reference on one curve when none is named;
    a curve of one file is left off.
    """
    points: list[RatePoint] = []
    files: list[RatePoint] = []  #: encoded elsewhere
    notes: list[str] = []
    missing: dict[str, list[str]] = {}
    for pair in pairs:
        if pair.result is None:
            continue
        quality = pair.metrics.get(metric, {}).get("mean")
        reference = str(pair.result.get("reference", {}).get("uri", "?"))
        encode = pair.encode
        if encode is None:
            rate = (pair.result.get("distorted") or {}).get("bitrate_bps")
            if not isinstance(rate, (int, float)) or rate <= 0 or not isinstance(quality, (int, float)):
                continue  # a result from before bitrates were measured: nothing to draw
            labels = pair.labels
            for name in curve_by:
                if name not in labels:
                    missing.setdefault(name, []).append(pair.label)
            setting = " ".join(f"{name}={labels.get(name, '?')}" for name in curve_by) or "distorted files"
            files.append(RatePoint(label=pair.label, reference=reference, setting=setting, size="source",
                                   bitrate_bps=float(rate), quality=float(quality), crf=_number(labels.get("crf"))))
            continue
        rate = encode.get("bitrate_bps")
        if not isinstance(rate, (int, float)) or rate <= 0 or not isinstance(quality, (int, float)):
            notes.append(f"{pair.label}: no bitrate or no {metric} in the result; left off the curves")
            continue
        options = dict(encode.get("options") or {})
        setting_parts = [str(encode.get("encoder") or options.get("encoder") or "?")]
        for key in ("preset", "pix_fmt"):
            if options.get(key):
                setting_parts.append(f"{key}={options[key]}")
        if options.get("extra_args"):
            setting_parts.append(" ".join(str(a) for a in options["extra_args"]))
        points.append(RatePoint(
            label=pair.label, reference=reference,
            setting=" ".join(setting_parts), size=str(options.get("size") or "source"),
            bitrate_bps=float(rate), quality=float(quality),
            crf=options.get("crf"), bitrate_option=options.get("bitrate")))
    # one file is no curve: a result scored alone beside a ladder is not drawn as a lone point
    counts: dict[tuple[str, str], int] = {}
    for p in files:
        counts[(p.reference, p.setting)] = counts.get((p.reference, p.setting), 0) + 1
    points += [p for p in files if counts[(p.reference, p.setting)] > 1]
    for name, without in missing.items():
        notes.append(f"label {name!r} (--curve-by) is missing from {len(without)} result(s), e.g. {without[0]}; "
                     f"they are drawn as {name}=?")
    return points, notes


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def label_names(pairs: Sequence[Pair]) -> list[str]:
    """Every label name the pairs carry, in first-seen order."""
    return list(dict.fromkeys(name for pair in pairs for name in pair.labels))


def curves(points: Sequence[RatePoint]) -> list[Curve]:
    """One curve per reference, setting and size, in first-seen order, plus each setting's convex hull
    across sizes when it was encoded at more than one size."""
    groups: dict[tuple[str, str, str], list[RatePoint]] = {}
    for p in points:
        groups.setdefault((p.reference, p.setting, p.size), []).append(p)
    out: list[Curve] = []
    settings: dict[tuple[str, str], list[RatePoint]] = {}
    for (reference, setting, size), members in groups.items():
        name = setting if size == "source" else f"{setting} {size}"
        out.append(Curve(reference, name, tuple(sorted(members, key=lambda p: p.bitrate_bps))))
        settings.setdefault((reference, setting), []).extend(members)
    for (reference, setting), members in settings.items():
        if len({p.size for p in members}) > 1:
            out.append(Curve(reference, f"{setting} convex hull", tuple(upper_hull(members)), hull=True))
    return out


def upper_hull(points: Sequence[RatePoint]) -> list[RatePoint]:
    """The rate-quality convex hull: the points no mix of two others beats, in linear bitrate.

    The upper-left boundary of the points in the (bitrate, quality) plane (Andrew's monotone
    chain), cut where quality stops rising: the encodes a rate-quality optimiser would choose
    among. Own code because scipy's ConvexHull refuses fewer than three points or collinear ones.
    """
    ordered = sorted(points, key=lambda p: (p.bitrate_bps, -p.quality))
    hull: list[RatePoint] = []
    for p in ordered:
        if hull and p.quality <= hull[-1].quality:
            continue  # costs more for no better quality
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = ((b.bitrate_bps - a.bitrate_bps) * (p.quality - a.quality)
                     - (b.quality - a.quality) * (p.bitrate_bps - a.bitrate_bps))
            if cross >= 0:  # b lies on or under the line from a to p
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


@attrs.frozen
class BdRow:
    reference: str
    anchor: str
    test: str
    method: str
    bd_rate: float | None  #: percent bitrate change of test against anchor at equal quality
    bd_quality: float | None  #: average quality change at equal bitrate
    problem: str | None = None


def bd_metrics(anchor: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]],
               method: str = "cubic") -> tuple[float, float]:
    """(BD-rate in percent, BD-quality) of `test` against `anchor`, each a list of (bitrate, quality).

    Raises ValueError when the curves cannot be compared (too few points, no overlap).
    """
    import bjontegaard  # the report extra
    import numpy as np

    if method not in BD_METHODS:
        raise ValueError(f"unknown interpolation {method!r}; use one of {', '.join(BD_METHODS)}")
    need = BD_MIN_POINTS[method]
    if min(len(anchor), len(test)) < need:
        raise ValueError(f"{method} interpolation needs at least {need} points per curve")
    for name, points, axis in (("anchor", anchor, 1), ("test", test, 1), ("anchor", anchor, 0), ("test", test, 0)):
        values = [p[axis] for p in points]
        if len(set(values)) != len(values):
            raise ValueError(f"the {name} curve has two points with the same "
                             f"{'quality' if axis else 'bitrate'}")
    results = []
    for axis, function in ((1, bjontegaard.bd_rate), (0, bjontegaard.bd_psnr)):
        # the library interpolates along quality (BD-rate) or log rate (BD-quality): sorted by that axis
        a = sorted(anchor, key=lambda p: p[axis])
        t = sorted(test, key=lambda p: p[axis])
        a_along, t_along = [p[axis] for p in a], [p[axis] for p in t]
        if max(a_along) <= min(t_along) or max(t_along) <= min(a_along):
            raise ValueError(f"the curves do not overlap in {'quality' if axis else 'bitrate'}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the library warns on small overlaps; the report shows the range
            value = function(np.array([p[0] for p in a]), np.array([p[1] for p in a]),
                             np.array([p[0] for p in t]), np.array([p[1] for p in t]),
                             method=method, require_matching_points=False, min_overlap=0)
        if not math.isfinite(float(value)):
            raise ValueError("the interpolation gave no finite value")
        results.append(float(value))
    return results[0], results[1]


def bd_table(all_curves: Sequence[Curve], method: str = "cubic") -> list[BdRow]:
    """The comparisons a reader wants, per reference: each setting against the first setting at the
    same size, each convex hull against the first hull; with a single setting, each size against
    the first size."""
    rows: list[BdRow] = []
    by_reference: dict[str, list[Curve]] = {}
    for c in all_curves:
        by_reference.setdefault(c.reference, []).append(c)
    for reference, group in by_reference.items():
        plain = [c for c in group if not c.hull]
        settings = list(dict.fromkeys(c.points[0].setting for c in plain))
        comparisons: list[tuple[Curve, Curve]] = []
        if len(settings) > 1:
            for size in dict.fromkeys(c.points[0].size for c in plain):
                same = [c for c in plain if c.points[0].size == size]
                comparisons += [(same[0], c) for c in same[1:]]
        else:
            comparisons += [(plain[0], c) for c in plain[1:]]
        hulls = [c for c in group if c.hull]
        comparisons += [(hulls[0], c) for c in hulls[1:]]
        for anchor, test in comparisons:
            try:
                rate, quality = bd_metrics([(p.bitrate_bps, p.quality) for p in anchor.points],
                                           [(p.bitrate_bps, p.quality) for p in test.points], method)
                rows.append(BdRow(reference, anchor.name, test.name, method, rate, quality))
            except ValueError as exc:
                rows.append(BdRow(reference, anchor.name, test.name, method, None, None, str(exc)))
    return rows


def pooled_value(metrics: Mapping[str, Any], metric: str, key: str) -> float | None:
    value = metrics.get(metric, {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None
