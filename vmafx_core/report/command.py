"""`vmafx report`, and the `--report` shortcut of `vmafx run` and `vmafx batch`."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from vmafx_core.errors import BadInput, EnvironmentMissing
from vmafx_core.report import inputs as report_inputs
from vmafx_core.report.analysis import BD_METHODS
from vmafx_core.report.inputs import Inputs, Pair

EXTRA_MISSING = "vmafx report needs the report extra (plotly, matplotlib, bjontegaard): pip install 'vmafx[report]'"

REPORT_HELP = """\b
Exit codes:
  0    the report (and chart) was written
  2    bad input: a file that is not a vmafx result, unreadable JSON, a
       --frames file that does not match the result before it
  3    the report extra is not installed: pip install 'vmafx[report]'
"""


def require_extra() -> None:
    """Fail with one line and exit 3 when the report's libraries are missing (checked before any work)."""
    try:
        import bjontegaard  # noqa: F401
        import matplotlib  # noqa: F401
        import numpy  # noqa: F401
        import plotly  # noqa: F401
    except ImportError as exc:
        raise EnvironmentMissing(f"{EXTRA_MISSING} ({exc})") from None


def write(inputs: Inputs, output: Path | None, chart: Path | None = None, *, metrics: Sequence[str] = (),
          worst: int = 10, scenes: int = 5, window_seconds: float = 1.0, bd_method: str = "cubic",
          title: str = "vmafx report", curve_by: Sequence[str] = ()) -> None:
    """Write the HTML report and/or the static chart of `inputs`."""
    from vmafx_core.report import analysis
    from vmafx_core.report.render import Options, page
    from vmafx_core.result import write_atomically

    require_extra()
    known = list(dict.fromkeys(name for p in inputs.pairs for name in p.metrics))
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise BadInput(f"--metric {', '.join(unknown)}: not in these results (they have {', '.join(known)})")
    labelled = analysis.label_names(inputs.pairs)
    stray = [name for name in curve_by if name not in labelled]
    if stray:
        raise BadInput(f"--curve-by {', '.join(stray)}: no result has such a label (they have "
                       f"{', '.join(labelled) or 'no labels'}; give a job labels, e.g. --label codec=x264)")
    if chart is not None:
        from vmafx_core.report.chart import write_chart

        shown = analysis.shown_metrics(inputs.pairs, metrics)
        write_chart(inputs.pairs, analysis.primary_metric(shown), chart)
    if output is not None:
        options = Options(metrics=tuple(metrics), worst=worst, scenes=scenes, window_seconds=window_seconds,
                          bd_method=bd_method, title=title, curve_by=tuple(curve_by))
        write_atomically(output, page(inputs, options))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(output, 0o666 & ~umask)  # a page to share, not a private temp file


def for_run(data: Mapping[str, Any], frames: Sequence[Mapping[str, float]] | None, output: Path,
            origin: str = "vmafx run") -> None:
    """The report of one `vmafx run`: its result (or ladder) and the frames it has in hand."""
    if data.get("schema") == report_inputs.LADDER_SCHEMA:
        pairs = [Pair(label=report_inputs.result_label(rung, f"rung {i}"), source=f"{origin} rung {i}", result=rung)
                 for i, rung in enumerate(data["rungs"])]
    else:
        pairs = [Pair(label=report_inputs.result_label(data, "result"), source=origin, result=data,
                      frames=[dict(f) for f in frames] if frames else None, frames_source=origin if frames else None)]
    write(Inputs(pairs=pairs), output)
    click.echo(f"vmafx: report in {output}", err=True)


def for_many(rows: Sequence[Mapping[str, Any]], frames: Sequence[Sequence[Mapping[str, float]] | None],
             output: Path, origin: str = "vmafx run") -> None:
    """The report of several distorted scored against one reference: each with its frames in hand,
    the failed ones listed."""
    pairs, failed = [], []
    for i, (row, its_frames) in enumerate(zip(rows, frames, strict=True)):
        if row.get("schema") == report_inputs.ERROR_SCHEMA:
            failed.append(report_inputs.Failed(str(row.get("distorted")), f"{origin} distorted {i}",
                                               str(row.get("error"))))
            continue
        pairs.append(Pair(label=report_inputs.result_label(row, f"distorted {i}"), source=f"{origin} distorted {i}",
                          result=row, frames=[dict(f) for f in its_frames] if its_frames else None,
                          frames_source=origin if its_frames else None))
    report_inputs.unique_labels(pairs)
    write(Inputs(pairs=pairs, failed=failed), output)
    click.echo(f"vmafx: report in {output}", err=True)


def for_batch(results: Path, output: Path, curve_by: Sequence[str] = ()) -> None:
    """The report of a batch's results file (every job in it, this run's and earlier ones)."""
    write(report_inputs.load([results]), output, curve_by=curve_by)
    click.echo(f"vmafx: report in {output}", err=True)


@click.command(epilog=REPORT_HELP,
               short_help="One HTML page of results: per-frame charts, worst scenes, rate-quality, BD-rate.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the HTML report here (one self-contained file).")
@click.option("--chart", type=click.Path(path_type=Path, dir_okay=False),
              help="Also (or only) write the per-frame chart of the main metric as a static .svg or .png.")
@click.option("--metric", "metrics", multiple=True,
              help="Show this metric (repeatable; default: vmaf, psnr*, ssim and the other named metrics).")
@click.option("--worst", type=click.IntRange(min=1), default=10, show_default=True,
              help="Worst frames listed per pair.")
@click.option("--scenes", type=click.IntRange(min=1), default=5, show_default=True,
              help="Worst scenes listed per pair.")
@click.option("--scene-seconds", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Length of a scene window (24 frames when the frame rate is unknown).")
@click.option("--bd-method", type=click.Choice(BD_METHODS), default="cubic", show_default=True,
              help="Interpolation for BD-rate and BD-VMAF (cubic: Bjontegaard's published fit).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True),
              help="Frame rate of --frames files given without their result (for the time axis).")
@click.option("--title", default="vmafx report", show_default=True, help="Title of the page.")
@click.option("--curve-by", "curve_by", multiple=True, metavar="LABEL",
              help="Files encoded elsewhere: one rate-quality curve per value of this label (repeatable: "
                   "codec, then preset, ...); default: one curve per reference.")
def report(files: tuple[Path, ...], output: Path | None, chart: Path | None, metrics: tuple[str, ...], worst: int,
           scenes: int, scene_seconds: float, bd_method: str, fps: float | None, title: str,
           curve_by: tuple[str, ...] = ()) -> None:
    """Make one HTML report of FILES: results (run -o / --json), --frames files, ladders, batch results.

    A result holds pooled values only: give its --frames file right after it
    (`vmafx report a.json a.csv b.json b.csv`) for per-frame charts and the worst frames and scenes.
    Several results are drawn on one chart per metric; encodes with a bitrate (ladders, --encode
    runs, and files encoded elsewhere, whose video bitrate is measured while scoring) also get
    rate-quality curves, the convex hull across sizes, and BD-rate / BD-VMAF; --curve-by names the
    labels that split files encoded elsewhere into curves.
    """
    from vmafx_core.clierrors import user_errors as _user_errors

    with _user_errors():
        if output is None and chart is None:
            raise BadInput("give -o REPORT.html and/or --chart CHART.svg")
        if chart is not None and chart.suffix.lower() not in (".svg", ".png"):
            raise BadInput(f"--chart {chart}: use a .svg or .png file name")
        loaded = report_inputs.load(list(files), fps=fps)
        write(loaded, output, chart, metrics=metrics, worst=worst, scenes=scenes, window_seconds=scene_seconds,
              bd_method=bd_method, title=title, curve_by=curve_by)
        for made in (output, chart):
            if made is not None:
                click.echo(f"vmafx: wrote {made}", err=True)
    sys.exit(0)
