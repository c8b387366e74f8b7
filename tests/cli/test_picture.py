"""Interlacing and rotation: scored on the picture as it is shown, against hand-made truth.

The truth applies the same treatment with ffmpeg on the decode to raw (bwdif for the fields,
the decoder's own rotation), then scores raw against raw.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testkit.alignment_media import (
    Clip,
    H,
    W,
    assert_matches,
    bare_raw_vmaf,
    decode_raw,
    encode_clip,
    run_job,
)
from testkit.cli import run_vmafx
from testkit.media import ffmpeg_run


@pytest.fixture(scope="module")
def interlaced(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """25i: 48 frames of 50p motion woven into 24 frames of two fields each, flagged top field first."""
    d = tmp_path_factory.mktemp("interlaced")
    path = d / "ref25i.y4m"
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=50", "-frames:v", "24",
               "-vf", "interlace=scan=tff,setfield=tff", "-pix_fmt", "yuv420p", str(path))
    return Clip(path, "25")


def test_interlaced_reference_against_a_progressive_encode(interlaced: Clip, tmp_path: Path) -> None:
    dis = encode_clip(interlaced, tmp_path / "dis25p.mkv", "mid", vf="bwdif=mode=send_frame")
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    assert decode_raw(interlaced, ref_yuv, vf="bwdif=mode=send_frame") == decode_raw(dis, dis_yuv) == 24
    truth = bare_raw_vmaf(ref_yuv, dis_yuv, tmp_path / "truth.json")
    out, per_frame = run_job(tmp_path, interlaced, dis)
    result = assert_matches(out, per_frame, truth)
    decided = result["provenance"]["alignment"]
    assert decided["reference"]["field_order"] == "tt"
    assert decided["reference"]["deinterlaced"] == "bwdif=mode=send_frame"
    assert decided["distorted"]["deinterlaced"] is None
    combed = run_job(tmp_path, interlaced, dis, "--deinterlace", "off", name="off")[0]
    assert combed.code == 0
    off = combed.json()
    assert off["provenance"]["alignment"]["reference"]["deinterlaced"] is None
    assert "scored as it is" in " ".join(off["provenance"]["alignment"]["summary"])
    assert off["metrics"]["vmaf"]["mean"] < result["metrics"]["vmaf"]["mean"] - 1  # combing costs points
    yadif = run_job(tmp_path, interlaced, dis, alignment={"deinterlace": "yadif"}, name="yadif")[0]
    assert yadif.json()["provenance"]["alignment"]["reference"]["deinterlaced"] == "yadif=mode=send_frame"


def test_interlaced_reference_against_fifty_progressive(interlaced: Clip, tmp_path: Path) -> None:
    """25i against 50p: one picture per field, so both run at 50."""
    dis = encode_clip(interlaced, tmp_path / "dis50p.mp4", "mid", vf="bwdif=mode=send_field")
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    assert decode_raw(interlaced, ref_yuv, vf="bwdif=mode=send_field") == decode_raw(dis, dis_yuv) == 48
    truth = bare_raw_vmaf(ref_yuv, dis_yuv, tmp_path / "truth.json")
    out, per_frame = run_job(tmp_path, interlaced, dis)
    result = assert_matches(out, per_frame, truth)
    decided = result["provenance"]["alignment"]
    assert decided["reference"]["deinterlaced"] == "bwdif=mode=send_field" and decided["rate"] == "50"
    text = run_vmafx("run", "--job", str(tmp_path / "job.json"))
    assert "alignment  reference deinterlaced (bwdif=mode=send_field)" in text.stderr, text.stderr


def test_rotated_metadata_against_rotation_baked_in(tmp_path: Path) -> None:
    """A phone clip stored 160x90 with a 90 degree display matrix, against an encode of what it shows."""
    stored = tmp_path / "stored.mp4"
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=30", "-frames:v", "24", "-c:v", "libx264",
               "-crf", "6", "-pix_fmt", "yuv420p", str(stored))
    phone = tmp_path / "phone.mp4"
    ffmpeg_run("-display_rotation", "90", "-i", str(stored), "-c", "copy", str(phone))
    ref = Clip(phone, "30")
    baked = encode_clip(ref, tmp_path / "baked.mkv", "mid")  # ffmpeg turns the picture while decoding
    small = encode_clip(ref, tmp_path / "small.mkv", "mid", vf="scale=46:80")
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    assert decode_raw(ref, ref_yuv) == decode_raw(baked, dis_yuv) == 24
    truth = bare_raw_vmaf(ref_yuv, dis_yuv, tmp_path / "truth.json", size=f"{H}x{W}")
    out, per_frame = run_job(tmp_path, ref, baked)
    result = assert_matches(out, per_frame, truth)
    decided = result["provenance"]["alignment"]
    assert decided["reference"]["rotation"] == 90 and decided["reference"]["displayed_size"] == [H, W]
    assert decided["distorted"]["scaled"] is None
    small_yuv = tmp_path / "s.yuv"
    decode_raw(Clip(small.path, "30"), small_yuv, vf=f"scale={H}:{W}:flags=bicubic")
    truth = bare_raw_vmaf(ref_yuv, small_yuv, tmp_path / "truth-small.json", size=f"{H}x{W}")
    out, per_frame = run_job(tmp_path, ref, small, name="small")
    result = assert_matches(out, per_frame, truth)
    assert result["provenance"]["alignment"]["distorted"]["scaled"] == f"46x80 -> {H}x{W} (bicubic)"


def test_unflagged_interlaced_raw_is_found_by_looking(interlaced: Clip, tmp_path: Path) -> None:
    """Raw YUV states no field order: idet on the first frames finds the weave; said, or deinterlaced."""
    raw = tmp_path / "woven.yuv"
    decode_raw(interlaced, raw)  # the same fields, without any flag
    ref = Clip(raw, "25")
    dis = encode_clip(ref, tmp_path / "dis25p.mp4", "mid", vf="setfield=tff,bwdif=mode=send_frame")
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    assert decode_raw(ref, ref_yuv, vf="setfield=tff,bwdif=mode=send_frame") == decode_raw(dis, dis_yuv) == 24
    truth = bare_raw_vmaf(ref_yuv, dis_yuv, tmp_path / "truth.json")
    out, per_frame = run_job(tmp_path, ref, dis, "--interlace-check", "deinterlace")
    result = assert_matches(out, per_frame, truth)
    decided = result["provenance"]["alignment"]["reference"]
    assert decided["field_order_stated"] is None and decided["field_order"] == "tt"
    assert decided["interlace_check"]["tff"] > decided["interlace_check"]["progressive"]
    assert decided["deinterlaced"] == "setfield=tff,bwdif=mode=send_frame"
    noted = run_job(tmp_path, ref, dis, name="noted")[0]  # the default: said, not acted on
    said = noted.json()["provenance"]["alignment"]
    assert said["reference"]["deinterlaced"] is None
    assert any("looks interlaced to idet" in line for line in said["summary"])
    text = run_vmafx("run", "--job", str(tmp_path / "noted.json"))
    assert "--interlace-check deinterlace" in text.stderr
    unchecked = run_job(tmp_path, ref, dis, "--interlace-check", "off", name="unchecked")[0]
    assert unchecked.json()["provenance"]["alignment"]["reference"]["interlace_check"] is None


def test_encode_of_a_rotated_reference_is_scored_as_displayed(tmp_path: Path) -> None:
    stored = tmp_path / "stored.mp4"
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=30", "-frames:v", "24", "-c:v", "libx264",
               "-crf", "6", "-pix_fmt", "yuv420p", str(stored))
    phone = tmp_path / "phone.mp4"
    ffmpeg_run("-display_rotation", "90", "-i", str(stored), "-c", "copy", str(phone))
    saved = tmp_path / "enc.nut"
    out = run_vmafx("run", str(phone), "--encode", "libx264", "--crf", "34", "--n-threads", "2", "--json",
                    "--save-encode", str(saved), "--frames", str(tmp_path / "frames.json"))
    assert out.code == 0, out.stderr
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    assert decode_raw(Clip(phone, "30"), ref_yuv) == decode_raw(Clip(saved, "30"), dis_yuv) == 24
    truth = bare_raw_vmaf(ref_yuv, dis_yuv, tmp_path / "truth.json", size=f"{H}x{W}")
    per_frame = [row["vmaf"] for row in json.loads((tmp_path / "frames.json").read_text())]
    result = assert_matches(out, per_frame, truth)
    assert result["provenance"]["alignment"]["distorted"]["scaled"] is None
