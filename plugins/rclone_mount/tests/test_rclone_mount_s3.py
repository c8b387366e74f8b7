"""The rclone-mount backend in front of a real S3 endpoint on loopback (`rclone serve s3` over a folder).

A mount succeeds whatever the credentials; these tests pin down that the stat through the mount
turns refused credentials, a missing object and a missing bucket into one clear line each.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vmafx_rclone_mount.mount import prepare

from testkit.rclone import serve_fake_s3
from vmafx_core.errors import BadInput, EnvironmentMissing, Unreachable
from vmafx_core.process import live_children
from vmafx_core.types import InputRequest, PrepareContext

SECRET = "SECRETVMAFX1"  # noqa: S105 - the fake store's test key


@pytest.fixture
def fake_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A real S3 endpoint on loopback with one bucket `videos`, and remote `s3` pointing at it."""
    bucket = tmp_path / "s3" / "videos" / "clips"
    bucket.mkdir(parents=True)
    (bucket / "ref.mp4").write_bytes(b"R" * 1000)
    (bucket / "dis.mp4").write_bytes(b"D" * 700)
    with serve_fake_s3(tmp_path / "s3", monkeypatch, "AKIDVMAFX", SECRET) as port:
        yield port


def _requests(*uris: str) -> list[InputRequest]:
    return [InputRequest(role, uri) for role, uri in zip(("reference", "distorted"), uris, strict=False)]


def test_s3_inputs_share_one_mount_per_bucket(fake_s3: int) -> None:
    uris = ("s3://videos/clips/ref.mp4", "s3://videos/clips/dis.mp4")
    with prepare(_requests(*uris), PrepareContext()) as items:
        assert [p.size for p in items] == [1000, 700]
        assert tuple(p.display for p in items) == uris
        assert Path(items[1].url.removeprefix("file:")).read_bytes() == b"D" * 700
        assert os.path.dirname(items[0].url) == os.path.dirname(items[1].url)


@pytest.mark.parametrize("uri", ["s3://videos/clips/nope.mp4", "s3://nobucket/clips/ref.mp4"])
def test_s3_missing_object_or_bucket_is_bad_input(fake_s3: int, uri: str) -> None:
    with pytest.raises(BadInput) as info:
        with prepare(_requests(uri), PrepareContext()):
            pass
    assert info.value.message == f"reference {uri}: no such object (checked through rclone)"


def test_s3_refused_credentials_are_environment_missing(fake_s3: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", "WRONGSECRET")
    with pytest.raises(EnvironmentMissing) as info:
        with prepare(_requests("s3://videos/clips/ref.mp4"), PrepareContext()):
            pass
    message = info.value.message
    expected = "reference s3://videos/clips/ref.mp4: the storage refused the credentials of remote 's3'"
    assert message.startswith(expected) and "\n" not in message
    assert "WRONGSECRET" not in message and "WRONGSECRET" not in (info.value.detail or "")


def test_a_store_that_never_answers_fails_in_bounded_time(fake_s3: int, tmp_path: Path) -> None:
    """A stat through FUSE has no timeout: the wait for it must be bounded, and teardown must still work."""
    (server,) = [c for c in live_children() if c.name == "fake s3"]
    server.signal(signal.SIGSTOP)  # accepts connections (the kernel does) but never answers
    started = time.monotonic()
    try:
        with pytest.raises(Unreachable) as info:  # the environment: exit 3
            with prepare(_requests("s3://videos/clips/ref.mp4"), PrepareContext(ready_timeout=2)):
                pass
    finally:
        server.signal(signal.SIGCONT)
    assert time.monotonic() - started < 15
    assert info.value.message == ("reference s3://videos/clips/ref.mp4: no answer from remote 's3' through "
                                  "rclone within 2s (raise --prepare-timeout, limits.prepare_timeout in a "
                                  "job file, if the storage is just slow)")


def test_no_media_byte_is_written_to_local_disk(fake_s3: int, tmp_path: Path) -> None:
    big = tmp_path / "s3" / "videos" / "clips" / "big.mp4"
    with big.open("wb") as out:
        for _ in range(64):
            out.write(os.urandom(1 << 20))
    with prepare(_requests("s3://videos/clips/big.mp4"), PrepareContext()) as (item,):
        (mount,) = [c for c in live_children() if c.name == "rclone mount"]
        with open(item.url.removeprefix("file:"), "rb") as reader:
            while reader.read(1 << 20):
                pass
        io = dict(line.split(": ") for line in Path(f"/proc/{mount.pid}/io").read_text().splitlines())
        assert int(io["rchar"]) >= 64 << 20  # it did receive the whole object...
        assert int(io["write_bytes"]) == 0  # ...and wrote none of it to a disk
