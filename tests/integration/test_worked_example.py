"""docs/WORKED_EXAMPLE.md runs as written: its Python block as a script and its shell block through
the real `vmafx`, on a local folder and on a bucket of the test S3 server (listed with one `rclone
lsjson -R` per folder). The API and the command line give the same numbers; the report has
per-frame charts and one rate-quality curve per codec and clip with its BD-rate."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.dataset import CLIPS, Dataset, make_dataset
from testkit.s3server import S3Server
from testkit.watch import Watcher
from tests.cli.test_report import cells_of, find
from tests.integration.test_batch_dask import DaskCluster, dask_cluster  # noqa: F401 (the fixture)

DOC = Path(__file__).resolve().parents[2] / "docs" / "WORKED_EXAMPLE.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_worked_example_runs_as_written(where: str, dataset: Dataset, tmp_path: Path, request: pytest.FixtureRequest
                                            ) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "VMAFX_RESULT_CACHE": "off"}
    if where == "local":
        env["DATASET"] = str(dataset.folder)
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        bucket: str = request.getfixturevalue("bucket")
        for path in sorted(dataset.folder.rglob("*.mp4")):
            server.put_file(bucket, f"set/{path.relative_to(dataset.folder)}", path)
        env.update(server.rclone_env("s3"), DATASET=f"s3://{bucket}/set")
    [python] = blocks("python")
    api = subprocess.run([sys.executable, "-c", python], env=env, capture_output=True, text=True, timeout=900)
    assert api.returncode == 0, api.stderr
    assert len([line for line in api.stdout.splitlines() if "VMAF" in line]) == 16
    [shell] = blocks("sh")
    cli = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], env=env, capture_output=True, text=True,
                         timeout=900)
    assert cli.returncode == 0, cli.stderr
    assert "vmafx: 16 jobs; 0 distorted without a reference" in cli.stderr
    assert len(cli.stdout.splitlines()) == 17  # the --dry-run table
    lines = {}
    for name in ("results.jsonl", "cli-results.jsonl"):
        lines[name] = {line["id"]: line for line in map(json.loads, (tmp_path / name).read_text().splitlines())}
    assert lines["results.jsonl"].keys() == lines["cli-results.jsonl"].keys() and len(lines["results.jsonl"]) == 16
    for job_id, line in lines["results.jsonl"].items():
        other = lines["cli-results.jsonl"][job_id]
        assert line["metrics"] == other["metrics"] and line["labels"] == other["labels"]
        assert line["distorted"]["bitrate_bps"] == other["distorted"]["bitrate_bps"]
        assert line["distorted"]["storage"] == ("local" if where == "local" else "rclone-http")
    if where == "s3":  # the listing: one rclone lsjson -R per template folder, not one request per file
        watched = subprocess.Popen([sys.executable, "-m", "vmafx_core", "jobs", f"{env['DATASET']}/refs/{{clip}}.mp4",
                                    f"{env['DATASET']}/encodes/{{clip}}_{{codec}}_crf{{crf}}.mp4", "--dry-run"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        watcher = Watcher(watched.pid)
        assert watched.wait(timeout=120) == 0
        watcher.stop()
        listings = [watcher.cmdlines[pid].rstrip(b"\0").split(b"\0") for pid in watcher.named(b"rclone")]
        assert sorted(argv[-1] for argv in listings) == [f"s3:{bucket}/set/encodes".encode(),
                                                         f"s3:{bucket}/set/refs".encode()]
        assert all(b"lsjson" in argv and b"-R" in argv for argv in listings)
    for page in ("report.html", "cli-report.html"):
        cells = cells_of(tmp_path / page)
        assert len(find(cells, stat="bd_rate", _tag="td")) == len(CLIPS)  # x265 against x264, per clip
        assert len({c["pair"] for c in find(cells, kind="scene")}) == 16  # every pair's frames came along
    assert [(c.get("bd"), c.get("value")) for c in find(cells_of(tmp_path / "report.html"), stat="bd_rate")] == \
        [(c.get("bd"), c.get("value")) for c in find(cells_of(tmp_path / "cli-report.html"), stat="bd_rate")]


def test_a_remote_folder_that_is_not_there_is_one_line(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    env = {**os.environ, **s3_server.rclone_env("s3")}
    empty = f"s3://{bucket}/nothing: lists no files (no such folder, or an empty one)"
    for template, says in ((f"s3://{bucket}/nothing/{{clip}}.mp4", empty),
                           ("nosuchremote:set/refs/{clip}.mp4", "unknown rclone remote 'nosuchremote'")):
        run = subprocess.run([sys.executable, "-m", "vmafx_core", "jobs", template, f"s3://{bucket}/e/{{clip}}_x.mp4"],
                             env=env, capture_output=True, text=True, timeout=120)
        first = run.stderr.splitlines()[0]  # (then, for rclone's own words, the hint to run with -v)
        assert run.returncode == 2 and first.startswith("vmafx: error: ") and says in first, run.stderr


def test_the_api_runs_a_batch_on_a_dask_cluster_as_locally(dask_cluster: DaskCluster, dataset: Dataset,  # noqa: F811
                                                           tmp_path: Path) -> None:
    """`vmafx.run_batch(..., cluster=...)`: the same numbers as the local pool, frames back from the workers."""
    import vmafx

    pairing = vmafx.jobs_from_listing(f"{dataset.refs}/{{clip}}.mp4",
                                      f"{dataset.encodes}/{{clip}}_x265_crf{{crf}}.mp4")
    assert len(pairing.jobs) == 8 and len(pairing.unused) == 0
    here = vmafx.run_batch(pairing.jobs, tmp_path / "here.jsonl", cache=False)
    there = vmafx.run_batch(pairing.jobs, tmp_path / "there.jsonl", cluster=dask_cluster.address, cache=False)
    assert here.exit_code == there.exit_code == 0
    local = {s.result.job_id: s for s in here.scored}
    assert len(there.scored) == 8
    for scored in there.scored:
        mine = local[scored.result.job_id]
        assert scored.to_dict()["metrics"] == mine.to_dict()["metrics"] and scored.labels == mine.labels
        assert scored.bitrate_bps == mine.bitrate_bps and len(scored.frames) == len(mine.frames) == 24
        assert [f["vmaf"] for f in scored.frames] == [f["vmaf"] for f in mine.frames]
