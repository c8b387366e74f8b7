"""The integration harness shared by every integration test.

A session-scoped S3 server in a container (see testkit/s3server.py), the scoring-node image built once per
session (see nodeimage.py), a fresh bucket per test, and an autouse check that each test leaves no
rclone process, no FUSE mount and no vmafx temp folder.
Without a Docker engine these tests are skipped, except under CI (CI=true), where they must run.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import time
from collections.abc import Iterator

import pytest

from testkit import leftovers

os.environ.setdefault(leftovers.MARKER, secrets.token_hex(8))
from testkit.s3server import RunningServer, S3Server, docker_problem

log = logging.getLogger("vmafx.tests")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.integration)
            if "rclone-mount" in item.nodeid or "rclone_mount" in item.nodeid:
                item.add_marker(pytest.mark.needs_fuse)


def fuse_problem() -> str | None:
    """Why no FUSE mount can be made here (no /dev/fuse, no fusermount3), or None."""
    from vmafx_rclone_mount.fuse import FUSERMOUNT, find_fusermount, fuse_device_problem

    if find_fusermount() is None:
        return f"{FUSERMOUNT} is not installed (Debian: apt-get install fuse3)"
    return fuse_device_problem()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def fuse_when_needed(request: pytest.FixtureRequest) -> None:
    """Tests of mount mode need FUSE: skipped without it, except under CI, where they must run."""
    if request.node.get_closest_marker("needs_fuse") is not None:
        problem = fuse_problem()
        if problem:
            _unavailable(problem)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    problem = docker_problem()
    if problem:
        _unavailable(problem)
    running = RunningServer()
    try:
        yield running.start()
    finally:
        running.stop()


@pytest.fixture(scope="session")
def node_image() -> str:
    """The scoring-node image, built once per session from this work tree by `bash docker/build.sh`."""
    from tests.integration.nodeimage import build_node_image
    return build_node_image()


@pytest.fixture
def bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh bucket, deleted with its objects afterwards: the session's server keeps its data in
    a tmpfs, and a full one answers every later upload with HTTP 500."""
    name = s3_server.make_bucket("t-" + secrets.token_hex(6))
    yield name
    try:
        s3_server.remove_bucket(name)
    except Exception as exc:  # noqa: BLE001 - a test that broke the server has its own failure
        log.warning("could not delete test bucket %s: %s", name, exc)


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    rclone_before = leftovers.rclone_pids()
    mounts_before = leftovers.fuse_mounts()
    temp_before = leftovers.temp_entries()
    yield
    deadline = time.monotonic() + 5
    while True:
        rclone = leftovers.rclone_pids() - rclone_before
        mounts = leftovers.fuse_mounts() - mounts_before
        temp = leftovers.temp_entries() - temp_before
        if not (rclone or mounts or temp) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    problems = []
    if rclone:
        described = [f"{pid} ({leftovers.describe(pid)})" for pid in sorted(rclone)]
        problems.append("rclone processes: " + ", ".join(described))
        leftovers.kill(rclone)
    if mounts:
        problems.append("FUSE mounts: " + ", ".join(sorted(mounts)))
        for mount in mounts:
            subprocess.run(["fusermount3", "-uz", mount], capture_output=True)
    if temp:
        problems.append("temp folders: " + ", ".join(sorted(temp)))
    if problems:
        pytest.fail("the test left things behind: " + "; ".join(problems), pytrace=False)
