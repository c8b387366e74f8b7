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


# ---- the local pool: reruns, stops, checks (the runner in-process, each segment a stand-in scorer) ----

def _runner_request() -> Any:
    from vmafx_core.scorers.libvmaf import LibvmafOptions
    from vmafx_core.types import ScoreRequest

    ref = PreparedInput(role="reference", url="/r.mp4", display="r.mp4")
    dis = PreparedInput(role="distorted", url="/d.mp4", display="d.mp4")
    return ScoreRequest(reference=ref, distorted=dis, reference_raw=None, distorted_raw=None,
                        options=LibvmafOptions(n_threads=4), alignment=Alignment(), ffmpeg="ffmpeg", segments=3)


def _stand_in(first_of: dict[float | None, int], count: int, fail: dict[int, list[BaseException]],
              shift: int = 0) -> Any:
    """A scorer of segment seeks -> frames `first..`: values that name their global frame."""
    from vmafx_core.types import ScoreOutput

    calls: list[int] = []

    def one(request: Any, plan: Plan, seeks: tuple[float | None, float | None]) -> ScoreOutput:
        first = first_of[seeks[0]]
        calls.append(first)
        if fail.get(first):
            raise fail[first].pop(0)
        n = plan.frames if plan.frames is not None and first + plan.frames <= count else count - first
        frames = [{"vmaf": float(first + j), "integer_adm2": float(first + j + (shift if first else 0))}
                  for j in range(n)]
        return ScoreOutput(frames=frames, reference_frames=-1, distorted_frames=-1, compared_frames=(n, n),
                           frame_numbers=list(range(n)))

    one.calls = calls  # type: ignore[attr-defined]
    return one


def _parts(count: int) -> list[segments.Part]:
    parts = segments.plan_parts(count, 3, keyframes=list(range(0, count, 25)))
    assert parts is not None
    return [attrs.evolve(p, seeks=(p.first / 25 if p.first else None, None)) for p in parts]


def _run(parts: list[segments.Part], one: Any, count: int) -> Any:
    from vmafx_core.ffmpeg import StreamInfo

    info = StreamInfo(codec="h264", width=320, height=240, pix_fmt="yuv420p", fps=25.0, duration=None)
    return segments._run(_runner_request(), (info, info), _plan(), one, parts, (count, count), "graph")


def test_a_failed_segment_reruns_alone_and_the_join_is_the_whole() -> None:
    from vmafx_core.errors import JobFailed

    parts = _parts(150)
    one = _stand_in({p.seeks[0]: p.first for p in parts}, 150, {parts[1].first: [JobFailed("read error")]})
    out = _run(parts, one, 150)
    assert [f["vmaf"] for f in out.frames] == [float(n) for n in range(150)]
    assert list(out.frame_numbers) == list(range(150))
    assert sorted(one.calls) == sorted([p.first for p in parts] + [parts[1].first])  # only it ran twice
    assert out.compared_frames == (150, 150)
    assert out.provenance["segments"]["count"] == 3


def test_a_users_mistake_in_one_segment_stops_the_others() -> None:
    from vmafx_core.errors import BadInput

    parts = _parts(150)
    one = _stand_in({p.seeks[0]: p.first for p in parts}, 150, {parts[2].first: [BadInput("bad")]})
    with pytest.raises(BadInput):
        _run(parts, one, 150)
    assert one.calls.count(parts[2].first) == 1  # not retried


def test_a_segment_on_the_wrong_frame_is_caught() -> None:
    parts = _parts(150)
    one = _stand_in({p.seeks[0]: p.first for p in parts}, 150, {}, shift=1)  # later segments one frame off
    with pytest.raises(segments.Mismatch, match="does not start on the frame"):
        _run(parts, one, 150)
