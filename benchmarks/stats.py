"""Small statistics over repeated samples: median and spread, and ratios of paired runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max, mean, population stdev and interquartile range, plus the samples."""
    if not values:
        return {"n": 0, "samples": []}
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 3
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
        "stdev": statistics.pstdev(ordered) if len(ordered) > 1 else 0.0,
        "p25": quartiles[0],
        "p75": quartiles[2],
        "p90": percentile(ordered, 90),
        "samples": list(values),
    }


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of sorted values."""
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Per-round ratios of runs made back to back, so slow phases of a noisy machine cancel out.

    Pairs by index (round); a round cut short by an interruption is left out.
    """
    return [a / b for a, b in zip(numerators, denominators, strict=False) if b > 0]


def spread(s: dict[str, Any], fmt: str = "{:.3f}") -> str:
    """'median (min-max)' for a table cell."""
    if not s.get("n"):
        return "n/a"
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


def medians(samples: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each mode's samples (one dict of measurements per round) as the median of each measurement."""
    return {mode: {k: statistics.median(s[k] for s in rows) for k in rows[0]} for mode, rows in samples.items()}


def first_difference(result: dict[str, Any], other: dict[str, Any], tolerance: float = 1e-6) -> str | None:
    """Where two vmafx results' pooled values differ by more than `tolerance`, or None."""
    for metric, pooled in other["metrics"].items():
        for stat, value in pooled.items():
            if abs(result["metrics"][metric][stat] - value) > tolerance:
                return f"{metric} {stat} differs: {result['metrics'][metric][stat]} vs {value}"
    return None
