"""What an ffmpeg binary supports is asked once per binary and kept; a changed binary is asked again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vmafx_core.binfacts import ENV_CACHE
from vmafx_core.errors import EnvironmentMissing
from vmafx_core.ffmpeg import ffmpeg_info, require_libvmaf

FAKE = """#!/bin/sh
echo run >> "{count}"
echo "ffmpeg version {version} Copyright (c) the test" >&2
echo " ... scale             V->V       Scale the input video size."
{libvmaf}
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    ffmpeg_info.cache_clear()
    yield
    ffmpeg_info.cache_clear()


def fake_ffmpeg(folder: Path, version: str, libvmaf: bool) -> tuple[Path, Path]:
    exe, count = folder / "ffmpeg", folder / "runs"
    line = 'echo " ... libvmaf          VV->V      Calculate the VMAF between two video streams."' if libvmaf else ""
    exe.write_text(FAKE.format(count=count, version=version, libvmaf=line))
    exe.chmod(0o755)
    return exe, count


def runs(count: Path) -> int:
    return len(count.read_text().splitlines()) if count.exists() else 0


def test_answer_is_kept_across_runs_until_the_binary_changes(tmp_path: Path) -> None:
    exe, count = fake_ffmpeg(tmp_path, "7.1-test", libvmaf=True)
    info = ffmpeg_info(str(exe))
    assert (info.version, info.has_libvmaf, runs(count)) == ("7.1-test", True, 1)
    ffmpeg_info.cache_clear()  # a new vmafx process: only the cache file is left
    assert ffmpeg_info(str(exe)) == info and runs(count) == 1
    # a rebuilt binary at the same path is asked again
    exe.unlink()
    fake_ffmpeg(tmp_path, "7.2-test-rebuilt", libvmaf=False)
    ffmpeg_info.cache_clear()
    info = ffmpeg_info(str(exe))
    assert (info.version, info.has_libvmaf, runs(count)) == ("7.2-test-rebuilt", False, 2)
    with pytest.raises(EnvironmentMissing, match="built without libvmaf"):
        require_libvmaf(str(exe))


def test_unwritable_cache_still_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(ENV_CACHE, str(blocker / "cache"))
    exe, count = fake_ffmpeg(tmp_path, "7.1-test", libvmaf=True)
    assert ffmpeg_info(str(exe)).has_libvmaf
    ffmpeg_info.cache_clear()
    assert ffmpeg_info(str(exe)).has_libvmaf and runs(count) == 2


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    exe, count = fake_ffmpeg(tmp_path, "7.1-test", libvmaf=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "binaries.json").write_text("{not json")
    assert ffmpeg_info(str(exe)).version == "7.1-test" and runs(count) == 1


def test_not_an_ffmpeg_is_one_clear_error(tmp_path: Path) -> None:
    exe = tmp_path / "ffmpeg"
    exe.write_text("#!/bin/sh\necho 'command not understood' >&2\nexit 3\n")
    exe.chmod(0o755)
    with pytest.raises(EnvironmentMissing, match="does not answer like ffmpeg: command not understood"):
        ffmpeg_info(str(exe))
