"""The Python API (`import vmafx`): the command line's code paths from Python. A notebook-style
script generates a dataset's jobs, scores them in a batch and gets the numbers `vmafx batch` gives
on the same jobs; single pairs match `vmafx run`; errors are typed with the run's exit code;
progress is a callback; an interrupted call leaves no process or temp folder behind."""

from __future__ import annotations

import _thread
import json
import os
from pathlib import Path
from typing import Any

import pytest

import vmafx
from testkit import leftovers
from testkit.cli import run_vmafx
from testkit.dataset import CLIPS, CODECS, CRFS, Dataset, make_dataset
from testkit.media import Media
from testkit.procs import descendants


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make_dataset(tmp_path_factory.mktemp("dataset"))


def pooled(line: dict[str, Any]) -> dict[str, Any]:
    return {name: values for name, values in line["metrics"].items()}


def test_a_notebook_scores_a_generated_dataset_as_vmafx_batch_does(dataset: Dataset, tmp_path: Path) -> None:
    # --- the notebook ------------------------------------------------------------------------
    pairing = vmafx.jobs_from_listing(f"{dataset.refs}/{{clip}}.mp4",
                                      f"{dataset.encodes}/{{clip}}_{{codec}}_crf{{crf}}.mp4",
                                      job=vmafx.make_job(features=["psnr"]))
    assert pairing.problems() == [] and len(pairing.jobs) == len(CLIPS) * len(CODECS) * len(CRFS)
    batch = vmafx.run_batch(pairing.jobs, tmp_path / "api.jsonl", cache=False)
    assert batch.exit_code == 0 and batch.failed == [] and len(batch.scored) == 16
    frames = batch.scored[0].to_pandas()
    assert list(frames.index) == list(range(24)) and "psnr_y" in frames.columns
    page = vmafx.report([batch.results_file], tmp_path / "api.html", curve_by=["codec"])
    # --- the command line on the same jobs -----------------------------------------------------
    jobs = tmp_path / "api.jobs.jsonl"
    assert [json.loads(line) for line in jobs.read_text().splitlines()] == pairing.jobs
    cli = run_vmafx("batch", str(jobs), "--out", str(tmp_path / "cli.jsonl"), "--no-cache", "--no-progress")
    assert cli.code == 0, cli.stderr
    by_id = {line["id"]: line for line in map(json.loads, (tmp_path / "cli.jsonl").read_text().splitlines())}
    for one in batch.scored:
        line = by_id[one.result.job_id]
        assert one.to_dict()["metrics"] == pooled(line)
        assert one.bitrate_bps == line["distorted"]["bitrate_bps"] and one.labels == line["labels"]
        kept = (tmp_path / line["frames_file"]).read_text().splitlines()
        assert len(one.frames) == len(kept) - 1
        assert [f["vmaf"] for f in one.frames] == [float(row.split(",")[-2]) for row in kept[1:]]
    assert "Bjontegaard delta" in page.read_text()
    # a second call resumes: nothing runs again
    again = vmafx.run_batch(pairing.jobs, tmp_path / "api.jsonl", cache=False)
    assert [s.to_dict() for s in again.scored] == [s.to_dict() for s in batch.scored]


def test_score_is_vmafx_run_and_keeps_frames_provenance_alignment(media: Media, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    scored = vmafx.score(str(media.ref), str(media.dis), features=["psnr"], labels={"crf": 34},
                         progress=lambda done, total, fps: seen.append((done, total)))
    run = run_vmafx("run", str(media.ref), str(media.dis), "--feature", "psnr", "--json", "--frames",
                    str(tmp_path / "f.json"), "--no-progress")
    assert run.code == 0, run.stderr
    assert scored.to_dict()["metrics"] == run.json()["metrics"] and scored.vmaf == run.json()["metrics"]["vmaf"]["mean"]
    assert [dict(f) for f in scored.frames] == json.loads((tmp_path / "f.json").read_text())
    assert scored.labels == {"crf": 34} and scored.metrics["psnr_y"].mean > 0
    assert scored.alignment == run.json()["provenance"]["alignment"]
    assert scored.colour == run.json()["provenance"]["alignment"]["colour"]
    assert set(scored.colour) >= {"reference", "distorted"}
    assert scored.provenance["ffmpeg"] == run.json()["provenance"]["ffmpeg"]
    assert seen and seen[-1][0] > 0
    from_file = tmp_path / "job.toml"
    from_file.write_text(f'[reference]\nuri = "{media.ref}"\n[distorted]\nuri = "{media.dis}"\n'
                         '[scorer]\nname = "libvmaf"\nfeatures = ["psnr"]\n')
    assert vmafx.score(job=vmafx.load_job(from_file)).to_dict()["metrics"] == scored.to_dict()["metrics"]
    many = vmafx.score_many(str(media.ref), [str(media.dis), str(tmp_path / "missing.mp4")], features=["psnr"])
    assert isinstance(many[0], vmafx.Scored) and many[0].to_dict()["metrics"] == scored.to_dict()["metrics"]
    assert isinstance(many[1], vmafx.Failed) and many[1].error.exit_code == vmafx.ExitCode.BAD_INPUT


@pytest.mark.parametrize(("call", "kind", "code"), [
    (lambda m, t: vmafx.score(str(m.ref), str(t / "missing.mp4")), vmafx.BadInput, 2),
    (lambda m, t: vmafx.score(str(m.ref), str(m.short_dis)), vmafx.BadInput, 2),
    (lambda m, t: vmafx.score(str(m.ref), str(m.dis), alignment={"scale_filter": "fancy"}), vmafx.BadInput, 2),
    (lambda m, t: vmafx.score(str(m.ref), str(m.dis), ffmpeg=str(t / "no-ffmpeg")), vmafx.EnvironmentMissing, 3),
    (lambda m, t: vmafx.jobs_from_listing(f"{t}/{{a}}{{b}}.mp4", f"{t}/{{a}}.mp4"), vmafx.BadInput, 2),
])
def test_errors_are_typed_with_the_exit_code_of_the_command(media: Media, tmp_path: Path, call: Any, kind: type,
                                                            code: int) -> None:
    with pytest.raises(kind) as caught:
        call(media, tmp_path)
    assert isinstance(caught.value, vmafx.VmafxError) and caught.value.exit_code == code
    assert "\n" not in caught.value.message


def test_keyboard_interrupt_leaves_nothing_behind(media: Media, tmp_path: Path) -> None:
    temp_before = leftovers.temp_entries()

    sent: list[int] = []

    def interrupt(done: int, total: int | None, fps: float) -> None:
        if done > 0 and not sent:  # mid-score: what Jupyter's stop button does (SIGINT to the kernel)
            sent.append(done)
            _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        vmafx.score(str(media.ref), str(media.dis), progress=interrupt)
    assert sent and descendants(os.getpid()) == []
    assert leftovers.temp_entries() - temp_before == set()
