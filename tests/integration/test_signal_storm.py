"""Ctrl-C and SIGTERM at any moment of a remote job, in both rclone modes: rclone forking, a mount
coming up, probing, scoring, teardown. Always exit 130 with one line; no rclone, mount, notify
socket folder or temp folder left."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.media import clip_720p
from testkit.s3server import S3Server
from tests.storm import storm


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clip_720p(tmp_path_factory.mktemp("storm") / "long.mp4", 20)


@pytest.mark.parametrize("mode", ["rclone-http", "rclone-mount"])
def test_signals_at_random_moments_of_a_remote_job(s3_server: S3Server, bucket: str, long_clip: Path,
                                                   mode: str) -> None:
    s3_server.put_file(bucket, "long.mp4", long_clip)
    uri = f"s3://{bucket}/long.mp4"
    failed = storm(["run", "--storage", mode, uri, uri, "--n-threads", "1"], s3_server.rclone_env())
    assert not failed, "\n".join(o.describe() for o in failed[:5])
