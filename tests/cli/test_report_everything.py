"""The report takes everything vmafx writes: the list of several distorted (and `--report` on that
run), a batch whose per-frame values were kept beside its results (a ladder's too: per-frame charts
and curves, checked in Chromium), and compares several pairs at a glance, per label."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any

from testkit.cli import run_vmafx
from testkit.media import Media
from tests.browser import CHARTS_DRAWN, visit
from tests.cli.test_report import cells_of, find
from vmafx_core.batch.results import frames_name


def ok(run: Any) -> Any:
    assert run.code == 0, run.stderr
    return run


def frames_csv(path: Path) -> list[dict[str, float]]:
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def test_the_list_of_several_distorted_is_a_report_and_run_makes_one(media: Media, tmp_path: Path) -> None:
    page, many = tmp_path / "many.html", tmp_path / "many.json"
    run = ok(run_vmafx("run", str(media.ref), str(media.dis), str(media.ref), "--json", "--report", str(page),
                       "--no-progress"))
    many.write_text(run.stdout)
    rows = run.json()
    cells = cells_of(page)
    for index, row in enumerate(rows):  # the frames came along: each pair's worst frames listed
        assert float(find(cells, pair=str(index), metric="vmaf", stat="mean")[-1]["value"]) == \
            row["metrics"]["vmaf"]["mean"]
        assert len(find(cells, pair=str(index), kind="frame")) == 10
    again = tmp_path / "again.html"
    ok(run_vmafx("report", str(many), "-o", str(again)))
    means = [float(c["value"]) for c in find(cells_of(again), metric="vmaf", stat="mean", _tag="td")
             if c.get("pair") in ("0", "1")]
    assert sorted(set(means)) == sorted({r["metrics"]["vmaf"]["mean"] for r in rows})
    # a failed distorted is listed, not charted; the scored ones still make the page
    failed = run_vmafx("run", str(media.ref), str(media.dis), str(tmp_path / "missing.mp4"), "--json", "--report",
                       str(tmp_path / "some.html"), "--no-progress")
    assert failed.code == 2
    text = (tmp_path / "some.html").read_text()
    assert "Failed jobs" in text and "missing.mp4" in text


def test_a_batch_keeps_frames_and_its_report_has_charts_scenes_and_curves(media: Media, tmp_path: Path) -> None:
    ladder = {"id": "lad", "reference": {"uri": str(media.ref)}, "labels": {"clip": "ref"},
              "ladder": [{"encoder": "libx264", "crf": crf, "preset": "ultrafast"} for crf in (22, 30, 38, 46)]}
    odd_id = "a/b c:d"
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps(ladder) + "\n" + json.dumps(
        {"id": odd_id, "reference": {"uri": str(media.ref)}, "distorted": {"uri": str(media.dis)}}) + "\n")
    results, page = tmp_path / "results.jsonl", tmp_path / "batch.html"
    ok(run_vmafx("batch", str(jobs), "--out", str(results), "--report", str(page), "--no-progress"))
    lines = {line["id"]: line for line in map(json.loads, results.read_text().splitlines())}
    assert '"_frames"' not in results.read_text()
    single = lines[odd_id]
    assert single["frames_file"] == f"results.frames/{frames_name(odd_id)}.csv" and "/" not in frames_name(odd_id)
    kept = frames_csv(tmp_path / single["frames_file"])
    assert len(kept) == single["frames_scored"]
    assert abs(statistics.fmean(f["vmaf"] for f in kept) - single["metrics"]["vmaf"]["mean"]) < 1e-3
    rungs = lines["lad"]["rungs"]
    assert [r["frames_file"] for r in rungs] == [f"results.frames/lad.rung{i}.csv" for i in range(4)]
    cells = cells_of(page)
    # worst frames and scenes of every pair: the 4 rungs and the single job
    assert {c["pair"] for c in find(cells, kind="scene")} == {c["pair"] for c in find(cells, kind="frame")} == \
        {"0", "1", "2", "3", "4"}
    seen = visit(page, wait_for=CHARTS_DRAWN, script="""() => [...document.querySelectorAll('.plotly-graph-div')]
        .map(d => ({id: d.id, lines: d.querySelectorAll('g.scatterlayer path.js-line').length,
                    traces: d.data.map(t => ({name: t.name, y: t.y}))}))""")
    assert seen.errors == [] and seen.requests == []
    charts = {c["id"]: c for c in seen.value}
    vmaf = charts["frames-0"]
    assert vmaf["lines"] == 5
    for trace, record in zip(vmaf["traces"], [*rungs, single], strict=True):
        assert trace["y"] == [f["vmaf"] for f in frames_csv(tmp_path / record["frames_file"])]
    assert charts["rq-0"]["lines"] == 1 and len(charts["rq-0"]["traces"][0]["y"]) == 4
    # --no-frames: no folder, no file named, and the report says there are none
    bare = tmp_path / "bare.jsonl"
    ok(run_vmafx("batch", str(jobs), "--out", str(bare), "--no-frames", "--report", str(tmp_path / "bare.html"),
                 "--no-progress"))
    assert not (tmp_path / "bare.frames").exists() and "frames_file" not in bare.read_text()
    assert "No per-frame values" in (tmp_path / "bare.html").read_text()


def test_several_pairs_at_a_glance_per_label(media: Media, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    specs = [("a", str(media.dis), "small"), ("b", str(media.ref), "same"), ("c", str(media.dis), "small")]
    jobs.write_text("".join(json.dumps({"id": i, "reference": {"uri": str(media.ref)}, "distorted": {"uri": d},
                                        "labels": {"size": size}}) + "\n" for i, d, size in specs))
    results, page = tmp_path / "results.jsonl", tmp_path / "glance.html"
    ok(run_vmafx("batch", str(jobs), "--out", str(results), "--report", str(page), "--no-progress"))
    by_id = {line["id"]: line for line in map(json.loads, results.read_text().splitlines())}
    cells = cells_of(page)
    for size, members in (("small", ["a", "c"]), ("same", ["b"])):
        means = [by_id[m]["metrics"]["vmaf"]["mean"] for m in members]
        assert float(find(cells, label="size", group=size, stat="mean")[0]["value"]) == statistics.fmean(means)
        assert float(find(cells, label="size", group=size, stat="min")[0]["value"]) == min(means)
    for index, job in enumerate(("a", "b", "c")):  # the overview's spread is each pair's own
        [stdev] = [c for c in find(cells, pair=str(index), metric="vmaf", stat="stdev")][:1]
        assert float(stdev["value"]) == by_id[job]["metrics"]["vmaf"]["stdev"]
        assert float(find(cells, pair=str(index), stat="kbps")[0]["value"]) == \
            by_id[job]["distorted"]["bitrate_bps"] / 1000
