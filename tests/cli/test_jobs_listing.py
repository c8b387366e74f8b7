"""`vmafx jobs`: a jobs file from a listing of the dataset through name templates. It pairs what
pairs, says every file that does not (one line each) before anything is written, refuses a bad
template and an ambiguous name, and reads raw geometry from names (BVI-DVC's layout), scored to
the bare libvmaf truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.dataset import CLIPS, CODECS, CRFS, Dataset, make_dataset
from testkit.media import bare_libvmaf, ffmpeg_run

REF = "{root}/refs/{{clip}}.mp4"
DIS = "{root}/encodes/{{clip}}_{{codec}}_crf{{crf}}.mp4"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make_dataset(tmp_path_factory.mktemp("dataset"))


def templates(root: Path) -> tuple[str, str]:
    return REF.format(root=root), DIS.format(root=root)


def test_pairs_a_dataset_and_says_every_file_that_does_not_pair(dataset: Dataset, tmp_path: Path) -> None:
    root = tmp_path / "set"
    shutil.copytree(dataset.folder, root)
    (root / "encodes" / "lake_x264_crf30.mp4").write_bytes(b"x")  # no lake reference
    (root / "refs" / "forest.mp4").write_bytes(b"x")  # no forest encode
    (root / "encodes" / "notes.txt").write_text("x")  # neither template's
    jobs = tmp_path / "jobs.jsonl"
    run = run_vmafx("jobs", *templates(root), "-o", str(jobs))
    assert run.code == 0, run.stderr
    assert run.stderr.splitlines() == [
        f"vmafx: no reference: {root}/encodes/lake_x264_crf30.mp4 (looked for {root}/refs/lake.mp4)",
        f"vmafx: no distorted: {root}/refs/forest.mp4",
        "vmafx: 16 jobs; 1 distorted without a reference, 1 references without a distorted, 0 ambiguous, "
        "1 other files",
        f"vmafx: wrote 16 jobs to {jobs}"]
    lines = [json.loads(line) for line in jobs.read_text().splitlines()]
    expected = {(f"{root}/refs/{clip}.mp4", f"{root}/encodes/{clip}_{codec}_crf{crf}.mp4",
                 (("clip", clip), ("codec", codec), ("crf", str(crf)))) for clip in CLIPS for codec in CODECS
                for crf in CRFS}
    assert {(j["reference"]["uri"], j["distorted"]["uri"], tuple(j["labels"].items())) for j in lines} == expected
    assert len({j["id"] for j in lines}) == 16
    # --strict refuses the same listing, writing nothing
    strict = run_vmafx("jobs", *templates(root), "-o", str(tmp_path / "strict.jsonl"), "--strict")
    assert strict.code == 2 and not (tmp_path / "strict.jsonl").exists()
    assert strict.stderr.splitlines()[-1] == ("vmafx: error: --strict: 2 file(s) did not pair (listed above); "
                                              "nothing written")


def test_dry_run_shows_the_pairing_and_writes_nothing(dataset: Dataset, tmp_path: Path) -> None:
    base = tmp_path / "base.toml"
    base.write_text('[scorer]\nname = "libvmaf"\nn_subsample = 2\n[labels]\nset = "demo"\n')
    run = run_vmafx("jobs", *templates(dataset.folder), "--dry-run", "--job", str(base), "-o",
                    str(tmp_path / "jobs.jsonl"))
    assert run.code == 0, run.stderr
    rows = run.stdout.splitlines()
    assert rows[0].split() == ["reference", "distorted", "labels"] and len(rows) == 17
    assert rows[1].split() == [f"{dataset.folder}/refs/bars.mp4", f"{dataset.folder}/encodes/bars_x264_crf22.mp4",
                               "set=demo", "clip=bars", "codec=x264", "crf=22"]
    assert not (tmp_path / "jobs.jsonl").exists()
    out = run_vmafx("jobs", *templates(dataset.folder), "--job", str(base), "--label", "by=test")
    first = json.loads(out.stdout.splitlines()[0])
    assert first["scorer"] == {"name": "libvmaf", "n_subsample": 2}
    assert first["labels"] == {"set": "demo", "by": "test", "clip": "bars", "codec": "x264", "crf": "22"}


@pytest.mark.parametrize(("reference", "distorted", "says"), [
    ("ROOT/refs/{clip.mp4", "ROOT/encodes/{clip}_{codec}_crf{crf}.mp4", "unbalanced braces"),
    ("ROOT/refs/bars.mp4", "ROOT/encodes/{clip}_{codec}_crf{crf}.mp4", "has no {field}"),
    ("ROOT/refs/{clip}.mp4", "ROOT/encodes/{clip}{codec}.mp4", "two fields side by side"),
    ("ROOT/refs/{clip}.mp4", "ROOT/encodes/{clip}_{clip}.mp4", "the field {clip} appears twice"),
    ("ROOT/refs/{clip}.mp4", "ROOT/encodes/{clip}_{2pass}.mp4", "{2pass} is not a field name"),
    ("{clip}.mp4", "ROOT/encodes/{clip}_{codec}_crf{crf}.mp4", "give the folder to list"),
    ("ROOT/refs/{clip}.mp4", "ROOT/encodes/{name}_{codec}_crf{crf}.mp4",
     "reference template field {clip} is not in the distorted template"),
    ("ROOT/refs/{clip}.yuv", "ROOT/encodes/{clip}_{codec}_crf{crf}.mp4", "raw video needs its geometry"),
])
def test_a_bad_template_is_one_line_and_exit_2(dataset: Dataset, tmp_path: Path, reference: str, distorted: str,
                                               says: str) -> None:
    out = tmp_path / "jobs.jsonl"
    run = run_vmafx("jobs", reference.replace("ROOT", str(dataset.folder)),
                    distorted.replace("ROOT", str(dataset.folder)), "-o", str(out))
    assert run.code == 2 and len(run.stderr.strip().splitlines()) == 1 and says in run.stderr, run.stderr
    assert not out.exists()


def test_an_ambiguous_name_is_refused_one_line_each(dataset: Dataset, tmp_path: Path) -> None:
    run = run_vmafx("jobs", f"{dataset.folder}/refs/{{clip}}.mp4", f"{dataset.folder}/encodes/{{clip}}_{{codec}}.mp4",
                    "-o", str(tmp_path / "jobs.jsonl"))
    assert run.code == 2 and not (tmp_path / "jobs.jsonl").exists()
    lines = run.stderr.splitlines()
    assert sum(line.startswith("vmafx: ambiguous: ") for line in lines) == 16
    assert (f"vmafx: ambiguous: {dataset.folder}/encodes/bars_x264_crf22.mp4: the template reads it as "
            "clip=bars, codec=x264_crf22 or clip=bars_x264, codec=crf22") in lines
    assert lines[-1].startswith("vmafx: error: 16 file name(s) read in more than one way")


def raw(path: Path, source: str, pix_fmt: str, *extra: str) -> Path:
    ffmpeg_run("-f", "lavfi", "-i", f"{source}=size=176x144:rate=25:duration=0.4", *extra, "-pix_fmt", pix_fmt,
               "-f", "rawvideo", str(path))
    return path


def test_raw_geometry_from_names_bvi_dvc_layout(tmp_path: Path) -> None:
    orig, dec = tmp_path / "orig", tmp_path / "dec"
    orig.mkdir()
    dec.mkdir()
    ref = raw(orig / "Birds_176x144_25fps_10bit_420.yuv", "testsrc2", "yuv420p10le")
    dis = raw(dec / "Birds_176x144_25fps_10bit_420_qp37.yuv", "testsrc2", "yuv420p10le", "-vf", "gblur=sigma=2")
    jobs, results = tmp_path / "jobs.jsonl", tmp_path / "results.jsonl"
    made = run_vmafx("jobs", f"{orig}/{{name}}_{{w}}x{{h}}_{{fps}}fps_{{bits}}bit_{{chroma}}.yuv",
                     f"{dec}/{{name}}_{{w}}x{{h}}_{{fps}}fps_{{bits}}bit_{{chroma}}_qp{{qp}}.yuv", "-o", str(jobs))
    assert made.code == 0, made.stderr
    [job] = [json.loads(line) for line in jobs.read_text().splitlines()]
    geometry = {"width": 176, "height": 144, "pix_fmt": "yuv420p10le", "fps": 25.0}
    assert job["reference"] == {"uri": str(ref), "raw": geometry}
    assert job["distorted"] == {"uri": str(dis), "raw": geometry}
    assert job["labels"] == {"name": "Birds", "w": "176", "h": "144", "fps": "25", "bits": "10", "chroma": "420",
                             "qp": "37"}
    assert run_vmafx("batch", str(jobs), "--out", str(results), "--no-progress").code == 0
    [line] = [json.loads(text) for text in results.read_text().splitlines()]
    raw_args = ["-f", "rawvideo", "-video_size", "176x144", "-pixel_format", "yuv420p10le", "-framerate", "25", "-i"]
    truth: dict[str, Any] = bare_libvmaf([*raw_args, str(ref)], [*raw_args, str(dis)], tmp_path / "bare.json",
                                         width=176, height=144)
    assert line["metrics"]["vmaf"]["mean"] == pytest.approx(truth["pooled_metrics"]["vmaf"]["mean"], abs=1e-6)
    assert line["frames_scored"] == 10
