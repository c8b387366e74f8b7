"""Two local inputs probed by one ffmpeg describe each input as its own probe does (supervise.probe_both)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.media import ffmpeg_run
from vmafx_core.errors import BadInput
from vmafx_core.ffmpeg import find_ffmpeg, probe
from vmafx_core.job import Alignment
from vmafx_core.supervise import _probe_together, probe_both
from vmafx_core.types import PreparedInput, ScoreRequest


def _request(ref: Path, dis: Path) -> ScoreRequest:
    def local(role: str, path: Path) -> PreparedInput:
        return PreparedInput(role=role, url="file:" + str(path), display=str(path))

    return ScoreRequest(reference=local("reference", ref), distorted=local("distorted", dis), reference_raw=None,
                        distorted_raw=None, options=None, alignment=Alignment(), ffmpeg=find_ffmpeg())


def test_one_probe_for_both_equals_two(tmp_path: Path) -> None:
    ref, dis = tmp_path / "r.mkv", tmp_path / "d.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30000/1001:duration=1", "-c:v", "libx264", str(ref))
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=2", "-f", "lavfi", "-i",
               "sine=duration=2", "-c:v", "libx264", "-pix_fmt", "yuv444p", "-shortest", str(dis))
    request = _request(ref, dis)
    together = probe_both(request.ffmpeg, request)
    assert _probe_together(request.ffmpeg, request) == together  # one process did it
    alone = (probe(request.ffmpeg, request.reference), probe(request.ffmpeg, request.distorted))
    assert together == alone
    assert together[1].pix_fmt == "yuv444p" and together[0].width == 320


def test_a_bad_input_still_gets_its_own_error(tmp_path: Path) -> None:
    ref, dis = tmp_path / "r.mp4", tmp_path / "d.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1", "-c:v", "libx264", str(ref))
    dis.write_bytes(b"not a video at all" * 100)
    request = _request(ref, dis)
    with pytest.raises(BadInput, match="distorted .*not a video"):
        probe_both(request.ffmpeg, request)
