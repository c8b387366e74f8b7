"""The HTML page: plotly charts with plotly.js inlined, and tables of the numbers.

Everything the page needs is inside it (plotly.js from the plotly wheel, about 4.8 MB; CSS; the
data), so it opens offline, from a mail attachment or an artifact store, years later. Every number
in a table carries its exact value in `data-value` beside the rounded text, so tools (and the
tests) can read the page back.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from vmafx_core import __version__
from vmafx_core.report import analysis
from vmafx_core.report.analysis import BdRow, Curve, Spot
from vmafx_core.report.inputs import Inputs, Pair

#: plotly's own default colours, set explicitly so a shaded scene matches its line
COLOURS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880", "#ff97ff",
           "#fecb52")
POOLED_STATS = ("mean", "harmonic_mean", "min", "max", "p1", "p5", "p50", "stdev")
PLOT_CONFIG = {"displaylogo": False, "responsive": True}

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 0 20px 40px; color: #1d232b; }
h1 { font-size: 22px; margin: 22px 0 4px; } h2 { font-size: 18px; margin-top: 34px;
     border-bottom: 1px solid #d7dce2; padding-bottom: 4px; } h3 { font-size: 15px; margin: 24px 0 6px; }
table { border-collapse: collapse; margin: 6px 0 14px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eceff2; text-align: left; }
td.num, th.num { text-align: right; } th { background: #f4f6f8; font-weight: 600; }
.meta { color: #5a6572; margin: 2px 0; } .note { color: #8a5a00; } .chart { min-height: 360px; }
.cols { display: flex; gap: 36px; flex-wrap: wrap; } code { font-size: 12.5px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 4, **data: Any) -> str:
    attributes = "".join(f' data-{k.replace("_", "-")}="{_e(v)}"' for k, v in data.items())
    if value is None:
        return f'<td class="num"{attributes}>-</td>'
    return f'<td class="num"{attributes} data-value="{value!r}">{value:.{digits}f}</td>'


def _table(head: Sequence[str], rows: Iterable[str], cls: str, numeric_from: int = 1) -> str:
    cells = "".join(f'<th class="num">{_e(h)}</th>' if i >= numeric_from else f"<th>{_e(h)}</th>"
                    for i, h in enumerate(head))
    return f'<table class="{cls}"><thead><tr>{cells}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _figure_html(figure: Any, div_id: str) -> str:
    import plotly.io

    return str(plotly.io.to_html(figure, full_html=False, include_plotlyjs=False, div_id=div_id,
                                 config=PLOT_CONFIG, default_height=380))


# ---- per-frame charts -----------------------------------------------------------------------


def frames_figure(pairs: Sequence[Pair], metric: str, window_seconds: float | None = None) -> Any:
    """Every pair's `metric` over time, one trace each; buttons switch the axis: seconds or frame.

    With `window_seconds`, each pair's worst scene is shaded in the colour of its line.
    """
    import plotly.graph_objects as go

    timed = all(p.fps for p in pairs)
    figure = go.Figure()
    by_time, by_frame = [], []
    shapes_time: list[dict[str, Any]] = []
    shapes_frame: list[dict[str, Any]] = []
    for n, pair in enumerate(pairs):
        colour = COLOURS[n % len(COLOURS)]
        if window_seconds is not None:
            for worst in analysis.worst_windows(pair, metric, analysis.window_frames(pair, window_seconds), 1):
                last = worst.index + worst.count - 1
                shade = {"type": "rect", "xref": "x", "yref": "paper", "y0": 0, "y1": 1, "fillcolor": colour,
                         "opacity": 0.15, "line": {"width": 0}, "layer": "below"}
                shapes_frame.append({**shade, "x0": worst.frame, "x1": analysis.frame_number(pair, last)})
                if timed:
                    shapes_time.append({**shade, "x0": worst.start_s, "x1": analysis.seconds(pair, last)})
        points = analysis.series(pair, metric)
        frames = [analysis.frame_number(pair, i) for i, _ in points]
        times = [analysis.seconds(pair, i) for i, _ in points] if timed else None
        by_frame.append(frames)
        by_time.append(times)
        custom = [[f, analysis.timestamp(analysis.seconds(pair, i))] for (i, _), f in zip(points, frames, strict=True)]
        figure.add_trace(go.Scatter(
            x=times if timed else frames, y=[v for _, v in points], mode="lines", name=pair.label,
            line={"color": colour}, customdata=custom, hovertemplate="frame %{customdata[0]}<br>%{customdata[1]}<br>"
            + f"{metric} " + "%{y:.4f}<extra>%{fullData.name}</extra>"))
    title = f"{metric} per frame"
    if window_seconds is not None:
        title += f" (shaded: the worst {window_seconds:g} s of each)" if timed else " (shaded: the worst scene of each)"
    layout: dict[str, Any] = {
        "title": {"text": title}, "yaxis": {"title": {"text": metric}},
        "shapes": shapes_time if timed else shapes_frame,
        "xaxis": {"title": {"text": "time (s)" if timed else "frame"}}, "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.2}, "margin": {"t": 60, "b": 40}, "template": "plotly_white",
    }
    if timed:
        layout["updatemenus"] = [{
            "type": "buttons", "direction": "right", "x": 1.0, "xanchor": "right", "y": 1.15, "showactive": True,
            "buttons": [
                {"label": "time (s)", "method": "update",
                 "args": [{"x": by_time}, {"xaxis.title.text": "time (s)", "shapes": shapes_time}]},
                {"label": "frame", "method": "update",
                 "args": [{"x": by_frame}, {"xaxis.title.text": "frame", "shapes": shapes_frame}]},
            ]}]
    figure.update_layout(**layout)
    return figure


def rate_quality_figure(reference: str, group: Sequence[Curve], metric: str) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    for curve in group:
        figure.add_trace(go.Scatter(
            x=[p.bitrate_bps / 1000 for p in curve.points], y=[p.quality for p in curve.points],
            mode="lines+markers", name=curve.name, text=[p.label for p in curve.points],
            line={"dash": "dash", "width": 3} if curve.hull else {},
            hovertemplate="%{text}<br>%{x:.1f} kb/s<br>" + metric + " %{y:.4f}<extra>%{fullData.name}</extra>"))
    figure.update_layout(title={"text": f"{metric} against bitrate: {reference}"}, template="plotly_white",
                         xaxis={"title": {"text": "bitrate (kb/s, log scale)"}, "type": "log"},
                         yaxis={"title": {"text": f"{metric} (mean)"}}, legend={"orientation": "h", "y": -0.2},
                         margin={"t": 60, "b": 40})
    return figure


# ---- the page -------------------------------------------------------------------------------


@attrs.frozen
class Options:
    metrics: tuple[str, ...] = ()
    worst: int = 10
    scenes: int = 5
    window_seconds: float = 1.0
    bd_method: str = "cubic"
    title: str = "vmafx report"
    #: labels that name the rate-quality curves of files encoded elsewhere (one curve per value)
    curve_by: tuple[str, ...] = ()


def page(inputs: Inputs, options: Options) -> str:
    import plotly.offline

    pairs = inputs.pairs
    metrics = analysis.shown_metrics(pairs, options.metrics) if pairs else []
    body: list[str] = [f"<h1>{_e(options.title)}</h1>",
                       f'<p class="meta">vmafx {_e(__version__)}, made '
                       f'{datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")} from '
                       f'{len(pairs)} scored pair{"s" if len(pairs) != 1 else ""}'
                       f'{f", {len(inputs.failed)} failed jobs" if inputs.failed else ""}.</p>']
    body += [f'<p class="note">{_e(n)}</p>' for n in inputs.notes]
    with_frames = [p for p in pairs if p.frames]
    body.append('<h2 id="per-frame">Per frame</h2>')
    if with_frames:
        for n, metric in enumerate(metrics):
            having = [p for p in with_frames if any(metric in f for f in p.frames or ())]
            if having:
                shade = options.window_seconds if metric == analysis.primary_metric(metrics) else None
                chart = _figure_html(frames_figure(having, metric, shade), f"frames-{n}")
                body.append(f'<div class="chart">{chart}</div>')
    else:
        body.append('<p class="note">No per-frame values: results and ladders hold pooled values only. Give each '
                    "result's <code>--frames</code> file right after it "
                    '(<code>vmafx report a.json a.csv</code>), make the report with '
                    '<code>vmafx run ... --report</code>, or give a batch results file whose batch kept its '
                    "frames (every batch does, unless run with <code>--no-frames</code>).</p>")
    body.append(_overview(pairs, metrics))
    body.append(_by_label(pairs, metrics))
    for index, pair in enumerate(pairs):
        body.append(_pair_section(index, pair, metrics, options))
    body.append(_rate_quality(pairs, options, metrics))
    if inputs.failed:
        rows = [f"<tr><td>{_e(f.label)}</td><td>{_e(f.source)}</td><td>{_e(f.error)}</td></tr>"
                for f in inputs.failed]
        body.append('<h2 id="failed">Failed jobs</h2>' + _table(["job", "where", "error"], rows, "failed", 99))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(options.title)}"
            f"</title><style>{CSS}</style>\n<script type=\"text/javascript\">{plotly.offline.get_plotlyjs()}</script>\n"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _overview(pairs: Sequence[Pair], metrics: Sequence[str]) -> str:
    if not pairs:
        return ""
    rows = []
    primary = analysis.primary_metric(metrics) if metrics else None
    labels = analysis.label_names(pairs)
    rated = any(_bitrate(p) is not None for p in pairs)
    for index, pair in enumerate(pairs):
        cells = "".join(_num(analysis.pooled_value(pair.metrics, m, "mean"), pair=index, metric=m, stat="mean")
                        for m in metrics)
        if primary is not None:  # the spread over the frames of the main metric, and its worst 5 %
            cells += "".join(_num(analysis.pooled_value(pair.metrics, primary, s), pair=index, metric=primary, stat=s)
                             for s in ("stdev", "p5"))
        if rated:
            rate = _bitrate(pair)
            cells += _num(None if rate is None else rate / 1000, 1, pair=index, stat="kbps")
        cells += "".join(f"<td>{_e(pair.labels.get(name, ''))}</td>" for name in labels)
        frames = (pair.result or {}).get("frames_scored", len(pair.frames or ()))
        rows.append(f'<tr><td><a href="#pair-{index}">{_e(pair.label)}</a></td>'
                    f'<td class="num" data-pair="{index}" data-stat="frames" data-value="{frames}">{frames}</td>'
                    f"{cells}</tr>")
    spread = [f"{primary} stdev", f"{primary} p5"] if primary is not None else []
    head = ["pair", "frames", *(f"{m} mean" for m in metrics), *spread, *(["kb/s"] if rated else []),
            *(f"label {name}" for name in labels)]
    return '<h2 id="pairs">Pooled</h2>' + _table(head, rows, "overview", 1)


def _bitrate(pair: Pair) -> float | None:
    """The distorted's bitrate: an encode's own, or a file's as measured while scoring."""
    for where in (pair.encode, (pair.result or {}).get("distorted")):
        if isinstance(where, Mapping) and isinstance(where.get("bitrate_bps"), (int, float)):
            return float(where["bitrate_bps"])
    return None


def _by_label(pairs: Sequence[Pair], metrics: Sequence[str]) -> str:
    """Several pairs at a glance, per label: for each value of each label that varies, how many
    pairs have it and the spread of their pooled main metric (mean of the means, lowest, highest)."""
    if not metrics:
        return ""
    primary = analysis.primary_metric(metrics)
    parts = []
    for name in analysis.label_names(pairs):
        groups: dict[str, list[float]] = {}
        for pair in pairs:
            value = analysis.pooled_value(pair.metrics, primary, "mean")
            if name in pair.labels and value is not None:
                groups.setdefault(str(pair.labels[name]), []).append(value)
        if len(groups) < 2:
            continue
        rows = [f'<tr><td>{_e(value)}</td><td class="num">{len(means)}</td>'
                f'{_num(sum(means) / len(means), 4, label=name, group=value, stat="mean")}'
                f'{_num(min(means), 4, label=name, group=value, stat="min")}'
                f'{_num(max(means), 4, label=name, group=value, stat="max")}</tr>'
                for value, means in groups.items()]
        parts.append(f"<h3>By {_e(name)}</h3>" + _table(
            [name, "pairs", f"{primary} mean of means", "lowest mean", "highest mean"], rows, "by-label"))
    if not parts:
        return ""
    return ('<h2 id="by-label">By label</h2><p class="meta">Each label that varies: the pairs with each value and '
            f"the spread of their pooled {_e(primary)} means.</p>" + "".join(parts))


def colour_text(provenance: dict[str, Any]) -> str:
    """Each input's colour description and what was done, from the result's colour decisions."""
    colour = (provenance.get("alignment") or {}).get("colour")
    if not colour:
        return ""

    def one(desc: dict[str, Any]) -> str:
        assumed = set(desc.get("assumed") or ())
        fields = [f"{desc.get(k)}{'*' if k in assumed else ''}" for k in ("range", "matrix", "primaries", "transfer")]
        return f"{desc.get('dynamic_range', 'SDR')} {' '.join(fields)} {desc.get('bit_depth')}-bit"

    done = [line.removeprefix("colour: ") for line in (provenance.get("alignment") or {}).get("summary") or ()
            if line.startswith("colour")]
    text = f"reference {one(colour['reference'])}; distorted {one(colour['distorted'])}"
    return text + (f" ({'; '.join(done)})" if done else "") + (" * assumed" if "*" in text else "")


def _pair_section(index: int, pair: Pair, metrics: Sequence[str], options: Options) -> str:
    result = pair.result or {}
    parts = [f'<h3 id="pair-{index}">{_e(pair.label)}</h3>']
    if result:
        ref, dis = result.get("reference", {}), result.get("distorted", {})
        provenance = result.get("provenance", {})
        parts.append(f'<p class="meta">reference <code>{_e(ref.get("uri"))}</code>, distorted '
                     f'<code>{_e(dis.get("uri"))}</code>; model {_e(provenance.get("model", "-"))}, '
                     f'{_e(result.get("frames_scored"))} frames scored'
                     f'{f" at {pair.fps:g} fps" if pair.fps else ""}; from <code>{_e(pair.source)}</code></p>')
        colour = colour_text(provenance)
        if colour:
            parts.append(f'<p class="meta colour">colour: {_e(colour)}</p>')
        encode = pair.encode
        if encode:
            rate = encode.get("bitrate_bps")
            parts.append(f'<p class="meta">encode {_e(encode.get("encoder"))} '
                         f'{_e(_options_text(encode.get("options") or {}))}, {_e(encode.get("encoded_bytes"))} '
                         f'bytes{f", {rate / 1000:.1f} kb/s" if isinstance(rate, (int, float)) else ""}</p>')
        measured = dis.get("bitrate_bps")
        if isinstance(measured, (int, float)) and not encode:
            parts.append(f'<p class="meta" data-pair="{index}" data-stat="bitrate" data-value="{measured!r}">'
                         f"distorted video {measured / 1000:.1f} kb/s ({_e(dis.get('video_bytes'))} bytes of "
                         "video packets over the stream's duration)</p>")
        if pair.labels:
            parts.append('<p class="meta labels">labels ' + ", ".join(
                f'<span class="label" data-label="{_e(k)}">{_e(k)}={_e(v)}</span>' for k, v in pair.labels.items())
                + "</p>")
    else:
        parts.append(f'<p class="meta">per-frame values only, from <code>{_e(pair.source)}</code>; pooled here'
                     f'{f" ({pair.fps:g} fps from --fps)" if pair.fps else " (frame rate unknown: --fps)"}</p>')
    rows = []
    for m in metrics:
        if m in pair.metrics:
            cells = "".join(_num(analysis.pooled_value(pair.metrics, m, s), pair=index, metric=m, stat=s)
                            for s in POOLED_STATS)
            rows.append(f"<tr><td>{_e(m)}</td>{cells}</tr>")
    parts.append(_table(["metric", *POOLED_STATS], rows, "pooled"))
    if not pair.frames:
        parts.append('<p class="note">No per-frame values for this pair: give its <code>--frames</code> file '
                     "right after it to see its worst frames and scenes.</p>")
        return "<section>" + "".join(parts) + "</section>"
    metric = analysis.primary_metric([m for m in metrics if m in pair.metrics] or list(pair.metrics))
    window = analysis.window_frames(pair, options.window_seconds)
    worst = analysis.worst_frames(pair, metric, options.worst)
    scenes = analysis.worst_windows(pair, metric, window, options.scenes)
    frames_table = _table(["#", "frame", "time", metric],
                          (_spot_row(index, "frame", rank, s, metric) for rank, s in enumerate(worst, 1)),
                          "worst-frames", 1)
    scenes_table = _table(["#", "frames", "time", f"{metric} mean"],
                          (_spot_row(index, "scene", rank, s, metric) for rank, s in enumerate(scenes, 1)),
                          "worst-scenes", 1)
    span = f"{options.window_seconds:g} s" if pair.fps else f"{window} frames"
    parts.append(f'<div class="cols"><div><h4>Worst frames ({_e(metric)})</h4>{frames_table}</div>'
                 f"<div><h4>Worst scenes: lowest {_e(metric)} mean over {span} ({window} frames), "
                 f"not overlapping</h4>{scenes_table}</div></div>")
    return "<section>" + "".join(parts) + "</section>"


def _spot_row(index: int, kind: str, rank: int, spot: Spot, metric: str) -> str:
    frames = str(spot.frame) if spot.count == 1 else f"{spot.frame}–{spot.last_frame}"
    when = analysis.timestamp(spot.start_s) if spot.count == 1 else (
        f"{analysis.timestamp(spot.start_s)}–{analysis.timestamp(spot.end_s)}")
    return (f'<tr data-pair="{index}" data-kind="{kind}" data-frame="{spot.frame}" data-last-frame="{spot.last_frame}"'
            f' data-start-s="{spot.start_s!r}"><td>{rank}</td><td class="num">{frames}</td><td class="num">{_e(when)}'
            f"</td>{_num(spot.value, pair=index, metric=metric, stat=kind)}</tr>")


def _options_text(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in options.items() if k != "encoder" and v not in (None, [], ""))


def _rate_quality(pairs: Sequence[Pair], options: Options, metrics: Sequence[str]) -> str:
    metric = analysis.primary_metric(metrics) if metrics else "vmaf"
    points, notes = analysis.rate_points(pairs, metric, options.curve_by)
    if not points:
        return ""
    all_curves = analysis.curves(points)
    parts = ['<h2 id="rate-quality">Rate and quality</h2>']
    parts += [f'<p class="note">{_e(n)}</p>' for n in notes]
    references = list(dict.fromkeys(c.reference for c in all_curves))
    for n, reference in enumerate(references):
        group = [c for c in all_curves if c.reference == reference]
        chart = _figure_html(rate_quality_figure(reference, group, metric), f"rq-{n}")
        parts.append(f'<div class="chart">{chart}</div>')
    rows = []
    for c_index, curve in enumerate(all_curves):
        for p in curve.points:
            rows.append(f'<tr data-curve="{c_index}"><td>{_e(curve.name)}</td><td>{_e(p.label)}</td>'
                        f'<td class="num">{_e(p.size)}</td><td class="num">{_e("-" if p.crf is None else p.crf)}</td>'
                        f'{_num(p.bitrate_bps / 1000, 1, curve=c_index, stat="kbps")}'
                        f'{_num(p.quality, 4, curve=c_index, stat="quality")}</tr>')
    parts.append("<h3>Points</h3>" + _table(["curve", "encode", "size", "crf", "kb/s", f"{metric} mean"], rows,
                                             "rate-points", 2))
    parts.append('<p class="meta">The convex hull of a setting is the upper-left boundary of its points in '
                 "linear bitrate and quality across sizes: the encodes worth choosing at some bitrate.</p>")
    bd_rows = analysis.bd_table(all_curves, options.bd_method)
    if bd_rows:
        parts.append(_bd_section(bd_rows, metric, options.bd_method))
    return "".join(parts)


def _bd_section(rows: Sequence[BdRow], metric: str, method: str) -> str:
    described = {
        "cubic": "a least-squares cubic polynomial of log10(bitrate) against quality (and of quality against "
                 "log10(bitrate) for BD-" + metric + "), integrated over the range both curves cover: "
                 "Bjontegaard's published method (VCEG-M33)",
        "pchip": "piecewise cubic Hermite interpolation (PCHIP) of the same, integrated over the range both "
                 "curves cover",
        "akima": "Akima spline interpolation of the same, integrated over the range both curves cover",
    }[method]
    cells = []
    for i, r in enumerate(rows):
        problem = f'<td class="note">{_e(r.problem)}</td>' if r.problem else "<td></td>"
        cells.append(f"<tr><td>{_e(r.reference)}</td><td>{_e(r.anchor)}</td><td>{_e(r.test)}</td>"
                     f'{_num(r.bd_rate, 2, bd=i, stat="bd_rate")}{_num(r.bd_quality, 3, bd=i, stat="bd_quality")}'
                     f"{problem}</tr>")
    return ("<h3>Bjontegaard delta</h3>"
            f'<p class="meta">BD-rate: the average bitrate change of the test curve against the anchor at equal '
            f"{_e(metric)}, in percent (negative: the test needs fewer bits). BD-{_e(metric)}: the average "
            f"{_e(metric)} change at equal bitrate. Interpolation <b>{_e(method)}</b>: {_e(described)}; computed "
            "with the <code>bjontegaard</code> package. Each row compares a test curve against an anchor curve "
            "of the same reference.</p>"
            + _table(["reference", "anchor", "test", "BD-rate (%)", f"BD-{metric}", ""], cells, "bd", 3))
