"""A size mismatch real rclone reports while serving reaches `PreparedInput.integrity` (exit 4 in a job)."""

from __future__ import annotations

import base64
import http.client
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from vmafx_rclone_http.serve import prepare

from testkit.procs import children_named
from testkit.rclone import local_remotes
from vmafx_core.process import live_children
from vmafx_core.types import InputRequest, PrepareContext


@pytest.fixture(autouse=True)
def rclone_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    local_remotes(monkeypatch, tmp_path / "home", ["localt"])
    yield
    assert not children_named("rclone", zombies=True) - {c.pid for c in live_children() if c.name == "fake s3"}


def _read(url: str) -> bytes:
    parts = urlsplit(url)
    token = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
    try:
        connection.request("GET", parts.path, headers={"Authorization": f"Basic {token}"})
        try:
            return connection.getresponse().read()
        except http.client.IncompleteRead as short:
            return short.partial
    finally:
        connection.close()


def test_an_object_shorter_than_rclone_listed_is_reported(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x" * 100_000)
    with prepare([InputRequest("reference", f"localt:{video}")], PrepareContext()) as (item,):
        assert item.integrity is not None and item.integrity() is None
        assert _read(item.url) == b"x" * 100_000
        assert item.integrity() is None  # served whole: nothing to report
        os.truncate(video, 50_000)  # the stored object is no longer the one rclone listed
        assert len(_read(item.url)) == 50_000  # what ffmpeg would get: a short stream, and no error
        problem = item.integrity()
    assert problem is not None and problem.startswith("rclone: ") and "unexpected EOF" in problem, problem
    assert "low level retry" not in problem
