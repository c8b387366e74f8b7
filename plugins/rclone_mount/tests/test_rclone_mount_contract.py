"""rclone-mount and the storage contract, with real rclone and real FUSE: a short read rclone reports
reaches `PreparedInput.integrity` (exit 4 in a job); a long $TMPDIR (found by the conformance suite)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from rclone_mount_helpers import mount_children
from vmafx_rclone_mount.fuse import fuse_device_problem
from vmafx_rclone_mount.mount import prepare

from testkit.rclone import local_remotes
from vmafx_core.types import InputRequest, PrepareContext


@pytest.fixture(autouse=True)
def rclone_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    problem = fuse_device_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    local_remotes(monkeypatch, tmp_path / "home", ["localt"])
    yield
    assert not mount_children()


def test_an_object_shorter_than_rclone_listed_is_reported(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x" * 100_000)
    with prepare([InputRequest("reference", f"localt:{video}")], PrepareContext()) as (item,):
        path = item.url.removeprefix("file:")
        with open(path, "rb") as whole:
            assert whole.read() == b"x" * 100_000
        assert item.integrity is not None and item.integrity() is None
        os.truncate(video, 50_000)  # the stored object is no longer the one rclone listed
        with open(path, "rb") as short:
            try:
                short.read()
            except OSError:
                pass  # the mount may say so as an I/O error; ffmpeg would stop, or decode less
        problem = item.integrity()
    assert problem is not None and problem.startswith("rclone: ") and "unexpected EOF" in problem, problem


def test_a_temp_dir_too_long_for_a_socket_path_still_mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long = tmp_path / ("t" * 60) / ("u" * 40)
    long.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(long))
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x" * 1000)
    with prepare([InputRequest("reference", f"localt:{video}")], PrepareContext()) as (item,):
        with open(item.url.removeprefix("file:"), "rb") as served:
            assert served.read() == b"x" * 1000
    assert os.listdir(long) == []
