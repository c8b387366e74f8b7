"""The Helm chart's containers, as Helm renders them, run by the Docker engine and scoring a batch.

The chart is rendered by real Helm (tests/helm/chart.py), with this session's node image, an rclone
config for the test S3 server and storage.mode rclone-http. Its scheduler container and one node
container are started exactly as rendered (see kubepod.py: image, command, args, env, user and
groups, read-only root, capabilities, the Secret's file at its path with its mode and group),
with host networking on loopback standing in for the pod network: the pod IP is 127.0.0.1 and the
node's scheduler address, the chart's Service name, is pointed at 127.0.0.1. A batch of S3 jobs
from this test process, through them, scores like a local run of the same files; then the chart's
batch Job container, run twice on one results folder (its claim), resumes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import distributed
import pytest

from testkit.cli import run_vmafx
from testkit.media import Media
from testkit.s3server import free_port
from tests.helm.chart import Rendered, container, env_of, render
from tests.integration.kubepod import PodContainer
from tests.integration.nodeimage import Containers, docker_run, explain, fuse_device_for_the_node_user, unavailable

pytestmark = pytest.mark.docker_image

LOOPBACK = "127.0.0.1"


def _wait_for_port(port: int, containers: Containers, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, "the rendered scheduler did not listen: " + containers.logs()
            time.sleep(0.2)


def _results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _last_by_id(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in lines}


def _inspect(names: list[str]) -> str:
    return subprocess.run(["docker", "inspect", *names], capture_output=True, text=True, check=True,
                          stdin=subprocess.DEVNULL).stdout


def _service_address(r: Rendered) -> str:
    """The scheduler address of the chart's Service, which the nodes are given."""
    service = r.one("Service", "scheduler")
    address = f"tcp://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert env_of(container(r.pod("node")))["DASK_SCHEDULER_ADDRESS"] == address
    return address


def _s3_config(s3_server: Any) -> str:
    return ("[s3]\ntype = s3\nprovider = Other\n"
            f"endpoint = {s3_server.endpoint}\naccess_key_id = {s3_server.access_key}\n"
            f"secret_access_key = {s3_server.secret_key}\nforce_path_style = true\n")


def _start_cluster(r: Rendered, port: int, containers: Containers, tmp_path: Path,
                   fuse_device: Path | None = None) -> str:
    """The rendered scheduler and one rendered node on loopback, the node registered; the node's name."""
    loopback_address = f"tcp://{LOOPBACK}:{port}"
    scheduler = PodContainer(r.pod("scheduler"), "scheduler", objects=r.objects, workdir=tmp_path / "scheduler",
                             fields={"status.podIP": LOOPBACK, "metadata.name": "vmafx-scheduler-0"})
    options, args = scheduler.argv()
    containers.start(scheduler.image, *args, options=options)
    _wait_for_port(port, containers)
    node = PodContainer(r.pod("node"), "node", objects=r.objects, workdir=tmp_path / "node",
                        fields={"status.podIP": LOOPBACK, "metadata.name": "vmafx-node-0"},
                        env_overrides={"DASK_SCHEDULER_ADDRESS": loopback_address}, fuse_device=fuse_device)
    options, args = node.argv()
    # all capabilities dropped; mount mode adds back what fusermount3 needs, and only it allows setuid
    assert ["--cap-drop", "ALL"] == options[options.index("--cap-drop"):][:2] and "--read-only" in options
    mount = fuse_device is not None
    added = [options[i + 1] for i, o in enumerate(options) if o == "--cap-add"]
    assert added == (["SYS_ADMIN", "DAC_READ_SEARCH"] if mount else [])
    assert ("no-new-privileges" in options) is not mount
    name = containers.start(node.image, *args, options=options)
    with distributed.Client(loopback_address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(1, timeout=120)
        workers = list(client.scheduler_info()["workers"].values())
    threads = int(args[args.index("--nthreads") + 1])
    assert [(w["name"], w["nthreads"]) for w in workers] == [("vmafx-node-0", threads)], containers.logs()
    return name


def test_the_rendered_chart_scores_a_batch_of_s3_jobs(node_image: str, s3_server: Any, bucket: str, media: Media,
                                                      tmp_path: Path) -> None:
    if os.geteuid() != 0:
        unavailable("giving the Secret's file the pod's fsGroup (root:10001, 0440) needs root")
    s3_server.put_file(bucket, "ref.mp4", media.ref)
    s3_server.put_file(bucket, "dis.mp4", media.dis)
    ref, dis = f"s3://{bucket}/ref.mp4", f"s3://{bucket}/dis.mp4"
    config = _s3_config(s3_server)
    jobs = [{"id": f"s3-{i}", "reference": {"uri": ref}, "distorted": {"uri": dis}} for i in range(3)]
    jobs.append({"id": "missing", "reference": {"uri": ref}, "distorted": {"uri": f"s3://{bucket}/nope.mp4"}})
    # a local pair says auto too: on these nodes auto is rclone-http, which cannot read paths
    jobs.append({"id": "local-path", "reference": {"uri": "/home/vmafx/ref.mp4"},
                 "distorted": {"uri": "/home/vmafx/dis.mp4"}})
    jobs_text = "".join(json.dumps(j) + "\n" for j in jobs)
    port = free_port(set())
    repository, tag = node_image.rsplit(":", 1)
    r: Rendered = render({
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "scheduler": {"port": port, "host": LOOPBACK},
        "storage": {"mode": "rclone-http", "rclone": {"config": config}},
        "node": {"replicas": 1, "threadsPerWorker": 2},
        "batch": {"enabled": True, "jobs": jobs_text},
    })
    service_address = _service_address(r)
    loopback_address = f"tcp://{LOOPBACK}:{port}"
    batch_pod = r.pod("batch")
    assert env_of(container(batch_pod))["DASK_SCHEDULER_ADDRESS"] == service_address

    containers = Containers()
    try:
        node_name = _start_cluster(r, port, containers, tmp_path)
        # the Secret's file as the kubelet makes it: root-owned, the image's group, 0440
        conf = tmp_path / "node" / "volumes" / "rclone-config" / "rclone.conf"
        assert conf.read_text() == config and oct(conf.stat().st_mode & 0o777) == "0o440"
        assert (conf.stat().st_uid, conf.stat().st_gid) == (0, 10001)

        # the batch from this process: the client has no storage config, the node has its Secret
        jobs_file = tmp_path / "jobs.jsonl"
        jobs_file.write_text(jobs_text)
        results = tmp_path / "results.jsonl"
        out = run_vmafx("batch", str(jobs_file), "--out", str(results), "--cluster", loopback_address,
                        "--no-progress")
        assert out.code == 1, out.stderr + containers.logs()  # two jobs fail, as they should
        got = _last_by_id(_results(results))
        local = run_vmafx("run", str(media.ref), str(media.dis), "--json")
        assert local.code == 0, local.stderr
        expected = local.json()
        for i in range(3):
            line = got[f"s3-{i}"]
            assert line["status"] == "ok", line
            assert line["provenance"]["storage"] == {"reference": "rclone-http", "distorted": "rclone-http"}
            assert line["frames_scored"] == expected["frames_scored"]
            assert line["metrics"]["vmaf"]["mean"] == expected["metrics"]["vmaf"]["mean"]
        assert got["missing"]["status"] == "failed" and "no such object" in got["missing"]["error"]
        assert got["local-path"]["status"] == "failed"
        assert "storage 'rclone-http' (the VMAFX_STORAGE_MODE of this machine) cannot read" \
            in got["local-path"]["error"]

        # the chart's batch Job container, twice on one claim: the second run resumes
        claim = tmp_path / "claim"
        claim.mkdir()
        os.chown(claim, 0, 10001)  # what the kubelet makes of a claim for a pod with an fsGroup
        claim.chmod(0o2775)
        runs = []
        for attempt in (1, 2):
            batch = PodContainer(batch_pod, "batch", objects=r.objects, workdir=tmp_path / f"batch-{attempt}",
                                 fields={}, env_overrides={"DASK_SCHEDULER_ADDRESS": loopback_address},
                                 claims={"vmafx-batch-results": claim})
            options, args = batch.argv()
            proc = docker_run(batch.image, *args, options=options)
            assert proc.returncode == 1, explain(proc) + containers.logs()
            runs.append(_results(claim / "results.jsonl"))
        first, second = runs
        assert Counter(line["id"] for line in first) == {j["id"]: 1 for j in jobs}
        # ok jobs are skipped on the rerun, failed ones run again
        assert Counter(line["id"] for line in second) == {**{j["id"]: 1 for j in jobs}, "missing": 2, "local-path": 2}
        for i in range(3):
            assert _last_by_id(second)[f"s3-{i}"]["metrics"]["vmaf"]["mean"] == expected["metrics"]["vmaf"]["mean"]
        summary = (claim / "summary.csv").read_text()
        assert summary.count(",ok,") == 3 and summary.count(",failed,") == 2

        # the credentials were in the Secret's file only
        secret = s3_server.secret_key
        seen = results.read_text() + out.stderr + (claim / "results.jsonl").read_text() + summary
        seen += _inspect(containers.names) + containers.logs()
        assert secret not in seen and s3_server.access_key not in _inspect([node_name])
    finally:
        containers.remove()


def test_the_rendered_mount_mode_node_scores_through_fuse(node_image: str, s3_server: Any, bucket: str,
                                                          media: Media, tmp_path: Path) -> None:
    """storage.mode rclone-mount as rendered (default: /dev/fuse from a device plugin, here the host's
    device): the node, with all capabilities dropped but SYS_ADMIN, mounts through the image's
    setuid fusermount3, scores jobs that say auto like a local run, and leaves no mount."""
    if os.geteuid() != 0:
        unavailable("giving the Secret's file the pod's fsGroup (root:10001, 0440) needs root")
    device = fuse_device_for_the_node_user(tmp_path)
    if device is None:
        pytest.skip("no /dev/fuse the container's non-root user could open (host node not 0666, not root)")
    s3_server.put_file(bucket, "ref.mp4", media.ref)
    s3_server.put_file(bucket, "dis.mp4", media.dis)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"id": f"m-{i}", "reference": {"uri": f"s3://{bucket}/ref.mp4"},
                                        "distorted": {"uri": f"s3://{bucket}/dis.mp4"}}) + "\n" for i in range(2)))
    port = free_port(set())
    repository, tag = node_image.rsplit(":", 1)
    r = render({
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "scheduler": {"port": port, "host": LOOPBACK},
        "storage": {"mode": "rclone-mount", "rclone": {"config": _s3_config(s3_server)}},
        "node": {"replicas": 1, "threadsPerWorker": 2},
    })
    containers = Containers()
    try:
        node_name = _start_cluster(r, port, containers, tmp_path, fuse_device=device)
        results = tmp_path / "results.jsonl"
        out = run_vmafx("batch", str(jobs), "--out", str(results), "--cluster", f"tcp://{LOOPBACK}:{port}",
                        "--no-progress")
        assert out.code == 0, out.stderr + containers.logs()
        local = run_vmafx("run", str(media.ref), str(media.dis), "--json")
        assert local.code == 0, local.stderr
        for line in _results(results):
            assert line["status"] == "ok", line
            assert line["provenance"]["storage"] == {"reference": "rclone-mount", "distorted": "rclone-mount"}
            assert line["metrics"]["vmaf"]["mean"] == local.json()["metrics"]["vmaf"]["mean"]
        mounts = subprocess.run(["docker", "exec", node_name, "cat", "/proc/mounts"], capture_output=True,
                                text=True, check=True, stdin=subprocess.DEVNULL).stdout
        assert " fuse" not in mounts, mounts
        assert s3_server.secret_key not in results.read_text() + out.stderr + _inspect(containers.names)
    finally:
        containers.remove()
