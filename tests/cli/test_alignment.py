"""Frames paired right: every container on either side, every common rate, against hand-paired truth.

Each case makes a nearly lossless reference and a heavy lossy distorted of it (so pairing a
frame with its neighbour changes the score), runs `vmafx run`, and compares with a bare libvmaf
run on both inputs decoded to raw YUV (see `testkit/alignment_media.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.alignment_media import (
    FRAME_BYTES,
    RATES,
    Clip,
    assert_matches,
    bare_raw_vmaf,
    decode_raw,
    make_distorted,
    make_reference,
    run_job,
)
from testkit.cli import run_vmafx

#: (reference container, distorted container, rate): every container on both sides, every rate
MATRIX = [
    (".mp4", ".mkv", "29.97"),
    (".mkv", ".mp4", "23.976"),
    (".webm", ".mp4", "30"),
    (".ts", ".mkv", "59.94"),
    (".y4m", ".webm", "60"),
    (".ivf", ".ts", "50"),
    (".yuv", ".mp4", "25"),
    (".mp4", ".y4m", "24"),
    (".mkv", ".ivf", "29.97"),
    (".mp4", ".yuv", "59.94"),
    (".ts", ".ts", "23.976"),
    (".webm", ".mkv", "24"),
    (".mp4", ".webm", "60"),
    (".mp4", ".mp4", "30"),
    (".obu", ".mkv", "25"),  # a raw AV1 bitstream has no timing: ffmpeg reads it at 25 fps
    (".mp4", ".obu", "25"),
]


@pytest.mark.parametrize(("ref_ext", "dis_ext", "rate"), MATRIX,
                         ids=[f"{r[1:]}-vs-{d[1:]}-{rate}" for r, d, rate in MATRIX])
def test_pairing_matches_hand_paired_truth(tmp_path: Path, ref_ext: str, dis_ext: str, rate: str) -> None:
    ref = make_reference(tmp_path, ref_ext, RATES[rate])
    dis = make_distorted(tmp_path, ref, dis_ext)
    ref_yuv, dis_yuv = tmp_path / "ref-truth.yuv", tmp_path / "dis-truth.yuv"
    assert decode_raw(ref, ref_yuv) == decode_raw(dis, dis_yuv) == 24
    truth = bare_raw_vmaf(ref_yuv, dis_yuv, tmp_path / "truth.json")
    out, per_frame = run_job(tmp_path, ref, dis)
    result = assert_matches(out, per_frame, truth)
    assert result["frames_scored"] == 24
    assert 10 < result["metrics"]["vmaf"]["mean"] < 90  # a real distortion: a mis-pairing would show
    decided = result["provenance"]["alignment"]
    assert decided["pairing"] == "frame index" and decided["rate"] == rate
    assert "setpts=N" in result["provenance"]["filter_graph"]


def _frames(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [data[i:i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]


def test_different_rates_are_refused_with_the_option_to_use(tmp_path: Path) -> None:
    ref = make_reference(tmp_path, ".mp4", "50", frames=48)
    dis = make_distorted(tmp_path, ref, ".mkv", vf="fps=25")
    out, _ = run_job(tmp_path, ref, dis)
    assert out.code == 2 and out.stdout == ""
    line = out.stderr.strip().splitlines()[0]
    assert line.startswith("vmafx: error: frame rates differ: reference 50 fps, distorted 25 fps")
    assert "--frame-rate reference" in line


def test_slower_distorted_scored_at_the_reference_rate(tmp_path: Path) -> None:
    """50 against 25: each distorted frame shown for two reference frames, as a player does."""
    ref = make_reference(tmp_path, ".mp4", "50", frames=48)
    dis = make_distorted(tmp_path, ref, ".mkv", vf="fps=25")
    ref_yuv, dis_yuv, held = tmp_path / "r.yuv", tmp_path / "d.yuv", tmp_path / "held.yuv"
    assert decode_raw(ref, ref_yuv) == 48 and decode_raw(dis, dis_yuv) == 24
    held.write_bytes(b"".join(frame * 2 for frame in _frames(dis_yuv)))  # by hand: each frame twice
    truth = bare_raw_vmaf(ref_yuv, held, tmp_path / "truth.json")
    out, per_frame = run_job(tmp_path, ref, dis, "--frame-rate", "reference")
    result = assert_matches(out, per_frame, truth)
    decided = result["provenance"]["alignment"]
    assert decided["rate"] == "50" and decided["distorted"]["resampled_to"] == "50"
    assert decided["reference"]["resampled_to"] is None
    assert result["frames_scored"] == 48
    summary = run_job(tmp_path, ref, dis, alignment={"fps": "reference"}, name="again")[0]
    assert summary.code == 0 and summary.json()["metrics"] == result["metrics"]  # the job file's field


def test_faster_reference_scored_at_the_distorted_rate(tmp_path: Path) -> None:
    """59.94 against 29.97 at the distorted's rate: every other reference frame."""
    ref = make_reference(tmp_path, ".mkv", RATES["59.94"], frames=48)  # 1 ms timestamps: rounded
    ref_yuv, dis_yuv, even = tmp_path / "r.yuv", tmp_path / "d.yuv", tmp_path / "even.yuv"
    assert decode_raw(ref, ref_yuv) == 48
    even.write_bytes(b"".join(_frames(ref_yuv)[::2]))  # by hand: frames 0, 2, 4, ...
    dis = make_distorted(tmp_path, Clip(even, RATES["29.97"]), ".mp4")
    assert decode_raw(dis, dis_yuv) == 24
    truth = bare_raw_vmaf(even, dis_yuv, tmp_path / "truth.json")
    out, per_frame = run_job(tmp_path, ref, dis, "--frame-rate", "distorted")
    result = assert_matches(out, per_frame, truth)
    assert result["provenance"]["alignment"]["reference"]["resampled_to"] == "29.97"


def test_sixty_against_twenty_four_at_a_given_rate(tmp_path: Path) -> None:
    """60 against 24 (a 3:2-like cadence) at 24: the reference resampled by ffmpeg's fps filter by hand."""
    ref = make_reference(tmp_path, ".mp4", "60", frames=60)
    dis = make_distorted(tmp_path, ref, ".webm", vf="fps=24")
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    assert decode_raw(ref, ref_yuv, vf="fps=24") == decode_raw(dis, dis_yuv) == 24
    truth = bare_raw_vmaf(ref_yuv, dis_yuv, tmp_path / "truth.json")
    out, per_frame = run_job(tmp_path, ref, dis, alignment={"fps": 24})
    result = assert_matches(out, per_frame, truth)
    assert result["provenance"]["alignment"]["reference"]["resampled_to"] == "24"
    text = run_vmafx("run", "--job", str(tmp_path / "job.json"))
    assert text.code == 0 and "alignment  reference resampled 60 -> 24 fps" in text.stderr, text.stderr


def test_alignment_table_in_a_toml_job_file(tmp_path: Path) -> None:
    """A batch's jobs get the same treatment: every alignment setting is a job-file field, checked."""
    ref = make_reference(tmp_path, ".mp4", "50", frames=48)
    dis = make_distorted(tmp_path, ref, ".mkv", vf="fps=25")
    job = tmp_path / "job.toml"
    job.write_text(f'[reference]\nuri = "{ref.path}"\n[distorted]\nuri = "{dis.path}"\n'
                   '[alignment]\nfps = "reference"\ndeinterlace = "yadif"\nvfr = "error"\n')
    out = run_vmafx("run", "--job", str(job), "--json")
    assert out.code == 0, out.stderr
    assert out.json()["provenance"]["alignment"]["distorted"]["resampled_to"] == "50"
    job.write_text(f'[reference]\nuri = "{ref.path}"\n[distorted]\nuri = "{dis.path}"\n'
                   '[alignment]\nfps = "fast"\nreference_offset = -3\nsync = "maybe"\n')
    bad = run_vmafx("run", "--job", str(job))
    assert bad.code == 2
    assert "job.alignment.fps: must be reference, distorted, index or a frame rate" in bad.stderr
    assert "job.alignment.reference_offset: must be a frame count >= 0 or seconds" in bad.stderr
    assert "job.alignment.sync: must be one of off, auto" in bad.stderr


def test_stream_without_timing_paired_as_decoded(tmp_path: Path) -> None:
    """An OBU stream of 30 fps content reads as 25 fps: refused, then paired as decoded with --frame-rate index."""
    ref = make_reference(tmp_path, ".mp4", "30")
    dis = make_distorted(tmp_path, ref, ".obu")
    refused, _ = run_job(tmp_path, ref, dis, name="refused")
    assert refused.code == 2 and "--frame-rate index" in refused.stderr
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    assert decode_raw(ref, ref_yuv) == decode_raw(dis, dis_yuv) == 24
    truth = bare_raw_vmaf(ref_yuv, dis_yuv, tmp_path / "truth.json")
    out, per_frame = run_job(tmp_path, ref, dis, "--frame-rate", "index")
    result = assert_matches(out, per_frame, truth)
    decided = result["provenance"]["alignment"]
    assert decided["pairing"].startswith("frame index (rates ignored")
    assert decided["reference"]["resampled_to"] is None and decided["distorted"]["resampled_to"] is None
