"""A static per-frame chart (SVG or PNG) for READMEs and papers, drawn with matplotlib."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vmafx_core.errors import BadInput
from vmafx_core.report import analysis
from vmafx_core.report.inputs import Pair

FORMATS = (".svg", ".png")


def write_chart(pairs: Sequence[Pair], metric: str, path: Path) -> None:
    """`metric` per frame of every pair that has frames, one line each, on one chart."""
    from matplotlib.figure import Figure  # the report extra; no pyplot: no global state, no GUI backend

    fmt = path.suffix.lower()
    if fmt not in FORMATS:
        raise BadInput(f"--chart {path}: use a .svg or .png file name")
    having = [p for p in pairs if p.frames and any(metric in f for f in p.frames)]
    if not having:
        raise BadInput(f"--chart needs per-frame {metric} values: give each result's --frames file right "
                       "after it on the command line")
    timed = all(p.fps for p in having)
    figure = Figure(figsize=(8, 3.2), dpi=120, layout="constrained")
    axes = figure.add_subplot()
    for pair in having:
        points = analysis.series(pair, metric)
        x = [float(analysis.seconds(pair, i) or 0.0) if timed else float(analysis.frame_number(pair, i))
             for i, _ in points]
        axes.plot(x, [v for _, v in points], linewidth=1.2, label=pair.label)
    axes.set_xlabel("time (s)" if timed else "frame")
    axes.set_ylabel(metric)
    axes.grid(True, alpha=0.3)
    if len(having) > 1:
        axes.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    # no creation date in the file, so the same results give the same bytes
    metadata = {"Date": None} if fmt == ".svg" else {"Software": None}
    figure.savefig(path, format=fmt.lstrip("."), metadata=metadata)
