"""`vmafx run REF DIS1 DIS2 ...`: one pass over the reference, each result equal to its own run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testkit.cli import run_vmafx
from testkit.media import bare_libvmaf, ffmpeg_run


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ladder")
    files = {name: folder / f"{name}.mkv" for name in ("ref", "crf30", "small", "crf45", "short")}
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2", "-c:v", "libx264", "-crf", "8",
               str(files["ref"]))
    ffmpeg_run("-i", str(files["ref"]), "-c:v", "libx264", "-crf", "30", str(files["crf30"]))
    ffmpeg_run("-i", str(files["ref"]), "-vf", "scale=160:90", "-c:v", "libx264", "-crf", "28", str(files["small"]))
    ffmpeg_run("-i", str(files["ref"]), "-c:v", "libx264", "-crf", "45", str(files["crf45"]))
    ffmpeg_run("-i", str(files["ref"]), "-frames:v", "30", "-c:v", "libx264", str(files["short"]))
    return files


def _separate(ref: Path, dis: Path, tmp_path: Path) -> tuple[dict, list[dict]]:
    frames = tmp_path / f"{dis.stem}-frames.json"
    done = run_vmafx("run", str(ref), str(dis), "--json", "--frames", str(frames), "--feature", "psnr")
    assert done.code == 0, done.stderr
    return done.json(), json.loads(frames.read_text())




def test_every_value_equals_its_separate_run(ladder: dict[str, Path], tmp_path: Path) -> None:
    names = ["crf30", "small", "crf45"]
    out = tmp_path / "all.json"
    done = run_vmafx("run", str(ladder["ref"]), *(str(ladder[n]) for n in names), "--json", "--feature", "psnr",
                     "-o", str(out))
    assert done.code == 0, done.stderr
    results = done.json()
    assert json.loads(out.read_text()) == results
    assert [r["distorted"]["uri"] for r in results] == [str(ladder[n]) for n in names]
    for index, (name, grouped) in enumerate(zip(names, results, strict=True)):
        # scored in the one pass, the reference decoded once for all three
        assert grouped["provenance"]["group"] == {"size": 3, "index": index, "reference_decoded_once": True}
        alone, alone_frames = _separate(ladder["ref"], ladder[name], tmp_path)
        assert grouped["frames_scored"] == alone["frames_scored"] == 50
        assert set(grouped["metrics"]) == set(alone["metrics"])
        for metric, pooled in alone["metrics"].items():
            for stat, value in pooled.items():
                assert grouped["metrics"][metric][stat] == pytest.approx(value, abs=1e-6), (name, metric, stat)
        assert grouped["provenance"]["filter_graph"] == alone["provenance"]["filter_graph"]
        assert grouped["reference"]["frames"] == grouped["distorted"]["frames"] == 50
    # per frame too: the group's frames through a job file with a list, against the separate runs
    job = tmp_path / "job.toml"
    job.write_text(f'distorted = [{", ".join(json.dumps(str(ladder[n])) for n in names)}]\n'
                   f'[reference]\nuri = {json.dumps(str(ladder["ref"]))}\n'
                   '[scorer]\nname = "libvmaf"\nfeatures = ["psnr"]\n')
    from_file = run_vmafx("run", "--job", str(job), "--json")
    assert from_file.code == 0, from_file.stderr
    assert [r["metrics"] for r in from_file.json()] == [r["metrics"] for r in results]


def test_grouped_per_frame_values_equal_separate_runs(ladder: dict[str, Path], tmp_path: Path) -> None:
    from vmafx_core.group import run_group
    from vmafx_core.job import parse_job
    from vmafx_core.plugins import Plugins

    plugins = Plugins()
    names = ["crf30", "small"]
    jobs = []
    options = None
    for name in names:
        job, options = parse_job({"reference": {"uri": str(ladder["ref"])}, "distorted": {"uri": str(ladder[name])}},
                                 "test", lambda n: plugins.scorers()[n].item.options_type)
        jobs.append(job)
    outcomes = run_group(jobs, options, plugins)
    for name, outcome in zip(names, outcomes, strict=True):
        assert not isinstance(outcome, Exception), outcome
        result, frames = outcome
        assert result.provenance["group"]["size"] == 2
        _, alone = _separate(ladder["ref"], ladder[name], tmp_path)
        assert len(frames) == len(alone)
        for got, want in zip(frames, alone, strict=True):
            assert got["frame"] == want["frame"]
            assert got["vmaf"] == pytest.approx(want["vmaf"], abs=1e-6)
        # and the ground truth: a bare ffmpeg libvmaf run of the pair
        bare = bare_libvmaf(["-i", str(ladder["ref"])], ["-i", str(ladder[name])], tmp_path / f"{name}-bare.json",
                            width=320, height=180)
        assert [f["vmaf"] for f in frames] == pytest.approx([f["metrics"]["vmaf"] for f in bare["frames"]], abs=1e-6)
        assert result.metrics["vmaf"].mean == pytest.approx(bare["pooled_metrics"]["vmaf"]["mean"], abs=1e-6)


def test_a_failing_distorted_fails_alone(ladder: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "missing.mkv"
    cut = tmp_path / "cut.mkv"
    data = ladder["crf30"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    done = run_vmafx("run", str(ladder["ref"]), str(ladder["crf30"]), str(missing), str(ladder["short"]), str(cut),
                     str(ladder["small"]), "--json")
    assert done.code == 2, done.stderr  # the first failure's code: a missing input is bad input
    assert "Traceback" not in done.stderr
    results = done.json()
    assert [r["schema"] for r in results] == ["vmafx.result", "vmafx.error", "vmafx.error", "vmafx.error",
                                              "vmafx.result"]
    # each failure carries its own run's error and exit code
    for row, path in ((results[1], missing), (results[2], ladder["short"]), (results[3], cut)):
        alone = run_vmafx("run", str(ladder["ref"]), str(path), "--json")
        assert alone.code == row["exit_code"] and alone.code != 0
        assert f"vmafx: error: {row['error']}" in alone.stderr
    assert "no such file" in results[1]["error"]
    assert "frame counts differ" in results[2]["error"]
    # the others' results are kept, equal to their own runs
    for row, name in ((results[0], "crf30"), (results[4], "small")):
        alone, _ = _separate(ladder["ref"], ladder[name], tmp_path)
        assert row["metrics"]["vmaf"] == pytest.approx(alone["metrics"]["vmaf"], abs=1e-6)


def test_several_distorted_refuse_what_takes_one(ladder: dict[str, Path], tmp_path: Path) -> None:
    done = run_vmafx("run", str(ladder["ref"]), str(ladder["crf30"]), str(ladder["small"]),
                     "--frames", str(tmp_path / "f.csv"))
    assert done.code == 2 and "--frames take one distorted" in done.stderr


def test_several_distorted_with_the_cache(ladder: dict[str, Path], tmp_path: Path) -> None:
    env = {"VMAFX_CACHE_DIR": str(tmp_path / "cache")}
    argv = ["run", str(ladder["ref"]), str(ladder["crf30"]), str(ladder["small"]), "--cache", "--json"]
    first = run_vmafx(*argv, env=env)
    assert first.code == 0, first.stderr
    assert [r["cache"]["hit"] for r in first.json()] == [False, False]
    # one of them alone is answered from the group's entry, and the group from both entries
    alone = run_vmafx("run", str(ladder["ref"]), str(ladder["small"]), "--cache", "--json", env=env)
    assert alone.code == 0 and alone.json()["cache"]["hit"] is True
    assert alone.json()["metrics"] == first.json()[1]["metrics"]
    again = run_vmafx(*argv, env=env)
    assert again.code == 0, again.stderr
    assert [r["cache"]["hit"] for r in again.json()] == [True, True]
    assert [r["metrics"] for r in again.json()] == [r["metrics"] for r in first.json()]
