"""rclone-mount against the real S3 server: same scores as local, nothing written, nothing left.

The autouse fixture of conftest.py already fails a test that leaves a mount, an rclone process or
a temp folder; the tests here also check the mount table and processes at the moments that matter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from testkit import leftovers
from testkit.cli import run_vmafx
from testkit.media import BIG_H, BIG_W, Media, clip_720p, upload_gib_raw
from testkit.watch import Watcher

pytestmark = pytest.mark.integration

@pytest.fixture(autouse=True)
def _need_fuse() -> None:
    if not os.path.exists("/dev/fuse") or subprocess.run(["which", "fusermount3"], capture_output=True).returncode:
        if os.environ.get("CI"):
            pytest.fail("CI is set but /dev/fuse or fusermount3 is missing", pytrace=False)
        pytest.skip("no /dev/fuse or fusermount3 here")


def _mount_run(s3_server: Any, *args: str) -> Any:
    return run_vmafx("run", "--storage", "rclone-mount", *args, env=s3_server.rclone_env())


def test_mount_scores_exactly_like_local(s3_server: Any, bucket: str, media: Media, tmp_path: Path) -> None:
    s3_server.put_file(bucket, "a/ref.mp4", media.ref)
    s3_server.put_file(bucket, "a/dis #2.mp4", media.dis)
    local = run_vmafx("run", str(media.ref), str(media.dis), "--json", "--frames", str(tmp_path / "l.json"))
    out = _mount_run(s3_server, f"s3://{bucket}/a/ref.mp4", f"s3://{bucket}/a/dis #2.mp4", "--json",
                     "--frames", str(tmp_path / "m.json"))
    assert out.code == 0, out.stderr
    assert out.json()["metrics"] == local.json()["metrics"]
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads((tmp_path / "l.json").read_text())
    assert out.json()["provenance"]["storage"] == {"reference": "rclone-mount", "distorted": "rclone-mount"}
    assert not leftovers.fuse_mounts()


def test_mount_streams_one_gib_without_writing(s3_server: Any, bucket: str, tmp_path: Path) -> None:
    width, height = BIG_W, BIG_H
    frames, size = upload_gib_raw(s3_server, bucket, "big.yuv", tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", "--storage", "rclone-mount",
                             f"s3://{bucket}/big.yuv", f"s3://{bucket}/big.yuv", "--width", str(width),
                             "--height", str(height), "--pix-fmt", "yuv420p", "--fps", "25", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **s3_server.rclone_env()})
    watcher = Watcher(proc.pid)
    stdout, stderr = proc.communicate(timeout=1200)
    watcher.stop()
    assert proc.returncode == 0, stderr
    assert json.loads(stdout)["frames_scored"] == frames
    mounts = [p for p in watcher.named(b"rclone") if b"mount" in watcher.cmdlines[p]]
    ffmpeg = [p for p in watcher.named(b"ffmpeg") if b"libvmaf" in watcher.cmdlines[p]]
    assert len(mounts) == 1 and ffmpeg
    assert sum(watcher.write_bytes.get(p, 0) for p in mounts) == 0
    assert sum(watcher.write_bytes.get(p, 0) for p in ffmpeg) < 2000 * frames  # libvmaf's score log only
    peak = max(watcher.peak_rss_kib[p] for p in mounts + ffmpeg if p in watcher.peak_rss_kib) * 1024
    assert peak < size / 4


def test_nothing_left_after_an_ffmpeg_failure(s3_server: Any, bucket: str, media: Media) -> None:
    """A distorted that ffmpeg cannot decode past its header: the job fails, the mount goes."""
    broken = media.folder / "broken.mp4"
    data = media.dis.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # moov at the end: cut off, it is not a video any more
    s3_server.put_file(bucket, "ref.mp4", media.ref)
    s3_server.put_file(bucket, "broken.mp4", broken)
    out = _mount_run(s3_server, f"s3://{bucket}/ref.mp4", f"s3://{bucket}/broken.mp4")
    assert out.code in (1, 2), out.stderr
    assert out.stderr.startswith("vmafx: error: ") and "Traceback" not in out.stderr
    assert not leftovers.fuse_mounts()
    assert not leftovers.rclone_pids()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_a_running_job_unmounts(s3_server: Any, bucket: str, tmp_path: Path, sig: int) -> None:
    clip = clip_720p(tmp_path / "long.mp4", 30)
    s3_server.put_file(bucket, "long.mp4", clip)
    temp_before = leftovers.temp_entries()
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", "--storage", "rclone-mount",
                             f"s3://{bucket}/long.mp4", f"s3://{bucket}/long.mp4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **s3_server.rclone_env()})
    watcher = Watcher(proc.pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(b"libvmaf" in c for c in watcher.cmdlines.values()):
        time.sleep(0.05)
    assert leftovers.fuse_mounts(), "the mount was never made"
    time.sleep(0.5)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    watcher.stop()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert not leftovers.fuse_mounts()
    assert not leftovers.rclone_pids()
    assert not leftovers.temp_entries() - temp_before


def test_missing_object_and_bad_credentials(s3_server: Any, bucket: str, media: Media) -> None:
    s3_server.put_file(bucket, "ref.mp4", media.ref)
    missing = _mount_run(s3_server, f"s3://{bucket}/ref.mp4", f"s3://{bucket}/nope.mp4")
    assert missing.code == 2
    assert missing.stderr.splitlines()[0] == (f"vmafx: error: distorted s3://{bucket}/nope.mp4: no such object "
                                              "(checked through rclone)")
    env = {**s3_server.rclone_env(), "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": "not-the-secret"}
    refused = run_vmafx("run", "--storage", "rclone-mount", f"s3://{bucket}/ref.mp4", f"s3://{bucket}/ref.mp4",
                        env=env)
    assert refused.code == 3, refused.stderr
    assert "credentials" in refused.stderr.splitlines()[0]
    assert "not-the-secret" not in refused.stderr
