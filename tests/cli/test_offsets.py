"""Offsets, automatic sync and the pairing check, against truth trimmed by hand on raw frames.

A 34-frame master is cut by hand: the reference is its frames 2..31; a distorted "starting late"
lacks the reference's first 2 frames, one "starting early" has 2 frames before the reference's
first, one with a drop lacks reference frame 15.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import attrs
import pytest

from testkit.alignment_media import (
    Clip,
    assert_matches,
    bare_raw_vmaf,
    decode_raw,
    encode_clip,
    make_reference,
    raw_frames,
    run_job,
    write_raw,
)
from testkit.cli import run_vmafx


@attrs.frozen
class Cuts:
    folder: Path
    ref: Clip
    ref_yuv: Path  #: the reference as decoded
    late: Clip  #: reference frames 2.. (starts 2 frames late)
    early: Clip  #: 2 master frames before the reference's first, then all of it
    dropped: Clip  #: the reference without its frame 15
    decoded: dict[str, list[bytes]]


@pytest.fixture(scope="module")
def cuts(tmp_path_factory: pytest.TempPathFactory) -> Cuts:
    d = tmp_path_factory.mktemp("cuts")
    master_clip = make_reference(d, ".yuv", "25", frames=34, name="master")
    master = raw_frames(master_clip.path)
    ref = encode_clip(write_raw(d / "ref-src.yuv", master[2:32], "25"), d / "ref.mp4")
    ref_yuv = d / "ref.yuv"
    assert decode_raw(ref, ref_yuv) == 30
    shown = raw_frames(ref_yuv)
    late = encode_clip(write_raw(d / "late-src.yuv", shown[2:], "25"), d / "late.mkv", "mid")
    early = encode_clip(write_raw(d / "early-src.yuv", master[:2] + shown, "25"), d / "early.mkv", "mid")
    dropped = encode_clip(write_raw(d / "drop-src.yuv", shown[:15] + shown[16:], "25"), d / "dropped.mkv", "mid")
    decoded = {}
    for name, clip in (("late", late), ("early", early), ("dropped", dropped)):
        decode_raw(clip, d / f"{name}.yuv")
        decoded[name] = raw_frames(d / f"{name}.yuv")
    return Cuts(d, ref, ref_yuv, late, early, dropped, decoded)


def _truth(tmp_path: Path, ref: list[bytes], dis: list[bytes]) -> dict:
    assert len(ref) == len(dis)
    write_raw(tmp_path / "r.yuv", ref, "25")
    write_raw(tmp_path / "d.yuv", dis, "25")
    return bare_raw_vmaf(tmp_path / "r.yuv", tmp_path / "d.yuv", tmp_path / "truth.json")


def test_distorted_starting_late_with_a_reference_offset(cuts: Cuts, tmp_path: Path) -> None:
    truth = _truth(tmp_path, raw_frames(cuts.ref_yuv)[2:], cuts.decoded["late"])
    out, per_frame = run_job(tmp_path, cuts.ref, cuts.late, "--reference-offset", "2")
    result = assert_matches(out, per_frame, truth)
    assert result["provenance"]["alignment"]["reference"]["offset_frames"] == 2
    seconds, _ = run_job(tmp_path, cuts.ref, cuts.late, alignment={"reference_offset": "0.08s"}, name="s")
    assert seconds.code == 0 and seconds.json()["metrics"] == result["metrics"]  # 0.08 s at 25 fps: 2 frames


def test_distorted_starting_early_with_a_distorted_offset(cuts: Cuts, tmp_path: Path) -> None:
    truth = _truth(tmp_path, raw_frames(cuts.ref_yuv), cuts.decoded["early"][2:])
    out, per_frame = run_job(tmp_path, cuts.ref, cuts.early, "--distorted-offset", "2")
    assert_matches(out, per_frame, truth)


@pytest.mark.parametrize(("name", "offset"), [("late", -2), ("early", 2)])
def test_sync_auto_finds_the_offset(cuts: Cuts, tmp_path: Path, name: str, offset: int) -> None:
    ref = raw_frames(cuts.ref_yuv)
    dis = cuts.decoded[name]
    truth = _truth(tmp_path, ref[2:], dis) if offset < 0 else _truth(tmp_path, ref, dis[2:])
    out, per_frame = run_job(tmp_path, cuts.ref, getattr(cuts, name), "--sync", "auto")
    result = assert_matches(out, per_frame, truth)
    sync = result["provenance"]["alignment"]["sync"]
    assert sync["offset"] == offset and sync["margin"] >= 1.5
    report = run_vmafx("run", str(cuts.ref.path), str(getattr(cuts, name).path), "--sync", "report")
    assert report.code == 0, report.stderr
    assert report.stdout.startswith(f"distorted offset {offset:+d} frames")
    assert ("--reference-offset 2" if offset < 0 else "--distorted-offset 2") in report.stdout
    text = run_vmafx("run", "--job", str(tmp_path / "job.json"), "--sync", "auto")
    assert f"sync found distorted offset {offset:+d} frames" in text.stderr, text.stderr


def test_sync_refuses_when_nothing_stands_out(tmp_path: Path) -> None:
    still = make_reference(tmp_path, ".mp4", "25", frames=30, source="color")
    out = run_vmafx("run", str(still.path), str(still.path), "--sync", "auto")
    assert out.code == 2 and "sync: no offset stands out" in out.stderr and out.stdout == ""


def test_mismatch_scores_a_checked_overlap_only(cuts: Cuts, tmp_path: Path) -> None:
    """--allow-frame-mismatch on a shorter distorted that is paired right: scored; one that is not: refused."""
    shorter = encode_clip(write_raw(tmp_path / "short.yuv", raw_frames(cuts.ref_yuv)[:24], "25"),
                          tmp_path / "short.mkv", "mid")
    decode_raw(shorter, tmp_path / "short-dec.yuv")
    truth = _truth(tmp_path, raw_frames(cuts.ref_yuv)[:24], raw_frames(tmp_path / "short-dec.yuv"))
    out, per_frame = run_job(tmp_path, cuts.ref, shorter, "--allow-frame-mismatch")
    result = assert_matches(out, per_frame, truth)
    assert any("overlap" in n for n in result["notes"])

    dropped = run_vmafx("run", str(cuts.ref.path), str(cuts.dropped.path), "--allow-frame-mismatch")
    assert dropped.code == 2 and dropped.stdout == ""
    line = dropped.stderr.strip().splitlines()[0]
    # frame 15 is missing: 15 itself sits between its neighbours, 16 on clearly pairs with the one before
    assert re.search(r"pairing breaks at reference frame 1[56]\b", line) and "earlier" in line, dropped.stderr

    early = run_vmafx("run", str(cuts.ref.path), str(cuts.early.path), "--allow-frame-mismatch")
    assert early.code == 2 and "pairing breaks at reference frame 0" in early.stderr
    assert "--sync auto" in early.stderr


def test_frame_count_limits_the_pairs(cuts: Cuts, tmp_path: Path) -> None:
    ref = raw_frames(cuts.ref_yuv)
    truth = _truth(tmp_path, ref[2:12], cuts.decoded["late"][:10])
    out, per_frame = run_job(tmp_path, cuts.ref, cuts.late, alignment={"reference_offset": 2, "frames": 10})
    result = assert_matches(out, per_frame, truth)
    assert result["frames_scored"] == 10 and result["provenance"]["alignment"]["frames_limit"] == 10
    json.dumps(result)


def test_sync_refuses_an_offset_at_the_edge_of_its_window(cuts: Cuts) -> None:
    out = run_vmafx("run", str(cuts.ref.path), str(cuts.early.path), "--sync", "auto", "--sync-window", "2")
    assert out.code == 2 and "edge of the search window" in out.stderr and "--sync-window" in out.stderr
