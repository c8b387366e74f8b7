"""Variable frame rates: never paired by position across a drop; the truth is held frames by hand.

vmafx's default for an input whose timestamps are uneven is to show it at the reference's nominal
rate by timestamp, as a player does: a dropped frame's slot shows the frame before it again.
"""

from __future__ import annotations

from pathlib import Path

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
from testkit.media import ffmpeg_run


def _vfr_encode(src: Clip, path: Path, vf: str) -> Clip:
    """A lossy encode keeping the uneven timestamps `vf` makes (no frame added or dropped to even them)."""
    ffmpeg_run(*src.input_args(), "-vf", vf, "-fps_mode", "vfr", "-enc_time_base", "1/90000", "-c:v", "libx264",
               "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p", str(path))
    return Clip(path, src.rate)


def test_dropped_frame_is_held_not_paired_by_position(tmp_path: Path) -> None:
    master = make_reference(tmp_path, ".yuv", "25", frames=50, name="master")
    ref = encode_clip(master, tmp_path / "ref.mp4")
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    assert decode_raw(ref, ref_yuv) == 50
    dis = _vfr_encode(ref, tmp_path / "dropped.mp4", r"select=not(eq(n\,20))")
    assert decode_raw(dis, dis_yuv) == 49
    shown = raw_frames(dis_yuv)
    held = write_raw(tmp_path / "held.yuv", shown[:20] + [shown[19]] + shown[20:], "25")  # by hand: 19 twice
    truth = bare_raw_vmaf(ref_yuv, held.path, tmp_path / "truth.json")
    out, per_frame = run_job(tmp_path, ref, dis)
    result = assert_matches(out, per_frame, truth)
    decided = result["provenance"]["alignment"]
    assert decided["distorted"]["variable_rate"] and decided["distorted"]["resampled_to"] == "25"
    assert result["frames_scored"] == 50
    refused = run_job(tmp_path, ref, dis, "--vfr", "error", name="refused")[0]
    assert refused.code == 2 and "variable frame rate" in refused.stderr and "alignment.vfr" in refused.stderr


def test_jittered_timestamps_pair_each_frame_with_its_own(tmp_path: Path) -> None:
    """Phone-style capture: timestamps wander up to 0.3 frame around the nominal 30 fps."""
    master = make_reference(tmp_path, ".yuv", "30", frames=30, name="master")
    ref = encode_clip(master, tmp_path / "ref.mkv")
    dis = _vfr_encode(master, tmp_path / "phone.mp4", "settb=1/90000,setpts='(N+0.3*sin(N*1.7))/30/TB'")
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    assert decode_raw(ref, ref_yuv) == decode_raw(dis, dis_yuv) == 30
    truth = bare_raw_vmaf(ref_yuv, dis_yuv, tmp_path / "truth.json")
    out, per_frame = run_job(tmp_path, ref, dis)
    result = assert_matches(out, per_frame, truth)
    assert result["provenance"]["alignment"]["distorted"]["variable_rate"]


def test_a_drop_the_header_hides_is_an_error_not_a_score(tmp_path: Path) -> None:
    """Matroska states no average rate: the drop shows in the counts, the pairing check names it, and
    `--vfr always` shows both inputs by their timestamps."""
    master = make_reference(tmp_path, ".yuv", "25", frames=50, name="master")
    ref = encode_clip(master, tmp_path / "ref.mp4")
    dis = _vfr_encode(ref, tmp_path / "dropped.mkv", r"select=not(eq(n\,20))")
    out = run_vmafx("run", str(ref.path), str(dis.path))
    assert out.code == 2 and "frame counts differ" in out.stderr and out.stdout == ""
    assert "--vfr always" in out.stderr
    checked = run_vmafx("run", str(ref.path), str(dis.path), "--allow-frame-mismatch")
    assert checked.code == 2 and "pairing breaks at reference frame 2" in checked.stderr, checked.stderr
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    assert decode_raw(ref, ref_yuv) == 50 and decode_raw(dis, dis_yuv) == 49
    shown = raw_frames(dis_yuv)
    held = write_raw(tmp_path / "held.yuv", shown[:20] + [shown[19]] + shown[20:], "25")
    truth = bare_raw_vmaf(ref_yuv, held.path, tmp_path / "truth.json")
    out, per_frame = run_job(tmp_path, ref, dis, "--vfr", "always")  # both shown by their timestamps
    result = assert_matches(out, per_frame, truth)
    assert result["provenance"]["alignment"]["distorted"]["resampled_by_timestamp"]
