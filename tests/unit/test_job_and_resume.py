"""Job parsing and the results file's resume rules, in process (the CLI tests run them end to end)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from vmafx_local import plugin as local
from vmafx_rclone_http import plugin as rclone_http

from vmafx_core.batch import ResultWriter, execute, job_identity, read_jobs
from vmafx_core.errors import BadInput
from vmafx_core.job import InvalidJob, parse_job
from vmafx_core.plugins import Plugins

Register = Callable[..., Any]


def _parse(plugins: Plugins, data: dict[str, Any]) -> tuple[Any, Any]:
    def options_type_for(name: str) -> type | None:
        provided = plugins.scorers().get(name)
        return provided.item.options_type if provided else None

    return parse_job(data, "test", options_type_for, plugins.storage_option_types)


def _errors(plugins: Plugins, data: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidJob) as caught:
        _parse(plugins, data)
    return sorted(caught.value.errors)


def test_a_good_job_structures_with_its_scorer_and_storage_options(fresh_plugins: Plugins,
                                                                  register: Register) -> None:
    register(rclone_http, "rclone-http")
    job, options = _parse(fresh_plugins, {
        "reference": {"uri": "s3://b/ref.mp4"}, "distorted": {"uri": "s3://b/dis.mp4"},
        "scorer": {"name": "libvmaf", "n_subsample": 2}, "limits": {"stall_timeout": 5},
        "storage_options": {"rclone_buffer_size": "8Mi", "http_rw_timeout": 3, "remote_map": "s3=minio"}})
    assert job.reference.uri == "s3://b/ref.mp4" and job.limits.stall_timeout == 5.0
    assert options.n_subsample == 2 and job.storage_options["rclone_buffer_size"] == "8Mi"


def test_every_bad_field_is_one_line_with_its_path(fresh_plugins: Plugins, register: Register) -> None:
    register(local, "local")
    register(rclone_http, "rclone-http")
    assert _errors(fresh_plugins, {
        "reference": {"uri": ""}, "distorted": {"uri": "/d.mp4", "raw": {"width": 0}},
        "scorer": {"name": "libvmaf", "modle": "x"}, "limits": {"timeout": -1},
        "storage_options": {"rclone_bufer_size": "8Mi", "http_rw_timeout": 0}}) == [
        "job.distorted.raw.fps: required field missing",
        "job.distorted.raw.height: required field missing",
        "job.distorted.raw.pix_fmt: required field missing",
        "job.distorted.raw.width: must be a positive integer, got 0",
        "job.limits.timeout: must be a positive number, got -1",
        "job.reference.uri: must be a non-empty string, got ''",
        "job.scorer.modle: unknown field",
        "job.storage_options.http_rw_timeout: 0.0 is not a positive number of seconds",
        "job.storage_options.rclone_bufer_size: unknown storage option (the installed storage backends take: "
        "http_rw_timeout, rclone_binary, rclone_buffer_size, rclone_config, rclone_io_timeout, remote_map)",
    ]


def test_storage_options_are_unknown_when_no_installed_backend_takes_them(fresh_plugins: Plugins,
                                                                         register: Register) -> None:
    register(local, "local")  # takes no option: an rclone option means the rclone plugins are missing
    assert _errors(fresh_plugins, {"reference": {"uri": "/r.mp4"}, "distorted": {"uri": "/d.mp4"},
                                   "storage_options": {"rclone_config": "/etc/rclone.conf"}}) == [
        "job.storage_options.rclone_config: unknown storage option (the installed storage backends take: none)"]


@pytest.mark.parametrize(("extra", "error"), [
    ({}, "job.distorted: give exactly one of a distorted source, an encode or a ladder of encodes"),
    ({"distorted": {"uri": "/d.mp4"}, "encode": {"encoder": "libx264"}},
     "job.distorted: give exactly one of a distorted source, an encode or a ladder of encodes"),
    ({"ladder": []}, "job.ladder: give at least one encode"),
    ({"distorted": {"uri": "/d.mp4"}, "scorer": {"name": "nope"}},
     "job.scorer.name: no scorer named 'nope' is installed (see `vmafx plugins`)"),
])
def test_what_a_job_scores_is_exactly_one_thing(fresh_plugins: Plugins, extra: dict[str, Any], error: str) -> None:
    assert _errors(fresh_plugins, {"reference": {"uri": "/r.mp4"}, **extra}) == [error]


# ---- the results file and resume -----------------------------------------------------------------


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_resume_knows_the_last_line_of_each_id(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "status": "failed", "error": "x", "exit_code": 1},
        {"id": "b", "status": "ok", "frames_scored": 4, "metrics": {"vmaf": {"mean": 90.5}}},
        {"id": "a", "status": "ok", "frames_scored": 5},
    ]) + "\n")
    writer = ResultWriter(path)
    writer.open()
    try:
        assert {k: v.status for k, v in writer.previous.items()} == {"a": "ok", "b": "ok"}
        assert writer.previous["b"].vmaf_mean == 90.5 and writer.previous["b"].frames == 4
        assert not writer.write({"id": "a", "status": "ok"})  # done before: never a second line
        assert writer.write({"id": "c", "status": "failed", "error": "y", "exit_code": 2})
        assert not writer.write({"id": "c", "status": "ok"})  # one line per id per run
    finally:
        writer.close()
    assert [r["id"] for r in _lines(path)] == ["a", "b", "a", "c"]


def test_a_failed_job_is_written_again_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"id": "a", "status": "failed", "error": "x", "exit_code": 1}) + "\n")
    writer = ResultWriter(path)
    writer.open()
    try:
        assert writer.write({"id": "a", "status": "ok", "frames_scored": 3})
    finally:
        writer.close()
    assert [r["status"] for r in _lines(path)] == ["failed", "ok"]


def test_a_torn_last_line_is_cut_and_a_missing_newline_added(tmp_path: Path) -> None:
    torn, unterminated = tmp_path / "torn.jsonl", tmp_path / "unterminated.jsonl"
    good = json.dumps({"id": "a", "status": "ok"})
    torn.write_text(good + "\n" + '{"id": "b", "sta')
    unterminated.write_text(good)
    for path in (torn, unterminated):
        writer = ResultWriter(path)
        writer.open()
        try:
            assert list(writer.previous) == ["a"]
            assert writer.write({"id": "b", "status": "ok"})
        finally:
            writer.close()
        assert path.read_text() == good + "\n" + json.dumps({"id": "b", "status": "ok"}) + "\n"


def test_a_file_that_is_not_ours_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text("hello\n" + json.dumps({"id": "a", "status": "ok"}) + "\n")
    with pytest.raises(BadInput, match="line 1 is not a vmafx batch result"):
        ResultWriter(path).open()
    assert path.read_text().startswith("hello\n")


def test_a_job_is_known_by_its_id_or_its_content(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    first = {"reference": {"uri": "/r.mp4"}, "distorted": {"uri": "/d.mp4"}}
    jobs.write_text(json.dumps({"id": "x", **first}) + "\n\n" + json.dumps(first) + "\nnot json\n")
    entries = read_jobs(jobs)
    assert [(e.line, e.id) for e in entries][:1] == [(1, "x")]
    assert entries[1].id == job_identity(dict(reversed(list(first.items()))), "") and entries[1].line == 3
    assert entries[2].data is None and (entries[2].problem or "").startswith("not valid JSON")
    jobs.write_text(json.dumps(first) + "\n" + json.dumps(dict(reversed(list(first.items())))) + "\n")
    with pytest.raises(BadInput, match="line 2 repeats the job of line 1"):
        read_jobs(jobs)


def test_a_cancelled_batch_job_stops_through_run_job(media: Any) -> None:
    """The local runner's cancellation path: the job stops itself and says so, nothing is scored."""
    outcome = execute({"reference": {"uri": str(media.ref)}, "distorted": {"uri": str(media.dis)}},
                      origin="line 1", threads_per_job=1, cancelled=lambda: True)
    assert outcome["status"] == "failed" and outcome["exit_code"] == 130
    assert "cancelled" in outcome["error"]
