"""A flaky network between rclone and the S3 server, in both storage modes.

`testkit.faultrelay.FaultRelay` sits between rclone and the session's S3 container and resets,
stalls or throttles connections mid-stream, or takes the whole store away; the S3 container itself
is stopped and started for the batch outage. Each run either gives exactly the local run's score or
fails promptly with one line naming the remote and rclone's error (exit 3, the same in both modes).
Short windows through `rclone_io_timeout` and `--stall-timeout` keep the whole file to a few
minutes; the autouse check of conftest.py fails any test that leaves a process, mount or folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import leftovers
from testkit.cli import run_vmafx
from testkit.faultrelay import Fault, FaultRelay, every_connection, first_connections
from testkit.media import ffmpeg_run
from testkit.procs import children, cmdline
from testkit.s3server import RunningServer, S3Server
from tests.cli.test_batch import wait_for_lines
from tests.integration.test_reliability import _server, own_server  # noqa: F401 - a fixture used here

pytestmark = pytest.mark.integration

MODES = ["rclone-http", "rclone-mount"]
#: a silent connection is dropped and re-read after 1 s instead of 10: short test windows
FAST = ["--storage-option", "rclone_io_timeout=1"]
AFTER = 150_000  #: bytes into a response before its fault: the reference is ~1 MB, each distorted ~0.3 MB

#: faults a read survives: the score must be the local run's
SURVIVABLE: dict[str, Callable[[], Callable[[int], Fault | None]]] = {
    # RSTs mid-stream, as a middlebox or a restarted peer sends them
    "reset": lambda: first_connections(4, Fault("reset", after=AFTER)),
    # connections that go quiet for good without a word (the hang: a reset that never
    # arrives, a dropped NAT entry): rclone must drop them itself
    "silent": lambda: first_connections(2, Fault("stall", after=AFTER)),
    # a 2 s hiccup, then the bytes flow again
    "stall": lambda: first_connections(3, Fault("stall", after=AFTER, seconds=2)),
    # a slow link
    "throttle": lambda: every_connection(Fault("throttle", after=AFTER, rate=1_500_000)),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3 s 640x360 reference (~1 MB) and two encodes of it."""
    folder = tmp_path_factory.mktemp("faults")
    ref, d1, d2 = folder / "ref.mp4", folder / "d1.mp4", folder / "d2.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=3", "-c:v", "libx264", "-preset",
               "ultrafast", "-crf", "14", "-pix_fmt", "yuv420p", str(ref))
    ffmpeg_run("-i", str(ref), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "32", str(d1))
    ffmpeg_run("-i", str(ref), "-vf", "scale=320:180", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28",
               str(d2))
    return {"ref.mp4": ref, "d1.mp4": d1, "d2.mp4": d2}


@pytest.fixture(scope="module")
def local_scores(clips: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """The local run of each distorted against the reference: what every remote run must equal."""
    scores = {}
    for name in ("d1.mp4", "d2.mp4"):
        out = run_vmafx("run", str(clips["ref.mp4"]), str(clips[name]), "--json")
        assert out.code == 0, out.stderr
        scores[name] = out.json()["metrics"]
    return scores


@pytest.fixture
def relay(s3_server: S3Server) -> Iterator[FaultRelay]:
    with FaultRelay(s3_server.port, lifetime=300) as r:
        yield r


def _upload(server: S3Server, bucket: str, clips: dict[str, Path]) -> None:
    for name, path in clips.items():
        server.put_file(bucket, name, path)


def _through(server: S3Server, relay: FaultRelay) -> dict[str, str]:
    return {**server.rclone_env(), "RCLONE_CONFIG_S3_ENDPOINT": relay.endpoint}


def _one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("vmafx: error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


@pytest.mark.parametrize("fault", sorted(SURVIVABLE))
@pytest.mark.parametrize("mode", MODES)
def test_a_flaky_network_gives_the_local_score(s3_server: S3Server, bucket: str, clips: dict[str, Path],
                                               local_scores: dict[str, dict[str, Any]], relay: FaultRelay,
                                               mode: str, fault: str) -> None:
    _upload(s3_server, bucket, clips)
    relay.set_plan(SURVIVABLE[fault]())
    out = run_vmafx("run", "--storage", mode, f"s3://{bucket}/ref.mp4", f"s3://{bucket}/d1.mp4", "--json",
                    "--stall-timeout", "30", *FAST, env=_through(s3_server, relay), timeout=300)
    assert out.code == 0, out.stderr
    assert relay.faulted >= 1, "the fault never hit a connection: the test proved nothing"
    assert out.json()["metrics"] == local_scores["d1.mp4"]


@pytest.mark.parametrize("mode", MODES)
def test_several_distorted_in_one_pass_through_resets(s3_server: S3Server, bucket: str, clips: dict[str, Path],
                                                     local_scores: dict[str, dict[str, Any]], relay: FaultRelay,
                                                     mode: str) -> None:
    _upload(s3_server, bucket, clips)
    relay.set_plan(first_connections(6, Fault("reset", after=AFTER // 2)))
    out = run_vmafx("run", "--storage", mode, *(f"s3://{bucket}/{n}" for n in ("ref.mp4", "d1.mp4", "d2.mp4")),
                    "--json", "--stall-timeout", "30", *FAST, env=_through(s3_server, relay), timeout=300)
    assert out.code == 0, out.stderr
    assert relay.faulted >= 1
    rows = out.json()
    assert [row["metrics"] for row in rows] == [local_scores["d1.mp4"], local_scores["d2.mp4"]]


@pytest.mark.parametrize("mode", MODES)
def test_a_batch_through_resets_and_stalls(s3_server: S3Server, bucket: str, clips: dict[str, Path],
                                           local_scores: dict[str, dict[str, Any]], relay: FaultRelay,
                                           tmp_path: Path, mode: str) -> None:
    _upload(s3_server, bucket, clips)
    relay.set_plan(lambda i: Fault("reset", after=AFTER) if i % 2 == 0 and i < 8
                   else Fault("stall", after=AFTER, seconds=1.5) if i < 8 else None)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({
        "id": f"job-{i}", "reference": {"uri": f"s3://{bucket}/ref.mp4"},
        "distorted": {"uri": f"s3://{bucket}/{name}"}, "storage": mode,
        "storage_options": {"rclone_io_timeout": 1}}) + "\n" for i, name in enumerate(["d1.mp4", "d2.mp4"] * 2)))
    results = tmp_path / "results.jsonl"
    out = run_vmafx("batch", str(jobs), "--out", str(results), "--jobs", "2", "--no-cache",
                    env=_through(s3_server, relay), timeout=300)
    assert out.code == 0, out.stderr
    assert relay.faulted >= 2
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == [f"job-{i}" for i in range(4)]
    for row in lines:
        name = "d1.mp4" if row["id"] in ("job-0", "job-2") else "d2.mp4"
        assert row["status"] == "ok" and row["metrics"] == local_scores[name], row


def _scoring(pid: int) -> bool:
    """Whether `pid` (vmafx) has a scoring ffmpeg running."""
    return any(b"libvmaf" in cmdline(child) for child in children(pid))


@pytest.mark.parametrize("outage", ["silent", "reset"])
@pytest.mark.parametrize("mode", MODES)
def test_the_store_going_away_mid_stream_fails_promptly_naming_it(s3_server: S3Server, bucket: str,
                                                                  clips: dict[str, Path], relay: FaultRelay,
                                                                  mode: str, outage: str) -> None:
    """Same exit code (3, the environment) and the same shape of line in both modes: the remote,
    rclone's own error, where the job was; never the bare stall watchdog, never a score."""
    _upload(s3_server, bucket, clips)
    relay.set_plan(every_connection(Fault("throttle", after=0, rate=250_000)))  # scoring lasts a few seconds
    env = {**os.environ, **_through(s3_server, relay)}
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", "--storage", mode,
                             f"s3://{bucket}/ref.mp4", f"s3://{bucket}/d1.mp4", "--json", "--stall-timeout", "10",
                             *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not _scoring(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    relay.outage(outage)
    went = time.monotonic()
    stdout, stderr = proc.communicate(timeout=180)
    took = time.monotonic() - went
    assert proc.returncode == 3, stderr
    assert stdout == "", "a failed job must not print a score"
    line = _one_error_line(stderr)
    assert line.startswith(f"vmafx: error: reference s3://{bucket}/ref.mp4: ") or \
        line.startswith(f"vmafx: error: distorted s3://{bucket}/d1.mp4: "), line
    assert "remote 's3'" in line and "rclone" in line and "no score is reported" in line, line
    assert "reading the inputs stalled" not in line, line
    assert took < 60, f"took {took:.0f}s after the store went away"  # loose: rclone's retries, a noisy machine
    assert not leftovers.fuse_mounts()


# -- the S3 container stopped in the middle of a batch, then started again ----------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_store_stopped_mid_batch_then_back_resumes(own_server: RunningServer,  # noqa: F811 - the fixture
                                                       clips: dict[str, Path],
                                                       local_scores: dict[str, dict[str, Any]], tmp_path: Path,
                                                       mode: str) -> None:
    server = _server(own_server)
    server.make_bucket("bkt")
    _upload(server, "bkt", clips)
    names = ["d1.mp4", "d2.mp4"] * 3
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({
        "id": f"job-{i}", "reference": {"uri": "s3://bkt/ref.mp4"}, "distorted": {"uri": f"s3://bkt/{name}"},
        "storage": mode, "storage_options": {"rclone_io_timeout": 1}}) + "\n" for i, name in enumerate(names)))
    results = tmp_path / "results.jsonl"
    env = {**os.environ, **server.rclone_env()}
    batch = [sys.executable, "-m", "vmafx_core", "batch", str(jobs), "--out", str(results), "--jobs", "1",
             "--group-size", "1", "--no-cache"]
    proc = subprocess.Popen(batch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_for_lines(results, 1, proc)
    assert own_server.container is not None
    container = own_server.container.get_wrapped_container()
    container.stop(timeout=1)
    stopped = time.monotonic()
    _, stderr = proc.communicate(timeout=300)
    took = time.monotonic() - stopped
    assert proc.returncode == 1, stderr  # some jobs failed, each alone, with its line
    first = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["id"] for r in first) == [f"job-{i}" for i in range(6)]  # every job has a line
    failed = [r for r in first if r["status"] != "ok"]
    assert failed, "no job met the outage"
    for row in failed:
        assert row["exit_code"] == 3 and "remote 's3'" in row["error"], row  # the environment: retry later
    assert took < 30 * len(failed), f"{len(failed)} jobs took {took:.0f}s to fail"  # promptly, not per stall bound

    container.start()  # its tmpfs went with it: fill the store again, as an operator would restore it
    own_server._wait(server, 90)
    server.make_bucket("bkt")
    _upload(server, "bkt", clips)
    again = run_vmafx(*batch[3:], env=server.rclone_env(), timeout=300)
    assert again.code == 0, again.stderr
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    ok = [r for r in lines if r["status"] == "ok"]
    assert sorted(r["id"] for r in ok) == [f"job-{i}" for i in range(6)]  # each exactly once: none lost or doubled
    assert len(lines) == 6 + len(failed)  # the resume ran only the failed ones
    for row in ok:
        assert row["metrics"] == local_scores[names[int(row["id"].split("-")[1])]], row
