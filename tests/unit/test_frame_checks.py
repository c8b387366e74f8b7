"""The executor's frame checks, in process, from nothing but what a scorer returns.

A scorer reports facts (frames decoded, what each container declares, its subsampling, its own
pooled values); the job's lifecycle (`lifecycle.build_result`) alone decides whether they make a trustworthy score.
"""

from __future__ import annotations

from typing import Any

import pytest

from vmafx_core import lifecycle
from vmafx_core.errors import BadInput, JobFailed
from vmafx_core.job import Alignment, Job, Source
from vmafx_core.plugins import Plugins
from vmafx_core.types import DeclaredFrames, PreparedInput, ScoreOutput, Scorer


def _job(**alignment: Any) -> Job:
    return Job(reference=Source("ref.mkv"), distorted=Source("dis.mkv"), alignment=Alignment(**alignment))


def _build(output: ScoreOutput, job: Job | None = None) -> Any:
    job = job or _job()
    scorer = Scorer(name="test", description="", metrics=(), options_type=object, score=lambda r: output)
    setup = lifecycle.Setup(plugins=Plugins(entry_points=[], builtins=False), scorer=scorer, release="test 0",
                            options=None, ffmpeg="ffmpeg", started=0.0, should_stop=lambda: False, cache=None, job=job)
    result, _ = lifecycle.build_result(setup, lifecycle.Scoring(
        job=job, output=output, reference=PreparedInput("reference", "reference.mkv", "reference.mkv"),
        distorted=PreparedInput("distorted", "distorted.mkv", "distorted.mkv"), storage=("local", "local"),
        prepared_at=1.0, scored_at=2.0))
    return result


def _output(n_ref: int, n_dis: int, scored: int, **fields: Any) -> ScoreOutput:
    return ScoreOutput(frames=[{"m": float(i)} for i in range(scored)], reference_frames=n_ref,
                       distorted_frames=n_dis, **fields)


def test_an_input_that_decoded_fewer_frames_than_declared_fails() -> None:
    output = _output(50, 50, 50, declared_frames=(DeclaredFrames(100, 25.0), None))
    with pytest.raises(JobFailed, match=r"reference reference.mkv: decoded 50 frames but its container declares 100 "
                                        r"\(25 fps\); the input was cut short"):
        _build(output)


def test_a_few_frames_short_of_the_declared_count_is_rounding() -> None:
    assert _build(_output(98, 98, 98, declared_frames=(DeclaredFrames(100, 25.0), DeclaredFrames(100, 25.0)))
                  ).frames_scored == 98


def test_under_frame_mismatch_the_shorter_cut_input_is_a_note() -> None:
    output = _output(100, 50, 50, declared_frames=(None, DeclaredFrames(100, None)),
                     compared_frames=(100, 50))
    result = _build(output, _job(allow_frame_mismatch=True))
    assert any("distorted distorted.mkv: decoded 50 frames but its container declares 100;" in n for n in result.notes)


def test_subsampled_frames_are_counted_from_the_output() -> None:
    assert _build(_output(10, 10, 4, subsample=3)).frames_scored == 4  # frames 0, 3, 6, 9
    with pytest.raises(JobFailed, match=r"scored 4 frames but both inputs have 10; refusing a partial score"):
        _build(_output(10, 10, 4))


def test_counts_that_differ_are_refused_without_frame_mismatch() -> None:
    with pytest.raises(BadInput, match="frame counts differ: reference has 10 frames, distorted 9"):
        _build(_output(10, 9, 9))


def test_the_scorers_own_pooled_values_win_and_stay_out_of_provenance() -> None:
    result = _build(_output(3, 3, 3, pooled={"m": {"mean": 1.25, "min": 0.0}}))
    assert result.metrics["m"].mean == 1.25 and result.metrics["m"].max == 2.0
    assert "pooled" not in result.provenance and "pooled_by_libvmaf" not in result.provenance
