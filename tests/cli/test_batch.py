"""`vmafx batch` on this machine: one result line per job, failures recorded, resume, Ctrl-C."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.media import Media, clip_720p
from testkit.procs import alive, children, cmdline


def write_jobs(path: Path, jobs: Iterable[Mapping[str, Any] | str]) -> Path:
    """A JSON Lines jobs file; a str item is written as it is (to make broken lines)."""
    path.write_text("".join((job if isinstance(job, str) else json.dumps(job)) + "\n" for job in jobs))
    return path


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every line of a results file; each must be complete JSON."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def by_id(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    counts = Counter(r["id"] for r in results)
    assert all(n == 1 for n in counts.values()), f"ids written more than once: {counts}"
    return {r["id"]: r for r in results}


def pair(ref: Path | str, dis: Path | str, job_id: str | None = None, **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"reference": {"uri": str(ref)}, "distorted": {"uri": str(dis)}, **extra}
    if job_id is not None:
        job["id"] = job_id
    return job


def scoring_children(pid: int) -> list[int]:
    """ffmpeg processes running libvmaf that `pid` started."""
    return [c for c in children(pid) if b"libvmaf" in cmdline(c)]


@pytest.fixture(scope="module")
def hd_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 720p clip that takes a couple of seconds to score: long enough to interrupt mid-batch."""
    return clip_720p(tmp_path_factory.mktemp("hd") / "hd.mp4", 6)


def test_every_job_gets_one_line_and_failures_do_not_stop_the_batch(media: Media, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        pair(media.ref, media.dis, "clip-a"),
        pair(media.ref, media.ref),  # no id: known by a hash of its line
        pair(media.ref, tmp_path / "missing.mp4", "gone"),
        pair(media.ref, media.dis, "bad-model", scorer={"name": "libvmaf", "model": "nope"}),
        "{this is not json",
        pair(media.ref_yuv, media.dis_yuv, "raw",
             reference={"uri": str(media.ref_yuv), "raw": {"width": 320, "height": 240, "pix_fmt": "yuv420p",
                                                           "fps": 24}},
             distorted={"uri": str(media.dis_yuv), "raw": {"width": 320, "height": 240, "pix_fmt": "yuv420p",
                                                           "fps": 24}}),
        "",  # blank lines are skipped
    ])
    results, summary = tmp_path / "results.jsonl", tmp_path / "summary.csv"
    out = run_vmafx("batch", str(jobs), "--out", str(results), "--summary", str(summary), "--jobs", "2")
    assert out.code == 1, out.stderr
    assert "Traceback" not in out.stderr
    got = by_id(read_results(results))
    assert len(got) == 6
    hashed = next(i for i in got if i.startswith("sha256:") and got[i]["line"] == 2)
    assert {i: r["status"] for i, r in got.items() if not i.startswith("sha256:")} == {
        "clip-a": "ok", "gone": "failed", "bad-model": "failed", "raw": "ok"}
    assert got[hashed]["status"] == "ok" and got[hashed]["metrics"]["vmaf"]["mean"] > 99
    assert got["gone"]["exit_code"] == 2 and "missing.mp4" in got["gone"]["error"]
    assert got["bad-model"]["exit_code"] == 2 and any("job.scorer.model" in e for e in got["bad-model"]["errors"])
    broken = next(r for r in got.values() if r["line"] == 5)
    assert broken["status"] == "failed" and "not valid JSON" in broken["error"] and broken["exit_code"] == 2
    assert "vmafx: job gone failed: distorted" in out.stderr

    # an ok line is the `vmafx run` result plus id, status and line
    single = run_vmafx("run", str(media.ref), str(media.dis), "--json", "--n-threads", "1")
    assert single.code == 0, single.stderr
    assert got["clip-a"]["metrics"] == single.json()["metrics"]
    assert got["clip-a"]["frames_scored"] == media.frames and got["clip-a"]["schema"] == "vmafx.result"
    assert got["clip-a"]["provenance"]["n_threads"] == 1  # 2 cores / --jobs 2

    rows = list(csv.DictReader(summary.open()))
    assert [r["id"] for r in rows] == [r["id"] for r in sorted(got.values(), key=lambda r: r["line"])]
    row = next(r for r in rows if r["id"] == "clip-a")
    assert float(row["vmaf_mean"]) == got["clip-a"]["metrics"]["vmaf"]["mean"] and row["frames"] == "48"
    assert next(r for r in rows if r["id"] == "gone")["exit_code"] == "2"


def test_resume_skips_done_jobs_and_reruns_failed_ones(media: Media, tmp_path: Path) -> None:
    later = tmp_path / "later.mp4"
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(media.ref, media.dis, "one"), pair(media.ref, later, "two")])
    results = tmp_path / "results.jsonl"
    first = run_vmafx("batch", str(jobs), "--out", str(results))
    assert first.code == 1, first.stderr
    assert [r["status"] for r in read_results(results)] == ["ok", "failed"]

    shutil.copy(media.dis, later)  # the missing input appears
    kept = run_vmafx("batch", str(jobs), "--out", str(results), "--skip-failed")
    assert kept.code == 1, kept.stderr
    assert "1 done before, 1 failed before (kept: --skip-failed), 0 to run" in kept.stderr
    assert len(read_results(results)) == 2

    again = run_vmafx("batch", str(jobs), "--out", str(results))
    assert again.code == 0, again.stderr
    assert "1 done before, 1 to run" in again.stderr
    lines = read_results(results)
    assert [(r["id"], r["status"]) for r in lines] == [("one", "ok"), ("two", "failed"), ("two", "ok")]

    before = results.read_bytes()
    nothing = run_vmafx("batch", str(jobs), "--out", str(results))
    assert nothing.code == 0 and "2 done before, 0 to run" in nothing.stderr
    assert results.read_bytes() == before


def test_a_torn_last_line_is_dropped_and_its_job_runs_again(media: Media, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(media.ref, media.dis, "one"), pair(media.ref, media.ref, "two")])
    results = tmp_path / "results.jsonl"
    assert run_vmafx("batch", str(jobs), "--out", str(results)).code == 0
    lines = results.read_text().splitlines(keepends=True)
    results.write_text(lines[0] + lines[1][: len(lines[1]) // 2])  # killed while writing the second line
    out = run_vmafx("batch", str(jobs), "--out", str(results))
    assert out.code == 0, out.stderr
    assert "cut-off last line" in out.stderr and "1 done before, 1 to run" in out.stderr
    assert sorted(by_id(read_results(results))) == ["one", "two"]


def test_a_results_file_that_is_not_ours_is_refused(media: Media, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(media.ref, media.dis, "one")])
    results = tmp_path / "results.jsonl"
    results.write_text("hello\nworld\n")
    out = run_vmafx("batch", str(jobs), "--out", str(results))
    assert out.code == 2
    assert "line 1 is not a vmafx batch result" in out.stderr
    assert results.read_text() == "hello\nworld\n"


def test_jobs_without_threads_get_the_per_job_share(media: Media, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        pair(media.ref, media.dis, "unset"),
        pair(media.ref, media.dis, "zero", scorer={"name": "libvmaf", "n_threads": 0}),
        pair(media.ref, media.dis, "own", scorer={"name": "libvmaf", "n_threads": 3}),
    ])
    results = tmp_path / "results.jsonl"
    out = run_vmafx("batch", str(jobs), "--out", str(results), "--threads-per-job", "1")
    assert out.code == 0, out.stderr
    got = by_id(read_results(results))
    assert {i: r["provenance"]["n_threads"] for i, r in got.items()} == {"unset": 1, "zero": 1, "own": 3}
    assert got["unset"]["metrics"] == got["own"]["metrics"]


@pytest.mark.parametrize(("args", "message"), [
    (["--jobs", "0"], "Invalid value for '-j' / '--jobs'"),
    (["--cluster", "scheduler:8786"], "give the Dask scheduler as tcp://HOST:PORT"),
    (["--cluster", "tcp://127.0.0.1:8786", "--jobs", "2"], "--jobs sizes the local pool"),
])
def test_bad_options_exit_2(media: Media, tmp_path: Path, args: list[str], message: str) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(media.ref, media.dis, "one")])
    out = run_vmafx("batch", str(jobs), "--out", str(tmp_path / "r.jsonl"), *args)
    assert out.code == 2 and message in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_jobs_files_exit_2(media: Media, tmp_path: Path) -> None:
    missing = run_vmafx("batch", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r.jsonl"))
    assert missing.code == 2 and "jobs file" in missing.stderr and "does not exist" in missing.stderr
    dup = write_jobs(tmp_path / "dup.jsonl", [pair(media.ref, media.dis, "x"), pair(media.ref, media.ref, "x")])
    out = run_vmafx("batch", str(dup), "--out", str(tmp_path / "r.jsonl"))
    assert out.code == 2 and "line 2 has the same id 'x' as line 1" in out.stderr
    same = write_jobs(tmp_path / "same.jsonl", [pair(media.ref, media.dis), pair(media.ref, media.dis)])
    out = run_vmafx("batch", str(same), "--out", str(tmp_path / "r.jsonl"))
    assert out.code == 2 and "line 2 repeats the job of line 1" in out.stderr
    clobber = run_vmafx("batch", str(dup), "--out", str(dup))
    assert clobber.code == 2 and "is the jobs file itself" in clobber.stderr


def test_cluster_without_the_dask_extra_says_what_to_install(media: Media, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(media.ref, media.dis, "one")])
    hide_dask = ("import sys; sys.modules['distributed'] = None; from vmafx_core.cli import main; "
                 "sys.argv[0] = 'vmafx'; main()")
    proc = subprocess.run([sys.executable, "-c", hide_dask, "batch", str(jobs), "--out", str(tmp_path / "r.jsonl"),
                           "--cluster", "tcp://127.0.0.1:8786"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stderr.strip() == "vmafx: error: --cluster needs the dask extra: pip install 'vmafx[dask]'"
    assert not (tmp_path / "r.jsonl").exists()


def wait_for_lines(path: Path, count: int, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not get {count} lines in {timeout}s")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_batch_keeps_finished_results_and_resumes(hd_clip: Path, tmp_path: Path, sig: int) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(hd_clip, hd_clip, f"job-{i}") for i in range(6)])
    results = tmp_path / "results.jsonl"
    # one job per pass: grouped, the six identical jobs would end (and be written) together
    argv = [sys.executable, "-m", "vmafx_core", "batch", str(jobs), "--out", str(results), "--jobs", "2",
            "--group-size", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_lines(results, 1, proc)
    deadline = time.monotonic() + 30
    while not (running := scoring_children(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running, "no job was running after the first result"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    assert not [pid for pid in running if alive(pid)]
    kept = read_results(results)  # every line complete
    assert kept and all(r["status"] == "ok" for r in kept), "a stopped job must not be recorded as failed"
    assert len(kept) < 6

    again = run_vmafx("batch", str(jobs), "--out", str(results), "--jobs", "2")
    assert again.code == 0, again.stderr
    assert f"{len(kept)} done before, {6 - len(kept)} to run" in again.stderr
    final = by_id(read_results(results))
    assert sorted(final) == [f"job-{i}" for i in range(6)]
    assert len({json.dumps(r["metrics"], sort_keys=True) for r in final.values()}) == 1


def test_a_job_without_id_keeps_its_identity_when_reformatted(media: Media, tmp_path: Path) -> None:
    job = pair(media.ref, media.dis)
    jobs, results = tmp_path / "jobs.jsonl", tmp_path / "results.jsonl"
    jobs.write_text(json.dumps(job) + "\n")
    assert run_vmafx("batch", str(jobs), "--out", str(results)).code == 0
    jobs.write_text(json.dumps(dict(reversed(list(job.items()))), separators=(" , ", " : ")) + "\n")
    again = run_vmafx("batch", str(jobs), "--out", str(results))
    assert again.code == 0 and "1 done before, 0 to run" in again.stderr


def test_the_writer_keeps_one_line_per_id_and_one_writer_per_file(tmp_path: Path) -> None:
    from vmafx_core.batch import ResultWriter
    from vmafx_core.errors import BadInput

    path = tmp_path / "results.jsonl"
    writer = ResultWriter(path)
    writer.open()
    try:
        assert writer.write({"id": "a", "status": "ok", "frames_scored": 3})
        assert not writer.write({"id": "a", "status": "ok", "frames_scored": 3})  # a task Dask ran twice
        other = ResultWriter(path)
        with pytest.raises(BadInput, match="in use by another vmafx batch"):
            other.open()
    finally:
        writer.close()
    assert [r["id"] for r in read_results(path)] == ["a"]
    reopened = ResultWriter(path)
    reopened.open()
    try:
        assert not reopened.write({"id": "a", "status": "failed", "error": "x", "exit_code": 1})
    finally:
        reopened.close()
    assert len(read_results(path)) == 1


def test_encode_and_ladder_jobs_run_like_vmafx_run(media: Media, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        {"id": "enc", "reference": {"uri": str(media.ref)}, "encode": {"encoder": "libx264", "crf": 30}},
        {"id": "ladder", "reference": {"uri": str(media.ref)},
         "ladder": [{"encoder": "libx264", "crf": 20}, {"encoder": "libx264", "crf": 40, "size": "160x120"}]},
    ])
    results = tmp_path / "results.jsonl"
    out = run_vmafx("batch", str(jobs), "--out", str(results))
    assert out.code == 0, out.stderr
    got = by_id(read_results(results))
    assert got["enc"]["encode"]["encoder"] == "libx264" and got["enc"]["frames_scored"] == media.frames
    ladder = got["ladder"]
    assert ladder["schema"] == "vmafx.ladder" and [r["job_id"] for r in ladder["rungs"]] == ["ladder/0", "ladder/1"]
    high, low = (r["metrics"]["vmaf"]["mean"] for r in ladder["rungs"])
    assert high > low
    assert [r["provenance"]["ladder"]["mode"] for r in ladder["rungs"]] == ["shared", "shared"]


def test_a_ladder_with_a_failed_rung_is_a_failed_line_holding_every_rung(media: Media, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        {"id": "ladder", "reference": {"uri": str(media.ref)},
         "ladder": [{"encoder": "libx264", "crf": 20}, {"encoder": "libx999"}, {"encoder": "libx264", "crf": 40}]},
    ])
    results = tmp_path / "results.jsonl"
    out = run_vmafx("batch", str(jobs), "--out", str(results))
    assert out.code != 0
    (line,) = read_results(results)
    assert line["status"] == "failed" and line["exit_code"] == 2
    assert line["error"].startswith("unknown encoder 'libx999'")
    assert [r["schema"] for r in line["rungs"]] == ["vmafx.result", "vmafx.error", "vmafx.result"]


def test_plugins_flag_limits_what_a_batch_loads(media: Media, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(media.ref, media.dis, "a")])
    without_storage = run_vmafx("batch", str(jobs), "--out", str(tmp_path / "none.jsonl"), "--plugins", "libvmaf")
    assert without_storage.code == 1, without_storage.stderr
    (failed,) = read_results(tmp_path / "none.jsonl")
    assert failed["status"] != "ok" and "storage" in failed["error"], failed
    allowed = run_vmafx("batch", str(jobs), "--out", str(tmp_path / "ok.jsonl"), "--plugins", "libvmaf,local")
    assert allowed.code == 0, allowed.stderr
    (ok,) = read_results(tmp_path / "ok.jsonl")
    assert ok["status"] == "ok" and ok["metrics"]["vmaf"]["mean"] > 0, ok


def test_a_job_lines_plugins_list_limits_that_job_alone(media: Media, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(media.ref, media.dis, "bare", plugins=["libvmaf"]),
                                                 pair(media.ref, media.dis, "full")])
    out = run_vmafx("batch", str(jobs), "--out", str(tmp_path / "out.jsonl"))
    assert out.code == 1, out.stderr
    rows = by_id(read_results(tmp_path / "out.jsonl"))
    assert rows["bare"]["status"] != "ok" and "no storage plugin is installed" in rows["bare"]["error"]
    assert rows["full"]["status"] == "ok", rows["full"]
