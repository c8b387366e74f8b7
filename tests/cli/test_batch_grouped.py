"""`vmafx batch` scores jobs that share a reference in one pass: the same results as job by job."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.media import bare_libvmaf, clip_720p, ffmpeg_run
from testkit.procs import alive
from tests.cli.test_batch import by_id, pair, read_results, scoring_children, wait_for_lines, write_jobs


@pytest.fixture(scope="module")
def ladders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two 320x180 references and three rungs of each (one of them at half size)."""
    folder = tmp_path_factory.mktemp("ladders")
    files: dict[str, Path] = {}
    for ref, pattern in (("a", "testsrc2"), ("b", "smptehdbars")):
        files[ref] = folder / f"{ref}.mkv"
        ffmpeg_run("-f", "lavfi", "-i", f"{pattern}=size=320x180:rate=25:duration=2", "-c:v", "libx264", "-crf", "8",
                   str(files[ref]))
        for crf in (28, 36):
            files[f"{ref}{crf}"] = folder / f"{ref}{crf}.mkv"
            ffmpeg_run("-i", str(files[ref]), "-c:v", "libx264", "-crf", str(crf), str(files[f"{ref}{crf}"]))
        files[f"{ref}small"] = folder / f"{ref}small.mkv"
        ffmpeg_run("-i", str(files[ref]), "-vf", "scale=160:90", "-c:v", "libx264", "-crf", "30",
                   str(files[f"{ref}small"]))
    return files


def _jobs(files: dict[str, Path], extra: list[tuple[str, str, Path]] = ()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    jobs = [pair(files[ref], files[f"{ref}{rung}"], f"{ref}-{rung}", scorer={"name": "libvmaf", "features": ["psnr"]})
            for ref in ("a", "b") for rung in ("28", "36", "small")]
    jobs += [pair(files[ref], dis, job_id, scorer={"name": "libvmaf", "features": ["psnr"]})
             for job_id, ref, dis in extra]
    return jobs


def _batch(jobs: Path, out: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    done = run_vmafx("batch", str(jobs), "--out", str(out), *args, env=env)
    assert "Traceback" not in done.stderr
    return done


def _entry(cache: Path, key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((cache / "results" / key[:2] / f"{key}.json").read_text())
    return data


def test_grouped_results_equal_ungrouped_value_for_value(ladders: dict[str, Path], tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", _jobs(ladders))
    grouped_cache, alone_cache = tmp_path / "cache-grouped", tmp_path / "cache-alone"
    grouped = _batch(jobs, tmp_path / "grouped.jsonl", env={"VMAFX_RESULT_CACHE": "on",
                                                              "VMAFX_CACHE_DIR": str(grouped_cache)})
    alone = _batch(jobs, tmp_path / "alone.jsonl", "--group-size", "1",
                   env={"VMAFX_RESULT_CACHE": "on", "VMAFX_CACHE_DIR": str(alone_cache)})
    assert grouped.code == alone.code == 0, grouped.stderr + alone.stderr
    g, a = by_id(read_results(tmp_path / "grouped.jsonl")), by_id(read_results(tmp_path / "alone.jsonl"))
    assert sorted(g) == sorted(a) and len(g) == 6
    for job_id, one in a.items():
        assert "group" not in one["provenance"]
        assert g[job_id]["provenance"]["group"]["size"] == 3, job_id  # each reference's three in one pass
        assert g[job_id]["metrics"] == one["metrics"], job_id
        assert g[job_id]["frames_scored"] == one["frames_scored"] == 50
        assert g[job_id]["provenance"]["filter_graph"] == one["provenance"]["filter_graph"]
        assert set(g[job_id]) == set(one), job_id  # the same schema, line for line
        # per frame: both batches kept their frames in their caches, under the one key
        assert g[job_id]["cache"]["key"] == one["cache"]["key"]
        key = one["cache"]["key"]
        assert _entry(grouped_cache, key)["frames"] == _entry(alone_cache, key)["frames"]
    # and the ground truth for one pair: bare ffmpeg libvmaf
    bare = bare_libvmaf(["-i", str(ladders["a"])], ["-i", str(ladders["asmall"])], tmp_path / "bare.json",
                        width=320, height=180)
    frames = _entry(grouped_cache, g["a-small"]["cache"]["key"])["frames"]
    assert [f["vmaf"] for f in frames] == pytest.approx([f["metrics"]["vmaf"] for f in bare["frames"]], abs=1e-6)
    assert g["a-small"]["metrics"]["vmaf"]["mean"] == pytest.approx(bare["pooled_metrics"]["vmaf"]["mean"], abs=1e-6)


def test_a_cached_member_is_not_scored_again(ladders: dict[str, Path], tmp_path: Path) -> None:
    env = {"VMAFX_RESULT_CACHE": "on", "VMAFX_CACHE_DIR": str(tmp_path / "cache")}
    everything = _jobs(ladders)
    first = write_jobs(tmp_path / "first.jsonl", everything[:2])
    assert _batch(first, tmp_path / "first-out.jsonl", env=env).code == 0
    jobs = write_jobs(tmp_path / "jobs.jsonl", everything[:3])
    done = _batch(jobs, tmp_path / "out.jsonl", env=env)
    assert done.code == 0, done.stderr
    got = by_id(read_results(tmp_path / "out.jsonl"))
    assert [got[i]["cache"]["hit"] for i in ("a-28", "a-36", "a-small")] == [True, True, False]
    assert "group" not in got["a-small"]["provenance"]  # the one miss was scored, alone


def test_a_failing_member_fails_alone_with_its_own_error(ladders: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.mkv"
    data = ladders["a28"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    short = tmp_path / "short.mkv"
    ffmpeg_run("-i", str(ladders["a"]), "-frames:v", "30", "-c:v", "libx264", str(short))
    jobs = write_jobs(tmp_path / "jobs.jsonl", _jobs(ladders, [("a-missing", "a", tmp_path / "missing.mkv"),
                                                               ("a-cut", "a", cut), ("a-short", "a", short)]))
    grouped = _batch(jobs, tmp_path / "grouped.jsonl", "--group-size", "6")
    alone = _batch(jobs, tmp_path / "alone.jsonl", "--group-size", "1")
    assert grouped.code == alone.code == 1
    g, a = by_id(read_results(tmp_path / "grouped.jsonl")), by_id(read_results(tmp_path / "alone.jsonl"))
    failed = {i for i, r in g.items() if r["status"] == "failed"}
    assert failed == {"a-missing", "a-cut", "a-short"} == {i for i, r in a.items() if r["status"] == "failed"}
    for job_id in failed:
        assert {k: g[job_id].get(k) for k in ("error", "exit_code", "errors", "detail")} == \
            {k: a[job_id].get(k) for k in ("error", "exit_code", "errors", "detail")}, job_id
    assert "no such file" in g["a-missing"]["error"] and g["a-missing"]["exit_code"] == 2
    assert "frame counts differ" in g["a-short"]["error"]
    for job_id in set(g) - failed:
        assert g[job_id]["metrics"] == a[job_id]["metrics"], job_id
    assert g["a-28"]["provenance"]["group"]["size"] >= 3  # the good ones of reference a still shared a pass


@pytest.fixture(scope="module")
def hd_ladders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two 720p references with three rungs each: a group takes seconds, long enough to interrupt."""
    folder = tmp_path_factory.mktemp("hd-ladders")
    files: dict[str, Path] = {}
    for ref in ("a", "b"):
        files[ref] = clip_720p(folder / f"{ref}.mp4", 3)
        for crf in (30, 36, 42):
            files[f"{ref}{crf}"] = folder / f"{ref}{crf}.mp4"
            ffmpeg_run("-i", str(files[ref]), "-c:v", "libx264", "-preset", "ultrafast", "-crf", str(crf),
                       str(files[f"{ref}{crf}"]))
    return files


def test_an_interrupted_grouped_batch_reruns_only_what_is_missing(hd_ladders: dict[str, Path], tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(hd_ladders[r], hd_ladders[f"{r}{c}"], f"{r}-{c}")
                                                for r in ("a", "b") for c in (30, 36, 42)])
    results = tmp_path / "results.jsonl"
    argv = [sys.executable, "-m", "vmafx_core", "batch", str(jobs), "--out", str(results), "--jobs", "1",
            "--no-cache"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_lines(results, 3, proc)  # the first reference's group, written as it ended
    deadline = time.monotonic() + 30
    while not (running := scoring_children(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running, "the second group was not running"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert not [pid for pid in running if alive(pid)]
    kept = read_results(results)
    assert sorted(r["id"] for r in kept) == ["a-30", "a-36", "a-42"], "a stopped group must not be recorded"
    assert all(r["status"] == "ok" and r["provenance"]["group"]["size"] == 3 for r in kept)
    # a group partly done: drop one of its lines, as if the run had been killed before it was written
    results.write_text("".join(json.dumps(r) + "\n" for r in kept if r["id"] != "a-36"))

    again = run_vmafx("batch", str(jobs), "--out", str(results), "--jobs", "1", "--no-cache")
    assert again.code == 0, again.stderr
    assert "2 done before, 4 to run" in again.stderr
    lines = read_results(results)
    assert [r["id"] for r in lines[:2]] == ["a-30", "a-42"]
    new = by_id(lines[2:])
    assert sorted(new) == ["a-36", "b-30", "b-36", "b-42"]
    assert "group" not in new["a-36"]["provenance"]  # alone: its group's others were done
    assert all(new[i]["provenance"]["group"]["size"] == 3 for i in ("b-30", "b-36", "b-42"))


def test_group_size_one_and_jobs_that_differ_are_not_grouped(ladders: dict[str, Path], tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        pair(ladders["a"], ladders["a28"], "plain"),
        pair(ladders["a"], ladders["a36"], "threads", scorer={"name": "libvmaf", "n_threads": 1}),
        pair(ladders["a"], ladders["asmall"], "plain-2"),
    ])
    done = _batch(jobs, tmp_path / "out.jsonl", "--no-cache")
    assert done.code == 0, done.stderr
    got = by_id(read_results(tmp_path / "out.jsonl"))
    assert got["plain"]["provenance"]["group"] == {"size": 2, "index": 0, "reference_decoded_once": True}
    assert got["plain-2"]["provenance"]["group"]["index"] == 1
    assert "group" not in got["threads"]["provenance"]
    bad = _batch(jobs, tmp_path / "bad.jsonl", "--group-size", "0")
    assert bad.code == 2 and "--group-size" in bad.stderr
