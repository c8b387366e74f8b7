"""The result of a job: pooled metrics, per-frame values, provenance and timings.

The JSON form is versioned by `SCHEMA_VERSION`; fields are only ever added within a version.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from vmafx_core.files import write_atomically  # noqa: F401 - where callers found it first
from vmafx_core.job import converter

SCHEMA_VERSION = 1
SCHEMA_ID = "vmafx.result"


@attrs.frozen
class Pooled:
    mean: float
    harmonic_mean: float
    min: float
    max: float
    p1: float
    p5: float
    p50: float
    stdev: float


@attrs.frozen
class InputReport:
    role: str
    uri: str  #: as given, without secrets
    storage: str
    size: int | None
    frames: int  #: frames decoded from this input
    raw: Mapping[str, Any] | None = None
    #: a distorted file's video stream alone: the bytes of its video packets ffmpeg read while
    #: scoring and their rate over the stream's duration (frames decoded / frame rate), not the
    #: container's size, which counts audio and headers too (README: Labels and bitrates)
    video_bytes: int | None = None
    bitrate_bps: float | None = None


@attrs.frozen
class Timings:
    prepare_s: float
    score_s: float
    total_s: float
    fps: float


@attrs.frozen
class Result:
    job_id: str | None
    scorer: str
    frames_scored: int
    metrics: Mapping[str, Pooled]
    reference: InputReport
    distorted: InputReport
    provenance: Mapping[str, Any]
    timings: Timings
    notes: Sequence[str] = ()
    #: for encode jobs: encoder, options, encoded bytes, bitrate, encode speed
    encode: Mapping[str, Any] | None = None
    #: with the result cache in use: {"hit": bool, "key": ...}; a hit also says when it was stored
    #: and the timings of the run that scored it (README: Result cache)
    cache: Mapping[str, Any] | None = None
    #: the job's labels, as given (README: Labels and bitrates)
    labels: Mapping[str, Any] = attrs.field(factory=dict)
    schema: str = SCHEMA_ID
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = converter.unstructure(self)
        return data


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of already sorted values."""
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def pool(values: Sequence[float], libvmaf_pooled: Mapping[str, float] | None = None) -> Pooled:
    """Pool per-frame values; mean, harmonic mean, min and max come from libvmaf when it gave them.

    libvmaf pools at full precision while its log holds six decimals per frame, so its own pooled
    numbers are the exact ones; the rest is computed here. The harmonic mean follows libvmaf's
    definition (shifted by one so a zero frame does not make it zero); where a value is -1 or
    less, where that definition breaks, it is the smallest value.
    """
    ordered = sorted(values)
    lp = libvmaf_pooled or {}
    # shifted by one, the mean is defined for values above -1 only; at -1 (an SSIM of a negated
    # picture) its limit is -1, the smallest value: report that rather than divide by zero
    harmonic = (len(values) / sum(1.0 / (v + 1.0) for v in values) - 1.0) if ordered[0] > -1.0 else ordered[0]
    return Pooled(
        mean=float(lp.get("mean", statistics.fmean(values))),
        harmonic_mean=float(lp.get("harmonic_mean", harmonic)),
        min=float(lp.get("min", ordered[0])),
        max=float(lp.get("max", ordered[-1])),
        p1=percentile(ordered, 1),
        p5=percentile(ordered, 5),
        p50=percentile(ordered, 50),
        stdev=statistics.pstdev(values) if len(values) > 1 else 0.0,
    )


def frames_text(frames: Sequence[Mapping[str, float]], fmt: str) -> str:
    """Per-frame values as CSV (one row per frame) or JSON (a list of objects).

    `frame` is the scorer's frame number (libvmaf's: 0, 3, 6, ... under n_subsample 3) where the
    values carry one, and `time_s` (last) the frame's time on the paired timeline: frame / rate.
    """
    rows = [{"frame": values.get("frame", i), **{k: v for k, v in values.items() if k != "frame"}}
            for i, values in enumerate(frames)]
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    names = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in ("frame", "time_s")]
    names += ["time_s"] if any("time_s" in row for row in rows) else []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["frame", *names])
    for row in rows:
        writer.writerow([row["frame"], *(row.get(n, "") for n in names)])
    return out.getvalue()
