"""A long $TMPDIR (a socket path holds 107 bytes at most) still mounts: found by the conformance suite."""

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
