"""`vmafx batch` on a real Dask cluster: a scheduler and two worker processes on loopback.

The workers get the S3 server's rclone configuration in their environment and the client does
not, so remote jobs prove that each worker scores with its own storage setup. Checked: the cluster
gives the same results as the local run; a worker killed mid-batch loses and duplicates nothing;
an interrupted batch (locally or on the cluster) resumes without running finished jobs again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import leftovers
from testkit.cli import run_vmafx
from testkit.media import Media, clip_720p, ffmpeg_run
from testkit.procs import alive
from testkit.s3server import S3Server
from tests.cli.test_batch import by_id, pair, read_results, scoring_children, wait_for_lines, write_jobs
from vmafx_core import tempdirs
from vmafx_core.process import Child

pytestmark = pytest.mark.integration

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")


class DaskCluster:
    """`dask scheduler` and `dask worker` processes, each supervised (and always stopped) by a Child."""

    def __init__(self, folder: Path, worker_env: dict[str, str]) -> None:
        self.folder = folder
        self.worker_env = worker_env
        self.scheduler: Child | None = None
        self.workers: list[Child] = []
        self.address = ""

    def start(self, n_workers: int = 2, timeout: float = 90) -> DaskCluster:
        scheduler_file = self.folder / "scheduler.json"
        base = dict(os.environ)
        self.scheduler = Child([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                               name="dask-scheduler", env=base)
        deadline = time.monotonic() + timeout
        while not self.address:
            assert self.scheduler.poll() is None, self.scheduler.tail()
            assert time.monotonic() < deadline, "the scheduler did not start: " + self.scheduler.tail()
            try:
                self.address = json.loads(scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        for i in range(n_workers):
            # no nanny: the worker is this very process, so killing it kills the worker outright
            self.workers.append(Child(
                [sys.executable, "-m", "dask", "worker", self.address, "--name", f"w{i}", "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--memory-limit", "0",
                 "--death-timeout", "60", "--local-directory", str(self.folder / f"w{i}")],
                name=f"dask-worker-{i}", env={**base, **self.worker_env}))
        with distributed.Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(n_workers, timeout=timeout)
        return self

    def worker_running_a_job(self) -> Child | None:
        return next((w for w in self.workers if w.poll() is None and scoring_children(w.pid)), None)

    def stop(self) -> None:
        for child in [*self.workers, *([self.scheduler] if self.scheduler else [])]:
            child.stop(timeout=10)


@pytest.fixture
def dask_cluster(tmp_path: Path, s3_server: S3Server) -> Iterator[DaskCluster]:
    cluster = DaskCluster(tmp_path, s3_server.rclone_env())
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def hd_pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clip_720p(tmp_path_factory.mktemp("hd") / "hd.mp4", 4)


def _raw(path: Path | str) -> dict[str, Any]:
    return {"uri": str(path), "raw": {"width": 320, "height": 240, "pix_fmt": "yuv420p", "fps": 24}}


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on where a job ran (timings and thread counts may)."""
    keep = ("status", "line", "exit_code", "error", "errors", "frames_scored", "metrics", "notes")
    inputs: dict[str, Any] = {role: {k: result[role][k] for k in ("uri", "storage", "size", "frames")}
              for role in ("reference", "distorted") if role in result}
    return {**{k: result[k] for k in keep if k in result}, **inputs}


def test_cluster_gives_the_same_results_as_local(dask_cluster: DaskCluster, s3_server: S3Server, bucket: str,
                                                 media: Media, tmp_path: Path) -> None:
    for key, path in {"ref.mp4": media.ref, "dis.mp4": media.dis, "ref.yuv": media.ref_yuv,
                      "dis.yuv": media.dis_yuv}.items():
        s3_server.put_file(bucket, key, path)
    s3 = f"s3://{bucket}"
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        pair(media.ref, media.dis, "local-pair"),
        pair(media.ref, media.ref, "local-same"),
        {"id": "local-raw", "reference": _raw(media.ref_yuv), "distorted": _raw(media.dis_yuv)},
        pair(media.ref, media.short_dis, "local-short", alignment={"allow_frame_mismatch": True}),
        pair(f"{s3}/ref.mp4", f"{s3}/dis.mp4", "s3-pair"),
        {"id": "s3-raw", "reference": _raw(f"{s3}/ref.yuv"), "distorted": _raw(f"{s3}/dis.yuv")},
        pair(media.ref, f"{s3}/dis.mp4", "mixed", scorer={"name": "libvmaf", "features": ["psnr"]}),
        pair(f"{s3}/ref.mp4", f"{s3}/missing.mp4", "s3-missing"),
        pair(media.ref, media.dis, "invalid", alignment={"scale_filter": "sideways"}),
        pair(f"{s3}/ref.mp4", f"{s3}/ref.mp4"),  # no id: known by its hash
        "[1, 2, 3]",
    ])
    local_out, cluster_out = tmp_path / "local.jsonl", tmp_path / "cluster.jsonl"
    local = run_vmafx("batch", str(jobs), "--out", str(local_out), env=s3_server.rclone_env())
    assert local.code == 1, local.stderr
    # the client has no rclone configuration: the workers use their own
    on_cluster = run_vmafx("batch", str(jobs), "--out", str(cluster_out), "--cluster", dask_cluster.address,
                           "--summary", str(tmp_path / "summary.csv"))
    assert on_cluster.code == 1, on_cluster.stderr
    assert "Traceback" not in on_cluster.stderr

    here, there = by_id(read_results(local_out)), by_id(read_results(cluster_out))
    assert sorted(here) == sorted(there) and len(there) == 11
    for job_id in here:
        assert _comparable(there[job_id]) == _comparable(here[job_id]), job_id
    statuses = {i: r["status"] for i, r in there.items()}
    assert sorted(i for i, s in statuses.items() if s == "failed")[:2] == ["invalid", "s3-missing"]
    assert sum(s == "failed" for s in statuses.values()) == 3
    assert there["s3-missing"]["exit_code"] == 2 and "no such object" in there["s3-missing"]["error"]
    assert there["invalid"]["errors"] and there["invalid"]["exit_code"] == 2
    assert there["s3-pair"]["provenance"]["storage"] == {"reference": "rclone-http", "distorted": "rclone-http"}
    assert there["mixed"]["metrics"]["psnr_y"]["mean"] > 0
    assert there["local-short"]["frames_scored"] == 40
    assert s3_server.secret_key not in cluster_out.read_text() + on_cluster.stderr
    assert len((tmp_path / "summary.csv").read_text().splitlines()) == 12


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(dask_cluster: DaskCluster, s3_server: S3Server,
                                                                bucket: str, hd_pair: Path, tmp_path: Path) -> None:
    temp_before = leftovers.temp_entries()
    s3_server.put_file(bucket, "hd.mp4", hd_pair)
    remote = f"s3://{bucket}/hd.mp4"
    jobs = write_jobs(tmp_path / "jobs.jsonl",
                      [pair(remote if i % 2 else hd_pair, remote if i % 2 else hd_pair, f"job-{i}") for i in range(10)])
    results = tmp_path / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "batch", str(jobs), "--out", str(results),
                             "--cluster", dask_cluster.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for_lines(results, 1, proc)
        deadline = time.monotonic() + 30
        while (victim := dask_cluster.worker_running_a_job()) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert victim is not None, "no worker was scoring"
        scoring = scoring_children(victim.pid)
        done_before_kill = len(read_results(results))
        victim.signal(signal.SIGKILL)
        victim.wait(timeout=10)  # reaped: a zombie would still count as the owner of its temp folders
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert done_before_kill < 10
    final = by_id(read_results(results))
    assert sorted(final) == sorted(f"job-{i}" for i in range(10))
    assert all(r["status"] == "ok" for r in final.values())
    assert len({json.dumps(r["metrics"], sort_keys=True) for r in final.values()}) == 1
    deadline = time.monotonic() + 10
    while [p for p in scoring if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in scoring if alive(p)], "the killed worker's ffmpeg outlived it"
    # what the killed worker could not remove, the next vmafx run on that machine removes (tempdirs)
    left = leftovers.temp_entries() - temp_before
    assert all(f"-{victim.pid}-" in name for name in left), left
    tempdirs.sweep()


def test_local_batch_interrupted_with_remote_jobs_resumes(s3_server: S3Server, bucket: str, hd_pair: Path,
                                                          tmp_path: Path) -> None:
    s3_server.put_file(bucket, "hd.mp4", hd_pair)
    remote = f"s3://{bucket}/hd.mp4"
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(remote, remote, f"job-{i}") for i in range(6)])
    results = tmp_path / "results.jsonl"
    env = {**os.environ, **s3_server.rclone_env()}
    rclone_before = leftovers.rclone_pids()
    # one job per pass (--group-size 1): grouped, the six identical jobs would end together
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "batch", str(jobs), "--out", str(results),
                             "--jobs", "2", "--group-size", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    wait_for_lines(results, 1, proc)
    deadline = time.monotonic() + 30
    while not scoring_children(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    rclones = leftovers.rclone_pids() - rclone_before
    assert rclones, "no rclone was serving a running job"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert not [p for p in rclones if alive(p)]
    kept = read_results(results)
    assert kept and len(kept) < 6 and all(r["status"] == "ok" for r in kept)
    again = run_vmafx("batch", str(jobs), "--out", str(results), env=s3_server.rclone_env())
    assert again.code == 0, again.stderr
    assert f"{len(kept)} done before, {6 - len(kept)} to run" in again.stderr
    assert sorted(by_id(read_results(results))) == sorted(f"job-{i}" for i in range(6))


def test_cluster_batch_interrupted_resumes(dask_cluster: DaskCluster, hd_pair: Path, tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(hd_pair, hd_pair, f"job-{i}") for i in range(8)])
    results = tmp_path / "results.jsonl"
    argv = [sys.executable, "-m", "vmafx_core", "batch", str(jobs), "--out", str(results),
            "--cluster", dask_cluster.address, "--group-size", "1"]  # one job per task: lines one by one
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_lines(results, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    kept = read_results(results)
    assert kept and len(kept) < 8 and all(r["status"] == "ok" for r in kept)
    again = run_vmafx("batch", str(jobs), "--out", str(results), "--cluster", dask_cluster.address)
    assert again.code == 0, again.stderr
    assert f"{len(kept)} done before, {8 - len(kept)} to run" in again.stderr
    assert sorted(by_id(read_results(results))) == sorted(f"job-{i}" for i in range(8))


def test_cancelled_cluster_batch_stops_the_jobs_running_on_workers(dask_cluster: DaskCluster,
                                                                   tmp_path: Path) -> None:
    """Dask cannot interrupt a running task: the job itself must notice it was cancelled."""
    clip = clip_720p(tmp_path / "long.mp4", 120)  # scoring it takes a minute or more on 2 cores
    jobs = write_jobs(tmp_path / "jobs.jsonl", [pair(clip, clip, f"long-{i}") for i in range(2)])
    results = tmp_path / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "batch", str(jobs), "--out", str(results),
                             "--cluster", dask_cluster.address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while dask_cluster.worker_running_a_job() is None:
        assert proc.poll() is None and time.monotonic() < deadline, "no job started on a worker"
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    # well before the job would have finished on its own (a minute or more), nothing scores any more
    deadline = time.monotonic() + 20
    while dask_cluster.worker_running_a_job() is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dask_cluster.worker_running_a_job() is None, "a cancelled job kept scoring on a worker"
    assert all(w.poll() is None for w in dask_cluster.workers), "a worker died instead of stopping the job"
    assert not results.exists() or not read_results(results)


def test_cluster_groups_by_reference_and_its_workers_use_the_cache(dask_cluster: DaskCluster, s3_server: S3Server,
                                                                   bucket: str, tmp_path: Path) -> None:
    """Jobs of one S3 reference scored in one pass on a worker, equal to job by job; the second run
    is answered from the cache folder the batch names, on the workers."""
    folder = tmp_path / "media"
    folder.mkdir()
    keys = []
    for ref, pattern in (("a", "testsrc2"), ("b", "smptehdbars")):
        source = folder / f"{ref}.mkv"
        ffmpeg_run("-f", "lavfi", "-i", f"{pattern}=size=320x180:rate=25:duration=2", "-c:v", "libx264", "-crf", "8",
                   str(source))
        s3_server.put_file(bucket, f"{ref}.mkv", source)
        for crf in (26, 32, 40):
            encode = folder / f"{ref}{crf}.mkv"
            ffmpeg_run("-i", str(source), "-c:v", "libx264", "-crf", str(crf), str(encode))
            s3_server.put_file(bucket, encode.name, encode)
            keys.append((ref, encode.name))
    s3 = f"s3://{bucket}"
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        *(pair(f"{s3}/{ref}.mkv", f"{s3}/{rung}", rung) for ref, rung in keys),
        pair(f"{s3}/a.mkv", f"{s3}/missing.mkv", "missing"),
    ])
    alone_out, grouped_out, again_out = (tmp_path / f"{n}.jsonl" for n in ("alone", "grouped", "again"))
    cache = tmp_path / "cache"  # a path on the workers: here the same machine, so one cache for both
    alone = run_vmafx("batch", str(jobs), "--out", str(alone_out), "--group-size", "1", "--no-cache",
                      env=s3_server.rclone_env())
    assert alone.code == 1, alone.stderr
    on = {"VMAFX_RESULT_CACHE": "on"}
    grouped = run_vmafx("batch", str(jobs), "--out", str(grouped_out), "--cluster", dask_cluster.address,
                        "--cache-dir", str(cache), env=on)
    assert grouped.code == 1, grouped.stderr
    assert "Traceback" not in grouped.stderr
    here, there = by_id(read_results(alone_out)), by_id(read_results(grouped_out))
    assert sorted(here) == sorted(there) and len(there) == 7
    for job_id in here:
        assert _comparable(there[job_id]) == _comparable(here[job_id]), job_id
    assert there["missing"]["status"] == "failed" and "no such object" in there["missing"]["error"]
    for _, rung in keys:
        # a's missing one failed before its pass: three in each
        assert there[rung]["provenance"]["group"]["size"] == 3, rung
        assert there[rung]["cache"]["hit"] is False
    assert list(cache.glob("*/*.json")), "the workers kept nothing in the cache folder"

    again = run_vmafx("batch", str(jobs), "--out", str(again_out), "--cluster", dask_cluster.address,
                      "--cache-dir", str(cache), env=on)
    assert again.code == 1, again.stderr
    second = by_id(read_results(again_out))
    assert all(second[rung]["cache"]["hit"] is True for _, rung in keys)
    assert all(second[rung]["metrics"] == there[rung]["metrics"] for _, rung in keys)
    assert second["missing"]["status"] == "failed"
    # --no-cache turns it off on the workers as well
    off = run_vmafx("batch", str(jobs), "--out", str(tmp_path / "off.jsonl"), "--cluster", dask_cluster.address,
                    "--cache-dir", str(cache), "--no-cache", env=on)
    assert off.code == 1, off.stderr
    assert all("cache" not in r or r["cache"] is None for r in read_results(tmp_path / "off.jsonl"))
