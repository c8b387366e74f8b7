"""`vmafx report`: the numbers on the page are the results', the page works offline in a real
Chromium, and BD-rate is Bjontegaard's formula. Results come from real `vmafx run`s on small clips."""

from __future__ import annotations

import csv
import html.parser
import json
import math
import os
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from testkit.cli import run_vmafx
from testkit.media import Media
from tests.browser import CHARTS_DRAWN, visit
from vmafx_core.report.analysis import bd_metrics

FPS = 24  # the media fixture's frame rate
LADDER_CRFS = (20, 27, 34, 41)
LADDER_PRESETS = ("ultrafast", "medium")
LADDER_SIZES = (None, "160x120")


@attrs.frozen
class Scored:
    folder: Path
    a: Path  #: result of media.ref against media.dis, with PSNR
    a_frames: Path  #: its --frames CSV
    b: Path  #: result of an x264 encode of media.ref
    b_frames: Path  #: its --frames JSON
    ladder: Path  #: ladder result: 2 presets x 2 sizes x 4 crf


def ok(run: Any) -> Any:
    assert run.code == 0, run.stderr
    return run


@pytest.fixture(scope="module")
def scored(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Scored:
    d = tmp_path_factory.mktemp("report")
    ok(run_vmafx("run", str(media.ref), str(media.dis), "--feature", "psnr", "-o", str(d / "a.json"),
                 "--frames", str(d / "a.csv"), "--no-progress"))
    ok(run_vmafx("run", str(media.ref), "--encode", "libx264", "--crf", "40", "--preset", "ultrafast",
                 "-o", str(d / "b.json"), "--frames", str(d / "b.json.frames.json"), "--no-progress"))
    rungs = [{"encoder": "libx264", "crf": crf, "preset": preset, **({"size": size} if size else {})}
             for preset in LADDER_PRESETS for size in LADDER_SIZES for crf in LADDER_CRFS]
    job = d / "ladder.json"
    job.write_text(json.dumps({"id": "lad", "reference": {"uri": str(media.ref)}, "ladder": rungs}))
    ok(run_vmafx("run", "--job", str(job), "-o", str(d / "ladder-result.json"), "--report", str(d / "ladder.html"),
                 "--no-progress"))
    return Scored(d, d / "a.json", d / "a.csv", d / "b.json", d / "b.json.frames.json", d / "ladder-result.json")


class Cells(html.parser.HTMLParser):
    """Every element with data-* attributes, with its text; and every <script src> or <link>."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self.external: list[str] = []
        self._open: list[dict[str, str] | None] = []

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs_}
        if (tag == "script" and "src" in a) or tag in ("link", "img", "iframe"):
            self.external.append(f"<{tag} {a}>")
        data = {k[5:]: v for k, v in a.items() if k.startswith("data-")}
        if data:
            data["_tag"], data["_text"] = tag, ""
            self.cells.append(data)
        self._open.append(data or None)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, text: str) -> None:
        for cell in self._open:
            if cell is not None:
                cell["_text"] += text


def cells_of(page: Path) -> Cells:
    parser = Cells()
    parser.feed(page.read_text())
    return parser


def find(cells: Cells, **where: str) -> list[dict[str, str]]:
    return [c for c in cells.cells if all(c.get(k) == v for k, v in where.items())]


def read_csv(path: Path) -> list[dict[str, float]]:
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items() if k != "frame"} for row in csv.DictReader(fh)]


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def test_numbers_on_the_page_are_the_results(scored: Scored, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    ok(run_vmafx("report", str(scored.a), str(scored.a_frames), str(scored.b), str(scored.b_frames), "-o", str(out)))
    cells = cells_of(out)
    assert cells.external == []  # nothing loaded from elsewhere: plotly.js and the CSS are inline
    for index, result_file in enumerate((scored.a, scored.b)):
        result = load(result_file)
        shown = {c["metric"] for c in find(cells, pair=str(index), stat="mean", _tag="td") if "value" in c}
        assert "vmaf" in shown
        if index == 0:
            assert {"psnr_y", "psnr_cb", "psnr_cr"} <= shown
        for metric in shown:
            for stat, value in result["metrics"][metric].items():
                [cell] = [c for c in find(cells, pair=str(index), metric=metric, stat=stat)
                          if c["_tag"] == "td"][-1:]  # the pair's own table (the overview repeats the mean)
                assert float(cell["value"]) == value, (metric, stat)
                assert cell["_text"] == f"{value:.4f}"
        [frames] = find(cells, pair=str(index), stat="frames")
        assert int(frames["value"]) == result["frames_scored"] == 48


def test_worst_frames_and_scenes_are_those_of_the_frames_file(scored: Scored, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    ok(run_vmafx("report", str(scored.a), str(scored.a_frames), "-o", str(out), "--worst", "5", "--scenes", "2",
                 "--scene-seconds", "0.5"))
    vmaf = [f["vmaf"] for f in read_csv(scored.a_frames)]
    cells = cells_of(out)
    rows = find(cells, pair="0", kind="frame", _tag="tr")
    expected = sorted(range(len(vmaf)), key=lambda i: (vmaf[i], i))[:5]
    assert [int(r["frame"]) for r in rows] == expected
    assert [float(c["value"]) for c in find(cells, pair="0", stat="frame", _tag="td")] == [vmaf[i] for i in expected]
    for row, i in zip(rows, expected, strict=True):
        assert float(row["start-s"]) == i / FPS
        millis = round(i / FPS * 1000)
        assert f"0:{millis // 1000:02d}.{millis % 1000:03d}" in row["_text"]  # its timestamp, as shown
    # the lowest mean of 12 consecutive frames (0.5 s at 24 fps), found by brute force
    window = 12
    means = [(statistics.fmean(vmaf[s:s + window]), s) for s in range(len(vmaf) - window + 1)]
    low_mean, low_start = min(means)
    scenes = find(cells, pair="0", kind="scene", _tag="tr")
    assert len(scenes) == 2
    assert int(scenes[0]["frame"]) == low_start and int(scenes[0]["last-frame"]) == low_start + window - 1
    assert math.isclose(float(find(cells, pair="0", stat="scene", _tag="td")[0]["value"]), low_mean, rel_tol=1e-12)
    second = int(scenes[1]["frame"])
    assert second + window <= low_start or low_start + window <= second  # not overlapping the worst one


def test_the_page_renders_offline_in_chromium_without_console_errors(scored: Scored, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    ok(run_vmafx("report", str(scored.a), str(scored.a_frames), str(scored.b), str(scored.b_frames),
                 str(scored.ladder), "-o", str(out)))
    shot = tmp_path / "shot.png"
    frame_button = "#frames-0 g.updatemenu-button >> nth=1"
    seen = visit(out, wait_for=CHARTS_DRAWN, screenshot=shot, click=frame_button, then="""() => {
        const d = document.getElementById('frames-0');
        return {title: d._fullLayout.xaxis.title.text, x: d.data.map(t => t.x),
                shapes: d._fullLayout.shapes.map(s => [s.x0, s.x1])};
    }""", script="""() => {
        const charts = [...document.querySelectorAll('.plotly-graph-div')];
        return charts.map(d => ({id: d.id, title: d._fullLayout.title.text,
            lines: d.querySelectorAll('g.scatterlayer path.js-line').length,
            shaded: d.querySelectorAll('path[data-index]').length,
            shapes: (d._fullLayout.shapes || []).map(s => [s.x0, s.x1]),
            traces: d.data.map(t => ({name: t.name, x: t.x, y: t.y}))}));
    }""")
    assert seen.errors == [], seen.console
    assert seen.requests == []  # nothing but the file itself, though the page runs scripts
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    charts = {c["title"]: c for c in seen.value}
    # per frame: one chart per shown metric, a drawn line per result that has the metric
    vmaf = charts["vmaf per frame (shaded: the worst 1 s of each)"]
    assert vmaf["lines"] == 2
    assert [t["name"] for t in vmaf["traces"]] == ["dis.mp4", "encode:libx264,crf=40,preset=ultrafast"]
    a_frames = read_csv(scored.a_frames)
    assert vmaf["traces"][0]["y"] == [f["vmaf"] for f in a_frames]
    assert vmaf["traces"][0]["x"] == [i / FPS for i in range(len(a_frames))]  # the time axis
    b_frames = load(scored.b_frames)
    assert vmaf["traces"][1]["y"] == [f["vmaf"] for f in b_frames]
    # each encode's worst second (24 frames), found by brute force, is shaded, drawn, on the time axis
    worst = []
    for values in ([f["vmaf"] for f in a_frames], [f["vmaf"] for f in b_frames]):
        worst.append(min(range(48 - 23), key=lambda s: (statistics.fmean(values[s:s + 24]), s)))
    assert vmaf["shapes"] == [[s / FPS, (s + 23) / FPS] for s in worst]
    assert vmaf["shaded"] == 2
    assert "shapes" not in charts["psnr_y per frame"] or charts["psnr_y per frame"]["shapes"] == []
    # the "frame" button puts frame numbers on the axis, and the shading with them
    assert seen.after == {"title": "frame", "x": [list(range(48)), list(range(48))],
                          "shapes": [[s, s + 23] for s in worst]}
    assert charts["psnr_y per frame"]["lines"] == 1  # only the first result has PSNR
    # rate and quality: 4 curves (2 presets x 2 sizes) and 2 convex hulls, every point a rung
    [rq] = [c for t, c in charts.items() if t.startswith("vmaf against bitrate")]
    assert len(rq["traces"]) == 6 and rq["lines"] == 6
    # every rung, and the --encode run b, which is one more point of the same reference and setting
    encodes = [*load(scored.ladder)["rungs"], load(scored.b)]
    plotted = sorted((x, y) for t in rq["traces"] if "hull" not in t["name"]
                     for x, y in zip(t["x"], t["y"], strict=True))
    assert plotted == sorted((r["encode"]["bitrate_bps"] / 1000, r["metrics"]["vmaf"]["mean"]) for r in encodes)


def curves_of(ladder: list[dict[str, Any]]) -> dict[tuple[str, str | None], list[tuple[float, float]]]:
    """(preset, size) -> [(bitrate, vmaf)] straight from the ladder result."""
    out: dict[tuple[str, str | None], list[tuple[float, float]]] = {}
    for rung in ladder:
        o = rung["encode"]["options"]
        out.setdefault((o["preset"], o["size"]), []).append(
            (rung["encode"]["bitrate_bps"], rung["metrics"]["vmaf"]["mean"]))
    return out


def bjontegaard_by_hand(anchor: list[tuple[float, float]], test: list[tuple[float, float]]) -> tuple[float, float]:
    """VCEG-M33: fit a cubic of log10 rate against quality (and of quality against log10 rate),
    integrate both fits over the overlap, average the difference; BD-rate = 10^avg - 1."""
    def average_gap(xa: list[float], ya: list[float], xt: list[float], yt: list[float]) -> float:
        pa, pt = np.polyint(np.polyfit(xa, ya, 3)), np.polyint(np.polyfit(xt, yt, 3))
        low, high = max(min(xa), min(xt)), min(max(xa), max(xt))
        return float(((np.polyval(pt, high) - np.polyval(pt, low)) - (np.polyval(pa, high) - np.polyval(pa, low)))
                     / (high - low))
    lra, lrt = [math.log10(r) for r, _ in anchor], [math.log10(r) for r, _ in test]
    qa, qt = [q for _, q in anchor], [q for _, q in test]
    return (10 ** average_gap(qa, lra, qt, lrt) - 1) * 100, average_gap(lra, qa, lrt, qt)


def test_bd_rate_is_the_published_formula_on_a_case_computed_by_hand() -> None:
    # anchor: log10(rate) = q / 20; test: log10(rate) = q / 25 + 0.3, over q in 60..90 and 70..95.
    # The log-rate gap is 0.3 - q / 100; its mean over the overlap 70..90 is 0.3 - 0.8 = -0.5,
    # so BD-rate = 10^-0.5 - 1 = -68.3772 %. The cubic fit of points on a line is that line.
    anchor = [(10 ** (q / 20), q) for q in (60.0, 70.0, 80.0, 90.0)]
    test = [(10 ** (q / 25 + 0.3), q) for q in (70.0, 78.0, 86.0, 95.0)]
    expected_rate = (10 ** -0.5 - 1) * 100
    # BD-quality: q_anchor = 20 x, q_test = 25 (x - 0.3), x = log10(rate); the gap 5 x - 7.5 averaged
    # over the overlap of x: anchor 3..4.5, test 3.1..4.1, so 3.1..4.1, mean x 3.6: 18 - 7.5 = 10.5
    for method in ("cubic", "pchip", "akima"):
        rate, quality = bd_metrics(anchor, test, method)
        assert math.isclose(rate, expected_rate, rel_tol=1e-9), method
        assert math.isclose(quality, 10.5, rel_tol=1e-9), method
    assert math.isclose(expected_rate, -68.37722339831621, rel_tol=1e-12)


def test_ladder_report_has_curves_hulls_and_bd_rate_of_the_formula(scored: Scored, tmp_path: Path) -> None:
    out = tmp_path / "ladder.html"
    ok(run_vmafx("report", str(scored.ladder), "-o", str(out)))
    cells = cells_of(out)
    text = out.read_text()
    assert "Interpolation <b>cubic</b>" in text and "VCEG-M33" in text
    curves = curves_of(load(scored.ladder)["rungs"])
    rows = find(cells, stat="bd_rate", _tag="td")
    # same size, other preset (2 sizes), and hull against hull
    assert len(rows) == 3
    for row in rows:
        assert "value" in row, f"no BD value: {text[text.find('needs'):][:200]}"
    # `run --job LADDER --report` made the same comparisons
    from_run = cells_of(scored.folder / "ladder.html")
    assert [(c.get("bd"), c.get("value")) for c in find(from_run, stat="bd_rate")] == \
        [(c.get("bd"), c.get("value")) for c in rows]
    for i, size in enumerate(LADDER_SIZES):
        rate, quality = bjontegaard_by_hand(curves[("ultrafast", size)], curves[("medium", size)])
        assert math.isclose(float(find(cells, bd=str(i), stat="bd_rate")[0]["value"]), rate, rel_tol=1e-9,
                            abs_tol=1e-9)
        assert math.isclose(float(find(cells, bd=str(i), stat="bd_quality")[0]["value"]), quality, rel_tol=1e-9,
                            abs_tol=1e-9)
    # each hull: its points are rungs of the preset, quality rises with bitrate, and no rung of
    # the preset lies above the hull
    points = find(cells, stat="quality", _tag="td")
    assert len(points) >= 16
    for preset in LADDER_PRESETS:
        everything = curves[(preset, None)] + curves[(preset, "160x120")]
        [curve] = {r["curve"] for r in find(cells, _tag="tr") if f"preset={preset} convex hull" in r["_text"]}
        hull = sorted(zip((float(c["value"]) * 1000 for c in find(cells, curve=curve, stat="kbps")),
                          (float(c["value"]) for c in find(cells, curve=curve, stat="quality")), strict=True))
        assert len(hull) >= 2
        for rate, quality in hull:  # a rung of this preset
            assert any(math.isclose(rate, r) and quality == q for r, q in everything)
        assert [q for _, q in hull] == sorted(q for _, q in hull)
        for rate, quality in everything:  # on or under the hull
            for (r0, q0), (r1, q1) in zip(hull, hull[1:], strict=False):
                if r0 <= rate <= r1:
                    assert quality <= q0 + (q1 - q0) * (rate - r0) / (r1 - r0) + 1e-9


def test_static_chart_svg_and_png(scored: Scored, tmp_path: Path) -> None:
    svg, png = tmp_path / "chart.svg", tmp_path / "chart.png"
    ok(run_vmafx("report", str(scored.a), str(scored.a_frames), str(scored.b), str(scored.b_frames),
                 "--chart", str(svg)))
    root = ET.parse(svg).getroot()  # noqa: S314 (our own file)
    assert root.tag.endswith("svg")
    assert sum(1 for e in root.iter() if e.tag.endswith("path")) > 2
    assert "Date" not in svg.read_text()
    ok(run_vmafx("report", str(scored.a), str(scored.a_frames), "--chart", str(png), "-o", str(tmp_path / "r.html")))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "r.html").exists()


@pytest.mark.parametrize(("content", "says"), [
    ("not json {", "not valid JSON"),
    ('{"hello": 1}', "not a vmafx result"),
    ("", "is empty"),
    ('{"schema": "vmafx.result", "schema_version": 1}', "without frames_scored or metrics"),
    ('{"schema": "vmafx.result", "schema_version": 9, "frames_scored": 1, "metrics": {}}', "upgrade vmafx"),
    ("frame,vmaf\n0,abc\n", "is not a number"),
])
def test_a_file_that_is_not_a_result_is_one_line_and_exit_2(tmp_path: Path, content: str, says: str) -> None:
    bad = tmp_path / ("bad.csv" if content.startswith("frame") else "bad.json")
    bad.write_text(content)
    run = run_vmafx("report", str(bad), "-o", str(tmp_path / "r.html"))
    assert run.code == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("vmafx: error: ") and says in run.stderr, run.stderr
    assert not (tmp_path / "r.html").exists()


def test_frames_file_alone_is_pooled_here_and_timed_by_fps(scored: Scored, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    ok(run_vmafx("report", str(scored.a_frames), "--fps", "12", "-o", str(out), "--worst", "1"))
    vmaf = [f["vmaf"] for f in read_csv(scored.a_frames)]
    cells = cells_of(out)
    [mean] = find(cells, pair="0", metric="vmaf", stat="mean")[-1:]
    assert math.isclose(float(mean["value"]), statistics.fmean(vmaf), rel_tol=1e-12)
    [worst] = find(cells, pair="0", kind="frame", _tag="tr")
    assert float(worst["start-s"]) == vmaf.index(min(vmaf)) / 12
    unknown = run_vmafx("report", str(scored.a), "--metric", "nope", "-o", str(out))
    assert unknown.code == 2 and "--metric nope: not in these results" in unknown.stderr


def test_frames_of_another_result_are_refused(scored: Scored, tmp_path: Path) -> None:
    run = run_vmafx("report", str(scored.b), str(scored.a_frames), "-o", str(tmp_path / "r.html"))
    assert run.code == 2 and "must follow its own result" in run.stderr and run.stderr.count("\n") == 1
    missing = run_vmafx("report", str(tmp_path / "nope.json"), "-o", str(tmp_path / "r.html"))
    assert missing.code == 2 and "no such file" in missing.stderr


def test_without_the_report_extra_it_says_so_and_exits_3(scored: Scored, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "plotly"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named plotly')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(shadow.parent), *sys.path])}
    run = run_vmafx("report", str(scored.a), "-o", str(tmp_path / "r.html"), env=env)
    assert run.code == 3 and "pip install 'vmafx[report]'" in run.stderr and run.stderr.count("\n") == 1
    # and `run --report` says it before scoring anything
    early = run_vmafx("run", str(scored.folder / "nothing.mp4"), str(scored.folder / "nothing.mp4"),
                      "--report", str(tmp_path / "r.html"), env=env)
    assert early.code == 3 and "vmafx[report]" in early.stderr


def test_run_and_batch_report_shortcuts(media: Media, tmp_path: Path) -> None:
    page = tmp_path / "run.html"
    run = ok(run_vmafx("run", str(media.ref), str(media.dis), "--json", "--report", str(page), "--no-progress"))
    result = run.json()
    cells = cells_of(page)
    [mean] = [c for c in find(cells, pair="0", metric="vmaf", stat="mean")][-1:]
    assert float(mean["value"]) == result["metrics"]["vmaf"]["mean"]
    assert len(find(cells, pair="0", kind="frame")) == 10  # the frames came along: worst frames listed
    jobs = tmp_path / "jobs.jsonl"
    bad_id = "bad</td><script>alert(1)</script>"  # ids and URIs are text on the page, never markup
    ladder = {"id": "lad", "reference": {"uri": str(media.ref)},
              "ladder": [{"encoder": "libx264", "crf": crf, "preset": "ultrafast"} for crf in (25, 35)]}
    jobs.write_text("".join(json.dumps({"id": i, "reference": {"uri": str(ref)}, "distorted": {"uri": str(media.dis)}})
                            + "\n" for i, ref in (("good", media.ref), (bad_id, tmp_path / "missing.mp4")))
                    + json.dumps(ladder) + "\n")
    batch_page = tmp_path / "batch.html"
    batch = run_vmafx("batch", str(jobs), "--out", str(tmp_path / "results.jsonl"), "--report", str(batch_page),
                      "--no-progress")
    assert batch.code == 1, batch.stderr  # one job failed; the report is written all the same
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    # the page's pairs: ok lines in the file's order (jobs end in any order), a ladder's rungs in place
    scored_ = [rung for r in lines if r["status"] == "ok" for rung in r.get("rungs", [r])]
    assert len(scored_) == 3
    cells = cells_of(batch_page)
    for index, one in enumerate(scored_):
        [mean] = find(cells, pair=str(index), metric="vmaf", stat="mean")[-1:]
        assert float(mean["value"]) == one["metrics"]["vmaf"]["mean"]
    rungs = next(r for r in lines if r["id"] == "lad")["rungs"]
    assert sorted(float(c["value"]) for c in find(cells, stat="quality")) == sorted(
        r["metrics"]["vmaf"]["mean"] for r in rungs)  # the ladder's rate-quality points
    text = batch_page.read_text()
    assert "Failed jobs" in text and "missing.mp4" in text
    assert bad_id not in text and "bad&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in text
    # the results file given to `vmafx report` makes the same tables
    again = tmp_path / "again.html"
    ok(run_vmafx("report", str(tmp_path / "results.jsonl"), "-o", str(again)))
    strip = [(c.get("pair"), c.get("metric"), c.get("stat"), c.get("value")) for c in cells_of(again).cells]
    assert strip == [(c.get("pair"), c.get("metric"), c.get("stat"), c.get("value")) for c in cells.cells]


def test_subsampled_frames_are_placed_at_their_source_frame_and_time(media: Media, tmp_path: Path) -> None:
    result, frames, page = tmp_path / "s.json", tmp_path / "s.csv", tmp_path / "s.html"
    ok(run_vmafx("run", str(media.ref), str(media.dis), "--n-subsample", "2", "-o", str(result),
                 "--frames", str(frames), "--no-progress"))
    ok(run_vmafx("report", str(result), str(frames), "-o", str(page), "--worst", "3"))
    vmaf = [f["vmaf"] for f in read_csv(frames)]
    assert len(vmaf) == 24  # frames 0, 2, 4, ... of 48
    rows = find(cells_of(page), pair="0", kind="frame", _tag="tr")
    lowest = sorted(range(24), key=lambda i: (vmaf[i], i))[:3]
    assert [int(r["frame"]) for r in rows] == [2 * i for i in lowest]
    assert [float(r["start-s"]) for r in rows] == [2 * i / FPS for i in lowest]


def test_report_costs_nothing_at_start_up() -> None:
    """`vmafx run` never imports the report; `vmafx report` imports its libraries only to draw."""
    import subprocess

    code = ("import sys, click; import vmafx_core.cli as c; ctx = click.Context(c.main); "
            "assert 'report' in c.main.list_commands(ctx); c.main.get_command(ctx, 'run'); "
            "assert not [m for m in sys.modules if m.startswith(('plotly', 'matplotlib', 'vmafx_core.report'))]; "
            "c.main.get_command(ctx, 'report'); assert 'vmafx_core.report.command' in sys.modules; "
            "assert not [m for m in sys.modules if m.startswith(('plotly', 'matplotlib', 'numpy', 'bjontegaard'))]")
    subprocess.run([sys.executable, "-c", code], check=True)

