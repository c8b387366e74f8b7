"""The scoring-node image of docker/: built by the documented command, then vmafx run inside it.

The image is built once per test session (the `node_image` fixture, see nodeimage.py). Needs a
Docker engine, and root the first time on a machine, when docker/make-base.sh debootstraps the base
image. Without an engine the tests are skipped, unless the environment variable CI is set: then
they fail.
"""

from __future__ import annotations

import json
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.media import Media
from tests.integration.nodeimage import CONFIG_PATH, NODE_UID, REPO, docker_run
from tests.integration.nodeimage import Containers as _Containers
from tests.integration.nodeimage import explain as _explain
from tests.integration.nodeimage import fuse_device_for_the_node_user as _fuse_device_for_the_node_user

pytestmark = pytest.mark.docker_image

#: checks `vmafx doctor` must report ok in the image
REQUIRED_CHECKS = ("ffmpeg", "libvmaf", "storage local", "storage rclone-http", "scorer libvmaf")


def test_image_runs_as_non_root_with_the_documented_entrypoint_and_no_config(node_image: str) -> None:
    proc = subprocess.run(["docker", "image", "inspect", "--format", "{{json .Config}}", node_image],
                          capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
    config = json.loads(proc.stdout)
    assert config["User"] == f"{NODE_UID}:{NODE_UID}"
    assert config["Entrypoint"] == ["/usr/bin/tini", "--", "vmafx"]
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["VMAFX_RCLONE_CONFIG"] == CONFIG_PATH
    baked = [k for k in env if k.startswith(("RCLONE_CONFIG_", "AWS_", "GOOGLE_", "AZURE_"))
             or any(word in k for word in ("SECRET", "TOKEN", "PASSWORD", "PASS"))]
    assert not baked, f"credential-like variables baked into the image: {baked}"
    # nothing under /etc/vmafx: the rclone config is mounted at run time
    listing = docker_run(node_image, "-c", "id -u; ls -A /etc/vmafx", options=["--entrypoint", "sh"],
                         network="none")
    assert listing.returncode == 0, _explain(listing)
    assert listing.stdout.split() == [NODE_UID]


def _project(folder: Path) -> tuple[str, str]:
    data = tomllib.loads((folder / "pyproject.toml").read_text())
    return data["project"]["name"], data["project"]["version"]


def test_the_core_and_every_plugin_folder_are_installed(node_image: str) -> None:
    folders = [REPO, *sorted(p.parent for p in REPO.glob("plugins/*/pyproject.toml"))]
    expected = dict(_project(f) for f in folders)
    assert {"vmafx", "vmafx-local", "vmafx-rclone-common", "vmafx-rclone-http"} <= set(expected)
    code = ("import importlib.metadata as m, json, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
    proc = docker_run(node_image, "-c", code, *expected, options=["--entrypoint", "/opt/vmafx/bin/python"],
                      network="none")
    assert proc.returncode == 0, _explain(proc)
    assert json.loads(proc.stdout) == expected


def test_doctor_in_the_image(node_image: str) -> None:
    proc = docker_run(node_image, "doctor", "--json")
    assert proc.stdout, _explain(proc)
    report = json.loads(proc.stdout)
    checks = {c["check"]: c for c in report["checks"]}
    for name in REQUIRED_CHECKS:
        assert name in checks, f"doctor has no check {name!r}: {report}"
        assert checks[name]["ok"], f"{name}: {checks[name]['detail']}"
    # ffmpeg with libvmaf and rclone come from the wheels in the image's venv
    assert "/opt/vmafx/" in checks["ffmpeg"]["detail"]
    # mount mode cannot work in a container given no /dev/fuse: the only check allowed to fail
    failed = {name: c["detail"] for name, c in checks.items() if not c["ok"]}
    assert set(failed) <= {"storage rclone-mount"}, failed
    # an optional backend that cannot work here is reported, not a failure of the node
    assert proc.returncode == 0, _explain(proc)
    assert report["ok"] is True


def test_demo_in_the_image_scores_like_the_local_install(node_image: str, tmp_path: Path) -> None:
    shared = tmp_path / "sample"  # the container's demo writes its sample here, for the host to score too
    shared.mkdir()
    shared.chmod(0o777)  # the node runs as uid 10001
    proc = docker_run(node_image, "demo", "/sample", "--json", options=["-v", f"{shared}:/sample"])
    assert proc.returncode == 0, _explain(proc)
    inside: dict[str, Any] = json.loads(proc.stdout)
    assert inside["schema"] == "vmafx.result"
    assert inside["frames_scored"] > 0
    assert 0 < inside["metrics"]["vmaf"]["mean"] <= 100
    assert inside["provenance"]["ffmpeg_path"].startswith("/opt/vmafx/")

    # the same files scored by the local install: a sample made twice (in CI, under load) once
    # differed slightly (integer_adm2 0.920292 vs 0.920196), so the comparison is of scoring only
    local = run_vmafx("run", str(shared / "reference.mp4"), str(shared / "distorted.mp4"), "--json")
    assert local.code == 0, local.stderr
    outside = local.json()
    assert inside["frames_scored"] == outside["frames_scored"]
    same_build = all(inside["provenance"][k] == outside["provenance"][k] for k in ("ffmpeg", "libvmaf"))
    if same_build:
        for metric, values in outside["metrics"].items():
            assert inside["metrics"][metric]["mean"] == pytest.approx(values["mean"], abs=1e-6), metric


_MOUNT_SCRIPT = r"""
set -eu
vmafx demo /tmp/src >/dev/null 2>&1
mkdir /tmp/mnt
rclone mount :local:/tmp/src /tmp/mnt --read-only 2>/tmp/rclone.log &
i=0
until grep -q ' /tmp/mnt fuse' /proc/mounts; do
    i=$((i + 1)); [ "$i" -lt 200 ] || { cat /tmp/rclone.log >&2; exit 9; }; sleep 0.1
done
grep ' /tmp/mnt fuse' /proc/mounts >&2
vmafx run /tmp/src/reference.mp4 /tmp/src/distorted.mp4 --json >/tmp/direct.json
vmafx run /tmp/mnt/reference.mp4 /tmp/mnt/distorted.mp4 --json >/tmp/mounted.json
fusermount3 -u /tmp/mnt
wait
python -c 'import json; print(json.dumps([json.load(open(f"/tmp/{n}.json")) for n in ("direct", "mounted")]))'
"""


def test_fuse_mount_works_for_the_node_user(node_image: str, tmp_path: Path) -> None:
    """Mount mode as documented (--device /dev/fuse --cap-add SYS_ADMIN), as uid 10001: rclone mounts
    through the image's setuid fusermount3 and ffmpeg reads the pair through the mount."""
    device = _fuse_device_for_the_node_user(tmp_path)
    if device is None:
        pytest.skip("no /dev/fuse the container's non-root user could open (host node not 0666, not root)")
    options = ["--entrypoint", "sh", "--device", f"{device}:/dev/fuse", "--cap-add", "SYS_ADMIN"]
    proc = docker_run(node_image, "-c", _MOUNT_SCRIPT, network="none", options=options)
    assert proc.returncode == 0, _explain(proc)
    assert f"user_id={NODE_UID}" in proc.stderr, proc.stderr
    direct, mounted = json.loads(proc.stdout)
    assert mounted["frames_scored"] == direct["frames_scored"] > 0
    assert mounted["metrics"]["vmaf"]["mean"] == pytest.approx(direct["metrics"]["vmaf"]["mean"], abs=1e-6)


_BACKEND_SCRIPT = r"""
set -eu
vmafx demo /tmp/src >/dev/null 2>&1
vmafx doctor --json >/tmp/doctor.json || true
vmafx run /tmp/src/reference.mp4 /tmp/src/distorted.mp4 --json >/tmp/direct.json
vmafx run --storage rclone-mount loc:/tmp/src/reference.mp4 loc:/tmp/src/distorted.mp4 --json \
    >/tmp/mounted.json
if grep ' fuse' /proc/mounts >&2; then echo "a FUSE mount was left behind" >&2; exit 9; fi
echo "[$(cat /tmp/doctor.json), $(cat /tmp/direct.json), $(cat /tmp/mounted.json)]"
"""


def test_rclone_mount_backend_in_the_image(node_image: str, tmp_path: Path) -> None:
    """`vmafx run --storage rclone-mount` in the image, started with the documented mount options, as
    uid 10001: doctor calls every backend usable, the score equals the direct one, no mount is left."""
    if not (REPO / "plugins" / "rclone_mount" / "pyproject.toml").is_file():
        pytest.skip("this tree has no plugins/rclone_mount package")
    device = _fuse_device_for_the_node_user(tmp_path)
    if device is None:
        pytest.skip("no /dev/fuse the container's non-root user could open (host node not 0666, not root)")
    # a local folder inside the container as an rclone remote, configured by environment only
    options = ["--entrypoint", "sh", "--device", f"{device}:/dev/fuse", "--cap-add", "SYS_ADMIN",
               "-e", "VMAFX_RCLONE_CONFIG=", "-e", "RCLONE_CONFIG_LOC_TYPE=local"]
    proc = docker_run(node_image, "-c", _BACKEND_SCRIPT, network="none", options=options)
    assert proc.returncode == 0, _explain(proc)
    doctor, direct, mounted = json.loads(proc.stdout)
    assert doctor["ok"], doctor
    assert {c["check"] for c in doctor["checks"]} >= {*REQUIRED_CHECKS, "storage rclone-mount"}
    assert mounted["reference"]["storage"] == mounted["distorted"]["storage"] == "rclone-mount"
    assert mounted["frames_scored"] == direct["frames_scored"] > 0
    assert mounted["metrics"]["vmaf"]["mean"] == pytest.approx(direct["metrics"]["vmaf"]["mean"], abs=1e-6)


def test_s3_pair_through_rclone_http_in_the_image(node_image: str, s3_server: Any, bucket: str, media: Media,
                                                  tmp_path: Path) -> None:
    """The node reads an S3 pair through rclone-http with a mounted config, and scores it like the host."""
    s3_server.put_file(bucket, "ref.mp4", media.ref)
    s3_server.put_file(bucket, "dis.mp4", media.dis)
    conf = tmp_path / "rclone.conf"
    conf.write_text("[s3]\ntype = s3\nprovider = Other\n"
                    f"endpoint = {s3_server.endpoint}\naccess_key_id = {s3_server.access_key}\n"
                    f"secret_access_key = {s3_server.secret_key}\nforce_path_style = true\n")
    conf.chmod(0o644)  # read by the image's non-root user
    proc = docker_run(node_image, "run", f"s3://{bucket}/ref.mp4", f"s3://{bucket}/dis.mp4", "--json",
                      options=["-v", f"{conf}:/etc/vmafx/rclone.conf:ro"])
    assert proc.returncode == 0, _explain(proc)
    inside = json.loads(proc.stdout)
    assert inside["provenance"]["storage"] == {"reference": "rclone-http", "distorted": "rclone-http"}
    assert s3_server.secret_key not in proc.stdout + proc.stderr
    local = run_vmafx("run", str(media.ref), str(media.dis), "--json")
    assert local.code == 0, local.stderr
    assert inside["frames_scored"] == local.json()["frames_scored"]
    assert inside["metrics"]["vmaf"]["mean"] == local.json()["metrics"]["vmaf"]["mean"]


def test_the_node_image_is_a_dask_worker(node_image: str, s3_server: Any, bucket: str, media: Media,
                                         tmp_path: Path) -> None:
    """docs/CLUSTER.md as written: a scheduler and a worker from the node image, a batch from the host.

    The worker gets the S3 credentials (from an env file, not argv) and the host client does not, so
    the remote jobs are scored with the worker's own storage setup.
    """
    distributed = pytest.importorskip("distributed", reason="the host needs the dask extra for --cluster")
    s3_server.put_file(bucket, "ref.mp4", media.ref)
    s3_server.put_file(bucket, "dis.mp4", media.dis)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    env_file = tmp_path / "worker.env"
    # remotes from variables only: the image's default config path is cleared, as docker/README.md says
    env_file.write_text("VMAFX_RCLONE_CONFIG=\n" + "".join(f"{k}={v}\n" for k, v in s3_server.rclone_env().items()))
    containers = _Containers()
    try:
        containers.start(node_image, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                         "--scheduler-file", "/shared/scheduler.json",
                         options=["--entrypoint", "dask", "-v", f"{shared}:/shared"])
        address = ""
        deadline = time.monotonic() + 90
        while not address:
            assert time.monotonic() < deadline, "the scheduler in the image did not start: " + containers.logs()
            try:
                address = json.loads((shared / "scheduler.json").read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.2)
        containers.start(node_image, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                         "--host", "127.0.0.1", "--name", "node-w0",
                         options=["--entrypoint", "dask", "--env-file", str(env_file)])
        with distributed.Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=90)
        ref, dis = f"s3://{bucket}/ref.mp4", f"s3://{bucket}/dis.mp4"
        jobs = tmp_path / "jobs.jsonl"
        lines = [{"id": f"s3-{i}", "reference": {"uri": ref}, "distorted": {"uri": dis}} for i in range(3)]
        lines.append({"id": "missing", "reference": {"uri": ref}, "distorted": {"uri": f"s3://{bucket}/nope.mp4"}})
        jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
        results = tmp_path / "results.jsonl"
        out = run_vmafx("batch", str(jobs), "--out", str(results), "--cluster", address)  # no remote known here
        assert out.code == 1, out.stderr + containers.logs()  # one job failed, as it should
        got = {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}
        local = run_vmafx("run", str(media.ref), str(media.dis), "--json")
        assert local.code == 0, local.stderr
        for i in range(3):
            assert got[f"s3-{i}"]["status"] == "ok", got[f"s3-{i}"]
            assert got[f"s3-{i}"]["metrics"]["vmaf"]["mean"] == local.json()["metrics"]["vmaf"]["mean"]
        assert got["missing"]["status"] == "failed" and "no such object" in got["missing"]["error"]
        assert s3_server.secret_key not in results.read_text() + out.stderr
    finally:
        containers.remove()
