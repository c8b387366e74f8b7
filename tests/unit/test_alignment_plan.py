"""What the probe reads for alignment, and the plans made from it (no ffmpeg run needed)."""

from __future__ import annotations

from fractions import Fraction

import attrs
import pytest

from vmafx_core.alignment import make_plan, nominal_rate
from vmafx_core.errors import BadInput
from vmafx_core.ffmpeg import parse_stream_info
from vmafx_core.job import Alignment


def _info(stream: str, side_data: str = ""):  # type: ignore[no-untyped-def]
    text = f"  Duration: 00:00:01.00, start: 0.000000, bitrate: 100 kb/s\n  Stream #0:0: Video: {stream}\n{side_data}"
    info = parse_stream_info(text)
    assert info is not None
    return info


def test_probe_reads_field_order_rotation_and_both_rates() -> None:
    tff = _info("h264 (High), yuv420p(tv, bt709, top first), 1920x1080 [SAR 1:1 DAR 16:9], 25 fps, 25 tbr, 1k tbn")
    assert tff.field_order == "tt" and tff.sar == "1:1" and tff.tbr == 25
    swapped = _info("h264, yuv420p(tv, top coded first (swapped)), 720x576, 25 fps, 25 tbr, 1k tbn")
    assert swapped.field_order == "tb"
    assert _info("rawvideo, yuv420p, 160x90, 25 fps, 25 tbr, 25 tbn").field_order is None
    phone = _info("h264 (High), yuv420p(progressive), 1920x1080, 29.80 fps, 90k tbr, 90k tbn",
                  "    Side data:\n      displaymatrix: rotation of -90.00 degrees\n")
    assert phone.rotation == -90 and phone.display_size == (1080, 1920) and phone.tbr == 90000
    assert phone.field_order == "progressive"


@pytest.mark.parametrize(("printed", "exact"), [(23.98, "24000/1001"), (29.97, "30000/1001"),
                                                (59.94, "60000/1001"), (25.0, "25"), (24.0, "24")])
def test_nominal_rates(printed: float, exact: str) -> None:
    assert nominal_rate(printed) == Fraction(exact)


def test_plans() -> None:
    a = _info("h264, yuv420p(progressive), 160x90, 29.97 fps, 29.97 tbr, 30k tbn")
    b = _info("h264, yuv420p(tv, progressive), 160x90, 29.97 fps, 29.97 tbr, 1k tbn")
    plan = make_plan(a, b, Alignment())
    assert plan.chain("distorted", "yuv420p") == [
        "setparams=range=tv:colorspace=smpte170m:color_primaries=smpte170m:color_trc=smpte170m:chroma_location=left",
        "format=pix_fmts=yuv420p:color_spaces=smpte170m:color_ranges=tv", "settb=1001/30000", "setpts=N"]
    assert plan.summary == () and not plan.changes_counts
    fast = attrs.evolve(a, fps=59.94, tbr=59.94)
    with pytest.raises(BadInput, match="frame rates differ: reference 59.94 fps, distorted 29.97 fps"):
        make_plan(fast, b, Alignment())
    plan = make_plan(fast, b, Alignment(fps="distorted"))  # type: ignore[arg-type]
    assert plan.reference.resample_to == Fraction(30000, 1001) and plan.distorted.resample_to is None
    assert "fps=30000/1001" in plan.chain("reference", "yuv420p") and plan.changes_counts


def test_display_aspect_is_compared_on_the_shown_picture() -> None:
    pal = _info("mpeg2video, yuv420p(tv, progressive), 720x576 [SAR 16:15 DAR 4:3], 25 fps, 25 tbr, 1k tbn")
    square = _info("h264, yuv420p(progressive), 768x576 [SAR 1:1 DAR 4:3], 25 fps, 25 tbr, 1k tbn")
    plan = make_plan(pal, square, Alignment())
    assert plan.scale == "scale=720:576:flags=bicubic"
    assert not any("aspect" in line for line in plan.summary)
    wide = _info("h264, yuv420p(progressive), 1024x576 [SAR 1:1 DAR 16:9], 25 fps, 25 tbr, 1k tbn")
    assert any("display aspect ratios differ" in line for line in make_plan(pal, wide, Alignment()).summary)


def test_idet_counts_and_verdict() -> None:
    from vmafx_core.alignment import idet_field_order, parse_idet

    text = ("[idet] Single frame detection: TFF:    20 BFF:     0 Progressive:     1 Undetermined:     3\n"
            "[idet] Multi frame detection: TFF:    22 BFF:     0 Progressive:     0 Undetermined:     2\n")
    counts = parse_idet(text)
    assert counts == {"tff": 22, "bff": 0, "progressive": 0, "undetermined": 2}
    assert idet_field_order(counts) == "tt"
    assert idet_field_order({"tff": 3, "bff": 2, "progressive": 19, "undetermined": 0}) == "progressive"
    assert idet_field_order({"tff": 0, "bff": 0, "progressive": 0, "undetermined": 24}) == "progressive"
    assert parse_idet("nothing") is None


def test_rates_from_the_timestamps_where_the_average_is_a_little_off() -> None:
    edit_listed = _info("h264, yuv420p(progressive), 160x90, 24.02 fps, 24 tbr, 12288 tbn")
    plain = _info("h264, yuv420p(tv, progressive), 160x90, 24 fps, 24 tbr, 1k tbn")
    assert make_plan(edit_listed, plain, Alignment()).rate == 24
    fields = _info("h264, yuv420p(tv, top first), 1920x1080, 25 fps, 50 tbr, 90k tbn")
    plan = make_plan(fields, _info("h264, yuv420p(progressive), 1920x1080, 25 fps, 25 tbr, 12800 tbn"), Alignment())
    assert plan.rate == 25 and not plan.reference.vfr and plan.reference.deinterlace == "bwdif=mode=send_frame"
