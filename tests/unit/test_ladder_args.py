"""A rung's options as per-stream options of the shared encoder."""

from __future__ import annotations

import pytest

from vmafx_core.encode import NotShareable, ladder_argv, rung_args
from vmafx_core.job import Encode


def test_every_option_gets_the_rungs_stream_specifier() -> None:
    spec = Encode("libx264", crf=23.5, bitrate="2M", preset="fast", pix_fmt="yuv420p",
                  extra_args=("-x264-params", "rc-lookahead=60", "-profile:v", "high", "-g", "-1"))
    assert rung_args(spec, 3) == ["-c:v:3", "libx264", "-crf:v:3", "23.5", "-b:v:3", "2M", "-preset:v:3", "fast",
                                  "-pix_fmt:v:3", "yuv420p", "-x264-params:v:3", "rc-lookahead=60",
                                  "-profile:v:3", "high", "-g:v:3", "-1"]


@pytest.mark.parametrize("extra", [("-an",), ("high", "-profile"), ("-1", "x")])
def test_extra_args_that_are_not_option_value_pairs_are_not_shareable(extra: tuple[str, ...]) -> None:
    with pytest.raises(NotShareable):
        rung_args(Encode("libx264", extra_args=extra), 1)


def test_the_shared_encoder_muxes_the_raw_reference_and_every_rung_into_one_nut() -> None:
    argv = ladder_argv("ffmpeg", ["-i", "ref.mp4"], [Encode("libx264", crf=20), Encode("libx265", size="640x360")],
                       ["pipe:7", "pipe:8"])
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph == "[0:v:0]split=3[ref][e0][e1];[e1]scale=640:360:flags=bicubic[s1]"
    assert argv[argv.index("-max_interleave_delta") + 1] == "0"
    assert argv[-1] == ("[f=nut:onfail=abort]pipe:1|[f=nut:select=1:onfail=abort]pipe:7|"
                        "[f=nut:select=2:onfail=abort]pipe:8")
    maps = [argv[i + 1] for i, a in enumerate(argv) if a == "-map"]
    assert maps == ["[ref]", "[e0]", "[s1]"]
