"""Where a pair is cut, and when it is not (vmafx_core.segments), in-process."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest

from testkit.media import ffmpeg_run
from vmafx_core import segments
from vmafx_core.alignment import Plan, Side
from vmafx_core.job import Alignment
from vmafx_core.types import PreparedInput, RawVideo


def _plan(**changes: Any) -> Plan:
    side = Side("reference", Fraction(25), False, None, None, 0)
    plan = Plan(reference=side, distorted=attrs.evolve(side, role="distorted"), rate=Fraction(25), frames=None,
                scale=None, decisions={}, summary=())
    return attrs.evolve(plan, **changes)


def _request(alignment: Alignment | None = None, **inputs: Any) -> Any:
    ref = PreparedInput(role="reference", url="/r.mp4", display="r.mp4")
    dis = PreparedInput(role="distorted", url=inputs.get("dis_url", "/d.mp4"), display="d.mp4",
                        stdin_fd=inputs.get("stdin_fd"))
    return SimpleNamespace(alignment=alignment or Alignment(), reference=ref, distorted=dis)


def test_cuts_follow_keyframes_with_warm_up_and_cover_every_frame() -> None:
    parts = segments.plan_parts(1000, 4, keyframes=list(range(0, 1000, 48)))
    assert parts is not None and len(parts) == 4
    assert parts[0].keep_from == 0 and parts[-1].keep_to == 1000
    for before, after in zip(parts, parts[1:], strict=False):
        assert before.keep_to == after.keep_from
        assert (after.keep_from - segments.WARM_UP) % 48 == 0  # decoding starts on a keyframe
        assert after.first == after.keep_from - segments.WARM_UP
        assert before.frames == before.keep_to + segments.LOOK_AHEAD - before.first
    assert parts[-1].frames is None  # reads to the end: its counts are the whole run's


def test_subsampled_segments_start_on_a_multiple() -> None:
    parts = segments.plan_parts(600, 3, keyframes=list(range(0, 600, 50)), subsample=4)
    assert parts is not None
    assert all(p.first % 4 == 0 for p in parts)
    assert all(p.keep_from - p.first >= segments.WARM_UP for p in parts[1:])


def test_too_short_to_cut() -> None:
    assert segments.plan_parts(30, 2, keyframes=[0]) is None
    assert segments.plan_parts(1000, 1, keyframes=[0]) is None


def test_frame_limit_bounds_the_last_segment() -> None:
    parts = segments.plan_parts(300, 2, keyframes=list(range(0, 400, 25)), limit_reads=300)
    assert parts is not None and parts[-1].frames == 300 - parts[-1].first


def test_auto_splits_only_long_pairs() -> None:
    assert segments.pieces_wanted("auto", 2 * segments.AUTO_MIN_FRAMES - 1, 8) == 1
    assert segments.pieces_wanted("auto", 10 * segments.AUTO_MIN_FRAMES, 4) == 4
    assert segments.pieces_wanted(3, 10, 1) == 3


@pytest.mark.parametrize(("alignment", "plan", "inputs", "words"), [
    (Alignment(sync="auto"), _plan(), {}, "--sync auto"),
    (Alignment(allow_frame_mismatch=True), _plan(), {}, "--allow-frame-mismatch"),
    (Alignment(), _plan(), {"stdin_fd": 5}, "pipe"),
    (Alignment(), _plan(distorted=Side("distorted", Fraction(50), False, None, Fraction(25), 0)), {},
     "resampled by timestamp"),
    (Alignment(), _plan(reference=Side("reference", Fraction(25), False, "bwdif=mode=send_frame", None, 0)), {},
     "deinterlaced"),
    (Alignment(), _plan(distorted=Side("distorted", Fraction(25), True, None, Fraction(25), 0)), {},
     "variable rate"),
])
def test_whole_when_exactness_cannot_be_shown(alignment: Alignment, plan: Plan, inputs: dict[str, Any],
                                              words: str) -> None:
    reason = segments.why_whole(_request(alignment, **inputs), plan)
    assert reason is not None and words in reason


def test_plain_pair_can_be_cut() -> None:
    assert segments.why_whole(_request(), _plan(distorted=Side("distorted", Fraction(25), False, None, None, 7),
                                                scale="scale=320:240:flags=bicubic")) is None


def test_index_of_a_container_and_of_raw(tmp_path: Path) -> None:
    clip = tmp_path / "c.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25,trim=end_frame=60", "-c:v", "libx264",
               "-g", "20", "-bf", "2", str(clip))
    index = segments.read_index(PreparedInput(role="reference", url=str(clip), display="c"), None)
    assert index.frames == 60 and index.rate == 25
    assert index.keyframes[:3] == (0, 20, 40)
    assert index.seek_time(0) is None and index.seek_time(20) == pytest.approx(index.first + 19.5 / 25)
    raw = RawVideo(160, 120, "yuv420p", 25.0)
    sized = PreparedInput(role="reference", url="/x.yuv", display="x", size=raw.frame_bytes * 10)
    raw_index = segments.read_index(sized, raw)
    assert raw_index.frames == 10 and raw_index.keyframes == tuple(range(10))


def test_variable_rate_timestamps_have_no_usable_index(tmp_path: Path) -> None:
    clip = tmp_path / "vfr.mkv"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25,trim=end_frame=60",
               "-vf", "select='not(between(n,10,14))'", "-fps_mode", "vfr", "-c:v", "libx264", str(clip))
    with pytest.raises(segments.NoIndex, match="constant rate"):
        segments.read_index(PreparedInput(role="distorted", url=str(clip), display="v"), None)
