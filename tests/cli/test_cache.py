"""The result cache: an unchanged job is answered from its stored result, anything changed is a miss."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from testkit.cli import run_vmafx
from testkit.media import bare_libvmaf, ffmpeg_run


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    ref, dis = tmp_path / "ref.mkv", tmp_path / "dis.mkv"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=1", "-c:v", "libx264", "-crf", "10",
               str(ref))
    ffmpeg_run("-i", str(ref), "-c:v", "libx264", "-crf", "38", str(dis))
    return ref, dis


def _run(*args: str, cache: Path) -> dict:
    done = run_vmafx("run", *args, "--json", env={"VMAFX_CACHE_DIR": str(cache)})
    assert done.code == 0, done.stderr
    data: dict = done.json()
    return data


def test_second_run_is_a_hit_equal_to_the_first_and_to_bare_ffmpeg(pair: tuple[Path, Path], tmp_path: Path) -> None:
    ref, dis = pair
    cache = tmp_path / "cache"
    first = _run(str(ref), str(dis), "--cache", cache=cache)
    assert first["cache"]["hit"] is False
    key = first["cache"]["key"]
    assert (cache / "results" / key[:2] / f"{key}.json").is_file()
    second = _run(str(ref), str(dis), "--cache", cache=cache)
    assert second["cache"]["hit"] is True and second["cache"]["key"] == key
    assert second["metrics"] == first["metrics"]
    assert second["cache"]["scored_timings"] == first["timings"]
    bare = bare_libvmaf(["-i", str(ref)], ["-i", str(dis)], tmp_path / "bare.json", width=160, height=90)
    assert abs(second["metrics"]["vmaf"]["mean"] - bare["pooled_metrics"]["vmaf"]["mean"]) < 1e-6
    # per-frame values come back from the cache too
    frames = tmp_path / "frames.json"
    _run(str(ref), str(dis), "--cache", "--frames", str(frames), cache=cache)
    cached = [f["vmaf"] for f in json.loads(frames.read_text())]
    assert cached == pytest.approx([f["metrics"]["vmaf"] for f in bare["frames"]], abs=1e-6)
    # without --cache, `vmafx run` neither reads nor marks the cache
    plain = _run(str(ref), str(dis), cache=cache)
    assert plain.get("cache") is None


def test_a_setting_that_changes_numbers_is_a_miss(pair: tuple[Path, Path], tmp_path: Path) -> None:
    ref, dis = pair
    cache = tmp_path / "cache"
    first = _run(str(ref), str(dis), "--cache", cache=cache)
    other = _run(str(ref), str(dis), "--cache", "--n-subsample", "2", cache=cache)
    assert other["cache"]["hit"] is False and other["cache"]["key"] != first["cache"]["key"]
    assert other["frames_scored"] != first["frames_scored"]
    # the default model named explicitly is the same job: normalised, a hit
    named = _run(str(ref), str(dis), "--cache", "--model", "vmaf_v0.6.1", cache=cache)
    assert named["cache"] == {**named["cache"], "hit": True, "key": first["cache"]["key"]}


def test_a_file_rewritten_in_place_with_the_same_size_is_a_miss(pair: tuple[Path, Path], tmp_path: Path) -> None:
    ref, dis = pair
    cache = tmp_path / "cache"
    first = _run(str(ref), str(dis), "--cache", cache=cache)
    # another encode of the same size: same path, same size, same inode, other pictures
    other = tmp_path / "other.mkv"
    ffmpeg_run("-i", str(ref), "-c:v", "libx264", "-crf", "50", str(other))
    content = bytearray(dis.read_bytes())
    replacement = other.read_bytes()
    stat = dis.stat()
    with open(dis, "r+b") as fh:  # in place: the inode stays
        fh.write(replacement[: len(content)].ljust(len(content), b"\0"))
    os.utime(dis, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime put back
    assert dis.stat().st_size == stat.st_size and dis.stat().st_ino == stat.st_ino
    again = run_vmafx("run", str(ref), str(dis), "--cache", "--json", env={"VMAFX_CACHE_DIR": str(cache)})
    # whatever scoring the rewritten file gives (a score or an error), it is never the stored one
    assert again.code != 0 or (again.json()["cache"]["hit"] is False
                               and again.json()["cache"]["key"] != first["cache"]["key"])


def test_a_corrupt_entry_is_a_miss_with_a_warning(pair: tuple[Path, Path], tmp_path: Path) -> None:
    ref, dis = pair
    cache = tmp_path / "cache"
    first = _run(str(ref), str(dis), "--cache", cache=cache)
    key = first["cache"]["key"]
    entry = cache / "results" / key[:2] / f"{key}.json"
    entry.write_text('{"version": 1, "key": "' + key + '", "result": {')
    done = run_vmafx("run", str(ref), str(dis), "--cache", "--json", env={"VMAFX_CACHE_DIR": str(cache)})
    assert done.code == 0, done.stderr
    assert "result cache entry" in done.stderr and "scoring again" in done.stderr
    assert done.json()["cache"]["hit"] is False
    assert done.json()["metrics"] == first["metrics"]
    # the fresh result replaced the broken entry
    assert _run(str(ref), str(dis), "--cache", cache=cache)["cache"]["hit"] is True


def test_cache_dir_flag_and_batch_default(pair: tuple[Path, Path], tmp_path: Path) -> None:
    ref, dis = pair
    folder = tmp_path / "elsewhere"
    first = _run(str(ref), str(dis), "--cache", "--cache-dir", str(folder), cache=tmp_path / "unused")
    key = first["cache"]["key"]
    assert (folder / key[:2] / f"{key}.json").is_file()
    assert not (tmp_path / "unused" / "results").exists()
    # a batch uses the cache by default: its job (with the thread count "all cores" meant for the
    # run) is answered from the run's entry
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"id": "a", "reference": {"uri": str(ref)}, "distorted": {"uri": str(dis)},
                                "scorer": {"name": "libvmaf", "n_threads": first["provenance"]["n_threads"]}})
                    + "\n")
    out = tmp_path / "out.jsonl"
    on = {"VMAFX_RESULT_CACHE": ""}  # the suite turns the batch default off (tests/conftest.py)
    done = run_vmafx("batch", str(jobs), "-o", str(out), "--cache-dir", str(folder), "--no-progress", env=on)
    assert done.code == 0, done.stderr
    line = json.loads(out.read_text().splitlines()[0])
    assert line["cache"]["hit"] is True and line["job_id"] == "a"
    assert line["metrics"] == first["metrics"]
    # --no-cache scores it again
    out.unlink()
    done = run_vmafx("batch", str(jobs), "-o", str(out), "--cache-dir", str(folder), "--no-cache", "--no-progress",
                     env=on)
    assert done.code == 0, done.stderr
    line = json.loads(out.read_text().splitlines()[0])
    assert line.get("cache") is None and line["metrics"]["vmaf"]["mean"] == pytest.approx(
        first["metrics"]["vmaf"]["mean"], abs=1e-9)
