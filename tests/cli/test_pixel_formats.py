"""Deep and non-4:2:0 sources are scored at their own depth and chroma layout, against hand-made truth.

The truth decodes both inputs to raw in the format a user who knows the source would pick (12-bit
RGB: 4:4:4 at 12 bits) and scores raw against raw with a bare libvmaf; vmafx must give the same
numbers and say in the result which format it scored in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.media import ffmpeg_run
from vmafx_core.pixfmt import scoring_format
from vmafx_core.scorers.libvmaf.scorer import _VMAF_PIX_FMTS

W, H, FRAMES = 320, 240, 12


@pytest.mark.parametrize(("source", "scored"), [
    ("yuv420p", "yuv420p"), ("yuvj420p", "yuv420p"), ("yuv420p10le", "yuv420p10le"), ("nv12", "yuv420p"),
    ("p010le", "yuv420p10le"), ("yuv420p12be", "yuv420p12le"), ("gbrp12le", "yuv444p12le"),
    ("rgb24", "yuv444p"), ("yuyv422", "yuv422p"), ("v210", "yuv422p10le"), ("yuv420p9le", "yuv420p10le"),
    ("rgb48le", "yuv444p16le"), ("gray10le", "yuv420p10le"), ("yuv440p", "yuv420p"),
])
def test_libvmaf_scores_each_source_at_its_depth_and_layout(source: str, scored: str) -> None:
    assert scoring_format(source, _VMAF_PIX_FMTS) == scored


def test_the_second_scorer_keeps_the_layout_at_the_depth_its_filters_take() -> None:
    from vmafx_ffmpeg_metrics.plugin import psnr_cap, target_pix_fmt
    assert target_pix_fmt("yuv444p12le") == "yuv444p10le"  # was 4:2:0 before the rule was shared
    assert target_pix_fmt("gbrp") == "yuv444p" and target_pix_fmt("nv12") == "yuv420p"
    assert psnr_cap("yuv420p10le") == 72.0 and psnr_cap("yuv420p") == 60.0


def _ffv1(path: Path, pix_fmt: str, vf: str) -> Path:
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=25", "-frames:v", str(FRAMES), "-vf", vf,
               "-pix_fmt", pix_fmt, "-c:v", "ffv1", str(path))
    return path


def _bare(ref: Path, dis: Path, as_fmt: str, folder: Path) -> dict[str, Any]:
    raws = []
    for name, src in (("ref", ref), ("dis", dis)):
        out = folder / f"{name}.yuv"
        ffmpeg_run("-i", str(src), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", as_fmt, str(out))
        raws.append(out)
    raw = ["-f", "rawvideo", "-video_size", f"{W}x{H}", "-pixel_format", as_fmt, "-framerate", "25"]
    log = folder / "truth.json"
    ffmpeg_run(*raw, "-i", str(raws[1]), *raw, "-i", str(raws[0]), "-lavfi",
               f"[0:v][1:v]libvmaf=model=version=vmaf_v0.6.1:feature=name=psnr:log_fmt=json:log_path={log}"
               ":n_threads=2", "-f", "null", "-")
    data: dict[str, Any] = json.loads(log.read_text())
    return data


def test_a_12_bit_rgb_pair_equals_bare_libvmaf_at_444_12_bit(tmp_path: Path) -> None:
    ref = _ffv1(tmp_path / "ref.mkv", "gbrp12le", "null")
    dis = _ffv1(tmp_path / "dis.mkv", "gbrp12le", "gblur=sigma=1.2,noise=alls=6:allf=t")
    truth = _bare(ref, dis, "yuv444p12le", tmp_path)
    frames = tmp_path / "frames.json"
    out = run_vmafx("run", str(ref), str(dis), "--feature", "psnr", "--json", "--frames", str(frames))
    assert out.code == 0, out.stderr
    result = out.json()
    assert result["provenance"]["scored_as"] == "yuv444p12le"
    for metric in ("vmaf", "psnr_y", "psnr_cb", "psnr_cr"):
        assert abs(result["metrics"][metric]["mean"] - truth["pooled_metrics"][metric]["mean"]) < 1e-4, metric
    rows = json.loads(frames.read_text())
    assert len(rows) == len(truth["frames"]) == FRAMES
    for row, expected in zip(rows, truth["frames"], strict=True):
        assert abs(row["vmaf"] - expected["metrics"]["vmaf"]) < 1e-4
        assert abs(row["psnr_cb"] - expected["metrics"]["psnr_cb"]) < 1e-4
