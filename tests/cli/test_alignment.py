"""Frames paired right: every container on either side, every common rate, against hand-paired truth.

Each case makes a nearly lossless reference and a heavy lossy distorted of it (so pairing a
frame with its neighbour changes the score), runs `vmafx run`, and compares with a bare libvmaf
run on both inputs decoded to raw YUV (see `tests/alignment_media.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.alignment_media import (
    RATES,
    assert_matches,
    bare_raw_vmaf,
    decode_raw,
    make_distorted,
    make_reference,
    run_job,
)

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
