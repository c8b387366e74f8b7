"""Labels and measured bitrates: a job's labels reach its result, the batch summary and the report;
a pre-encoded distorted's video bitrate is its video packets' bytes over its duration (checked
against ffmpeg's framecrc listing of the packets); the report draws rate-quality curves and BD-rate
for files encoded elsewhere, grouped by the labels a user names (checked in Chromium and against
Bjontegaard's formula computed by hand)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from testkit.cli import run_vmafx
from testkit.dataset import CLIPS, CODECS, CRFS, FPS, Dataset, make_dataset, video_packet_bytes
from tests.browser import CHARTS_DRAWN, visit
from tests.cli.test_report import bjontegaard_by_hand, cells_of, find


def ok(run: Any) -> Any:
    assert run.code == 0, run.stderr
    return run


@attrs.frozen
class Scored:
    data: Dataset
    results: Path
    lines: list[dict[str, Any]]


def jobs_of(data: Dataset) -> list[dict[str, Any]]:
    return [{"id": f"{clip}-{codec}-{crf}", "reference": {"uri": str(data.refs / f"{clip}.mp4")},
             "distorted": {"uri": str(data.encode(clip, codec, crf))},
             "labels": {"clip": clip, "codec": codec, "crf": crf}}
            for clip in CLIPS for codec in CODECS for crf in CRFS]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="module")
def scored(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Scored:
    d = tmp_path_factory.mktemp("scored")
    jobs = d / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(j) + "\n" for j in jobs_of(dataset)))
    ok(run_vmafx("batch", str(jobs), "--out", str(d / "results.jsonl"), "--summary", str(d / "summary.csv"),
                 "--group-size", "8", "--no-progress"))
    lines = [json.loads(line) for line in (d / "results.jsonl").read_text().splitlines()]
    return Scored(dataset, d / "results.jsonl", lines)


def truth_bps(path: Path) -> float:
    size, packets = video_packet_bytes(path)
    return size * 8 / (packets / FPS)


def test_a_run_measures_the_video_bitrate_and_keeps_its_labels(dataset: Dataset) -> None:
    dis = dataset.encode("bars", "x265", 30)
    result = ok(run_vmafx("run", str(dataset.refs / "bars.mp4"), str(dis), "--label", "codec=x265",
                          "--label", "crf=30", "--json", "--no-progress")).json()
    size, packets = video_packet_bytes(dis)
    assert result["labels"] == {"codec": "x265", "crf": "30"}
    assert result["distorted"]["video_bytes"] == size
    assert result["distorted"]["bitrate_bps"] == pytest.approx(size * 8 / (packets / FPS), abs=0.1)
    # not the container's size over the duration: the file has an audio track
    assert result["distorted"]["size"] * 8 > 1.3 * result["distorted"]["bitrate_bps"]
    assert result["reference"]["bitrate_bps"] is None


def test_a_batch_keeps_labels_and_bitrates_in_results_and_summary(scored: Scored) -> None:
    by_id = {line["id"]: line for line in scored.lines}
    assert len(by_id) == 16 and all(line["status"] == "ok" for line in scored.lines)
    for job in jobs_of(scored.data):
        line = by_id[job["id"]]
        assert line["labels"] == job["labels"]  # numbers stay numbers
        assert line["distorted"]["bitrate_bps"] == pytest.approx(truth_bps(Path(job["distorted"]["uri"])), abs=0.1)
        assert line["provenance"]["group"]["size"] == 8  # scored in shared passes: measured all the same
    rows = list(csv.DictReader((scored.results.parent / "summary.csv").open()))
    assert list(rows[0])[-4:] == ["bitrate_bps", "label:clip", "label:codec", "label:crf"]
    for row in rows:
        line = by_id[row["id"]]
        assert float(row["bitrate_bps"]) == line["distorted"]["bitrate_bps"]
        assert [row["label:clip"], row["label:codec"], row["label:crf"]] == \
            [str(line["labels"][k]) for k in ("clip", "codec", "crf")]


def test_report_draws_curves_per_label_and_bd_rate_of_the_formula(scored: Scored, tmp_path: Path) -> None:
    page = tmp_path / "rd.html"
    ok(run_vmafx("report", str(scored.results), "--curve-by", "codec", "-o", str(page)))
    cells = cells_of(page)
    # per clip (reference), x265 against x264 by hand from the packet sizes and the results' means
    rows = find(cells, stat="bd_rate", _tag="td")
    assert len(rows) == len(CLIPS)
    for index, clip in enumerate(CLIPS):
        curve = {codec: [(truth_bps(scored.data.encode(clip, codec, crf)),
                          next(line["metrics"]["vmaf"]["mean"] for line in scored.lines
                               if line["id"] == f"{clip}-{codec}-{crf}")) for crf in CRFS] for codec in CODECS}
        rate, quality = bjontegaard_by_hand(curve["x264"], curve["x265"])
        assert float(find(cells, bd=str(index), stat="bd_rate")[0]["value"]) == pytest.approx(rate, rel=1e-6)
        assert float(find(cells, bd=str(index), stat="bd_quality")[0]["value"]) == pytest.approx(quality, rel=1e-6)
    labels = [c["label"] for c in find(cells, _tag="span") if "label" in c]
    assert labels.count("codec") == 16
    seen = visit(page, wait_for=CHARTS_DRAWN, script="""() => [...document.querySelectorAll('.plotly-graph-div')]
        .filter(d => d.id.startsWith('rq-')).map(d => ({title: d._fullLayout.title.text,
            lines: d.querySelectorAll('g.scatterlayer path.js-line').length,
            traces: d.data.map(t => ({name: t.name, x: t.x, y: t.y}))}))""")
    assert seen.errors == [] and seen.requests == []
    assert len(seen.value) == len(CLIPS)
    for chart in seen.value:
        clip = next(c for c in CLIPS if f"/{c}.mp4" in chart["title"])
        assert chart["lines"] == 2 and [t["name"] for t in chart["traces"]] == ["codec=x264", "codec=x265"]
        for trace, codec in zip(chart["traces"], CODECS, strict=True):
            drawn = sorted(trace["x"])
            assert drawn == pytest.approx(sorted(truth_bps(scored.data.encode(clip, codec, crf)) / 1000
                                                 for crf in CRFS), rel=1e-6)


def test_without_curve_by_one_curve_per_reference_and_unknown_labels_refused(scored: Scored, tmp_path: Path) -> None:
    page = tmp_path / "one.html"
    ok(run_vmafx("report", str(scored.results), "-o", str(page)))
    # the curves' points (the overview table's kb/s cells carry a pair, not a curve)
    points = [c for c in find(cells_of(page), stat="kbps", _tag="td") if "curve" in c]
    assert len(points) == 16 and len({p["curve"] for p in points}) == len(CLIPS)
    bad = run_vmafx("report", str(scored.results), "--curve-by", "encoder", "-o", str(tmp_path / "x.html"))
    assert bad.code == 2 and bad.stderr.strip().splitlines() == [
        "vmafx: error: --curve-by encoder: no result has such a label (they have clip, codec, crf; give a job "
        "labels, e.g. --label codec=x264)"]
    assert not (tmp_path / "x.html").exists()


@pytest.mark.parametrize(("args", "says"), [
    (("--label", "codec"), "--label 'codec': give NAME=VALUE"),
    (("--label", "2x=1"), "--label '2x=1': give NAME=VALUE"),
])
def test_a_bad_label_is_one_line_and_exit_2(dataset: Dataset, args: tuple[str, ...], says: str) -> None:
    run = run_vmafx("run", str(dataset.refs / "bars.mp4"), str(dataset.encode("bars", "x264", 22)), *args)
    assert run.code == 2 and len(run.stderr.strip().splitlines()) == 1 and says in run.stderr


def test_job_file_labels_are_checked_like_any_field(dataset: Dataset, tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"reference": {"uri": str(dataset.refs / "bars.mp4")},
                               "distorted": {"uri": str(dataset.encode("bars", "x264", 22))},
                               "labels": {"codec": ["x264"]}}))
    run = run_vmafx("run", "--job", str(job))
    assert run.code == 2 and "job.labels: label 'codec': must be a string or a number" in run.stderr


def test_the_other_scorer_measures_the_same_bitrate(dataset: Dataset) -> None:
    dis = dataset.encode("pattern", "x264", 38)
    result = ok(run_vmafx("run", str(dataset.refs / "pattern.mp4"), str(dis), "--scorer", "ffmpeg-metrics",
                          "--scorer-option", "metrics=psnr", "--json", "--no-progress")).json()
    size, packets = video_packet_bytes(dis)
    assert result["distorted"]["video_bytes"] == size
    assert result["distorted"]["bitrate_bps"] == pytest.approx(size * 8 / (packets / FPS), abs=0.1)
