"""Fixtures for the rclone-mount tests: a config-less rclone with local remotes, and leak checks.

Every test ends by checking that this process left no mount, no mount folder and no rclone child.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from rclone_mount_helpers import WEIRD_NAMES, folders_of, mount_children, my_prefix

from testkit.media import ffmpeg_run
from testkit.procs import children_named, mounts_under
from testkit.rclone import local_remotes
from vmafx_core.process import live_children


@pytest.fixture(autouse=True, scope="session")
def fuse_here() -> None:
    """These tests make real FUSE mounts: skipped where that cannot work, except under CI (CI=true)."""
    from vmafx_rclone_mount.plugin import availability

    usable = availability()
    if not usable.usable:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but rclone-mount is not usable here: {usable.reason}", pytrace=False)
        pytest.skip(f"rclone-mount is not usable here: {usable.reason}")


@pytest.fixture(scope="session")
def private_temp(tmp_path_factory: pytest.TempPathFactory) -> str:
    return os.path.realpath(tmp_path_factory.mktemp("tmpdir"))


@pytest.fixture(autouse=True)
def rclone_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, private_temp: str) -> Iterator[None]:
    """No config file, two local remotes `localt` and `localu`; fail loudly on anything left behind.

    Mount folders go to a temp dir of this session's own: every vmafx run on the machine sweeps
    the shared one of folders whose owner is gone, and these tests make such folders on purpose.
    """
    monkeypatch.setenv("TMPDIR", private_temp)
    monkeypatch.setattr(tempfile, "tempdir", private_temp)
    local_remotes(monkeypatch, tmp_path / "home", ["localt", "localu"])
    yield
    assert not mounts_under(my_prefix()), "mounts left behind"
    assert not folders_of(os.getpid()), "mount folders left behind"
    assert not mount_children(), "rclone mount children still supervised"
    assert not children_named("rclone") - {c.pid for c in live_children() if c.name == "fake s3"}, \
        "rclone processes left behind"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A remote folder with files in two sub-folders and files with awkward names."""
    root = tmp_path / "remote"
    for name in WEIRD_NAMES + ["a/x/ref.mp4", "a/y/dis.mp4"]:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode() * 3)
    return root


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2 s 320x240 reference and a degraded encode of it, in a folder with a space in its name."""
    folder = tmp_path_factory.mktemp("clips") / "two clips"
    folder.mkdir()
    ref, dis = folder / "ref #1.mp4", folder / "dis.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24:duration=2", "-c:v", "libx264",
               "-crf", "12", "-pix_fmt", "yuv420p", str(ref))
    ffmpeg_run("-i", str(ref), "-vf", "scale=160:120", "-c:v", "libx264", "-crf", "34", str(dis))
    return ref, dis
