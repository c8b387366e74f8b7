"""The result cache with objects read through rclone from a real S3 server: a re-upload is a miss."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.media import Media, ffmpeg_run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("storage", ["rclone-http", "rclone-mount"])
def test_an_object_uploaded_again_with_the_same_size_is_a_miss(s3_server: Any, bucket: str, media: Media,
                                                               tmp_path: Path, storage: str) -> None:
    # the rclone-mount case is marked needs_fuse by the id (tests/integration/conftest.py)
    s3_server.put_file(bucket, "c/ref.mp4", media.ref)
    s3_server.put_file(bucket, "c/dis.mp4", media.dis)
    env = {**s3_server.rclone_env(), "VMAFX_CACHE_DIR": str(tmp_path / "cache")}
    argv = ["run", f"s3://{bucket}/c/ref.mp4", f"s3://{bucket}/c/dis.mp4", "--storage", storage, "--cache", "--json"]

    def run() -> dict[str, Any]:
        done = run_vmafx(*argv, env=env)
        assert done.code == 0, done.stderr
        assert s3_server.secret_key not in done.stdout + done.stderr
        data: dict[str, Any] = done.json()
        return data

    first = run()
    assert first["cache"]["hit"] is False
    second = run()
    assert second["cache"] == {**second["cache"], "hit": True, "key": first["cache"]["key"]}
    assert second["metrics"] == first["metrics"]
    # the same bytes again under the same key: a new object version (new LastModified), a miss
    s3_server.put_file(bucket, "c/dis.mp4", media.dis)
    third = run()
    assert third["cache"]["hit"] is False and third["cache"]["key"] != first["cache"]["key"]
    assert third["metrics"] == first["metrics"]
    # other content of the same size under the same key: a miss, scored anew
    other = tmp_path / "other.mp4"
    ffmpeg_run("-i", str(media.ref), "-vf", "scale=160:120", "-c:v", "libx264", "-crf", "45", str(other))
    data = other.read_bytes()
    size = media.dis.stat().st_size
    if len(data) > size:
        pytest.fail(f"the other encode ({len(data)} bytes) must not be larger than the distorted ({size})")
    s3_server.put_bytes(bucket, "c/dis.mp4", data + b"\0" * (size - len(data)))
    fourth = run_vmafx(*argv, env=env)
    assert fourth.code != 0 or (fourth.json()["cache"]["hit"] is False
                                and fourth.json()["metrics"] != first["metrics"])


def test_identities_listed_together_equal_each_one_asked_alone(s3_server: Any, bucket: str, media: Media) -> None:
    """A group's objects are looked up in one rclone process; the identities (hence the cache keys)
    are the very ones a job scored alone gets, so grouped and single runs share their entries."""
    from vmafx_rclone_common.settings import RcloneSettings

    for key in ("g/ref.mp4", "g/dis.mp4", "g/ref copy #1.mp4", "other/dis.mp4"):
        s3_server.put_file(bucket, key, media.ref if "ref" in key else media.dis)
    settings = RcloneSettings.from_options({}, {**os.environ, **s3_server.rclone_env()})
    targets = [settings.resolve(f"s3://{bucket}/{k}") for k in ("g/ref.mp4", "g/dis.mp4", "g/ref copy #1.mp4",
                                                                 "other/dis.mp4", "g/missing.mp4")]
    together = settings.identities(targets, 30)
    got = [together(t) for t in targets]
    alone = [settings.identity(t, 30) for t in targets]
    assert got == alone
    assert all(got[:4]) and got[4] is None
    assert together._listed is not None and sorted(together._listed) == sorted(t.spec for t in targets[:3])
