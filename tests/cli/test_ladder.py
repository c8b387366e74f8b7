"""An encode ladder: the reference read and decoded once for every rung, each rung's values equal
to its own run's and to a bare ffmpeg libvmaf run on the same encode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.media import Media, bare_libvmaf, clip_720p, ffmpeg_run
from testkit.procs import alive, children, cmdline
from vmafx_core.encode import encoder_args
from vmafx_core.job import Encode

#: long lookaheads: each encoder holds many frames before its first packet, while the raw
#: reference frames wait in the shared muxer
RUNGS = [
    {"encoder": "libx264", "crf": 20, "preset": "fast", "extra_args": ["-x264-params", "rc-lookahead=60"]},
    {"encoder": "libx264", "crf": 38, "size": "160x120"},
    {"encoder": "libsvtav1", "crf": 45, "preset": "12", "extra_args": ["-svtav1-params", "lookahead=60"]},
    {"encoder": "libx265", "crf": 30, "preset": "ultrafast", "extra_args": ["-x265-params", "log-level=error"]},
]


def _toml_value(value: Any) -> str:
    return json.dumps(value)


def _ladder_job(path: Path, ref: Path, rungs: list[dict[str, Any]], job_id: str = "lad") -> Path:
    text = f'id = "{job_id}"\n[reference]\nuri = {json.dumps(str(ref))}\n[scorer]\nname = "libvmaf"\n' \
           'features = ["psnr"]\n'
    for rung in rungs:
        text += "[[ladder]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in rung.items())
    path.write_text(text)
    return path


def _run_ladder(job: Path, tmp_path: Path, tag: str, env: dict[str, str] | None = None,
                *extra: str) -> tuple[Any, dict[str, Any], list[list[dict[str, Any]]]]:
    frames = tmp_path / f"{tag}-frames-{{rung}}.json"
    out = run_vmafx("run", "--job", str(job), "--json", "--frames", str(frames), *extra, env=env)
    data = out.json() if out.stdout else {}
    per_frame = [json.loads(Path(str(frames).replace("{rung}", str(i))).read_text())
                 if Path(str(frames).replace("{rung}", str(i))).exists() else []
                 for i in range(len(data.get("rungs", [])))]
    return out, data, per_frame


def _same(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    assert set(a) == set(b), what
    for metric, pooled in a.items():
        for stat, value in pooled.items():
            assert b[metric][stat] == pytest.approx(value, abs=1e-6), (what, metric, stat)


def test_shared_ladder_equals_each_rung_alone_and_bare_libvmaf(media: Media, tmp_path: Path) -> None:
    job = _ladder_job(tmp_path / "ladder.toml", media.ref, RUNGS)
    saves = str(tmp_path / "enc-{rung}.nut")
    shared, data, shared_frames = _run_ladder(job, tmp_path, "shared", None, "--save-encode", saves)
    assert shared.code == 0, shared.stderr
    per_rung, alone_data, alone_frames = _run_ladder(job, tmp_path, "alone", {"VMAFX_LADDER": "per-rung"})
    assert per_rung.code == 0, per_rung.stderr
    assert data["schema"] == "vmafx.ladder" and len(data["rungs"]) == len(RUNGS)
    for index, (rung, grouped, alone) in enumerate(zip(RUNGS, data["rungs"], alone_data["rungs"], strict=True)):
        assert grouped["job_id"] == alone["job_id"] == f"lad/{index}"
        assert grouped["provenance"]["ladder"] == {"mode": "shared", "rungs": len(RUNGS), "index": index,
                                                   "shared_by": len(RUNGS), "reference_decoded_once": True}
        assert any("decoded once for the 4 rungs" in n for n in grouped["notes"])
        assert alone["provenance"]["ladder"]["mode"] == "per-rung"
        assert grouped["frames_scored"] == alone["frames_scored"] == media.frames
        assert grouped["reference"]["frames"] == grouped["distorted"]["frames"] == media.frames
        assert grouped["provenance"]["filter_graph"] == alone["provenance"]["filter_graph"]
        _same(alone["metrics"], grouped["metrics"], f"rung {index} against its own run")
        assert len(shared_frames[index]) == len(alone_frames[index]) == media.frames
        for mine, theirs in zip(shared_frames[index], alone_frames[index], strict=True):
            assert mine.keys() == theirs.keys()
            for key, value in theirs.items():
                assert mine[key] == pytest.approx(value, abs=1e-6), (index, key)
        # the rung's saved stream: its byte count, and it scores as the stream did
        saved = Path(saves.replace("{rung}", str(index)))
        assert grouped["encode"]["encoded_bytes"] == saved.stat().st_size > 0
        assert grouped["encode"]["saved_to"] == str(saved)
        # ground truth: the same encode made by a plain ffmpeg into a file, scored by a bare libvmaf
        encoded = tmp_path / f"bare-{index}.nut"
        ffmpeg_run("-i", str(media.ref), *encoder_args(Encode(**{**rung, "extra_args": tuple(
            rung.get("extra_args", ()))})), "-f", "nut", str(encoded))
        bare = bare_libvmaf(["-i", str(media.ref)], ["-i", str(encoded)], tmp_path / f"bare-{index}.json",
                            width=media.width, height=media.height)
        assert len(bare["frames"]) == media.frames
        for mine, theirs in zip(shared_frames[index], bare["frames"], strict=True):
            assert mine["frame"] == theirs["frameNum"]
            assert mine["vmaf"] == pytest.approx(theirs["metrics"]["vmaf"], abs=1e-6), (index, mine["frame"])
        assert grouped["metrics"]["vmaf"]["mean"] == pytest.approx(bare["pooled_metrics"]["vmaf"]["mean"], abs=1e-6)
    assert data["rungs"][0]["metrics"]["vmaf"]["mean"] > data["rungs"][1]["metrics"]["vmaf"]["mean"]


def test_a_rung_whose_encoder_fails_fails_alone(media: Media, tmp_path: Path) -> None:
    rungs = [{"encoder": "libx264", "crf": 30}, {"encoder": "libx264", "crf": 30, "preset": "no-such-preset"},
             {"encoder": "libx264", "crf": 40, "size": "160x120"}]
    job = _ladder_job(tmp_path / "bad.toml", media.ref, rungs)
    out, data, frames = _run_ladder(job, tmp_path, "bad")
    own = run_vmafx("run", str(media.ref), "--encode", "libx264", "--crf", "30", "--preset", "no-such-preset")
    assert own.code == 1
    own_line = own.stderr.strip().splitlines()[0].removeprefix("vmafx: error: ")
    assert out.code == 1, out.stderr
    good, bad, small = data["rungs"]
    assert bad == {"schema": "vmafx.error", "job_id": "lad/1", "encode": bad["encode"],
                   "distorted": "encode:libx264,crf=30,preset=no-such-preset", "error": own_line, "exit_code": 1}
    assert f"vmafx: error: rung lad/1 (encode:libx264,crf=30,preset=no-such-preset): {own_line}" in out.stderr
    assert "Traceback" not in out.stderr
    # the shared pass failed as a whole: the others were encoded and scored on their own, and say so
    for rung in (good, small):
        assert rung["schema"] == "vmafx.result" and rung["provenance"]["ladder"]["mode"] == "per-rung"
        assert rung["provenance"]["ladder"]["reason"].startswith("the shared pass failed: ")
    alone = run_vmafx("run", str(media.ref), "--encode", "libx264", "--crf", "30", "--feature", "psnr", "--json")
    _same(alone.json()["metrics"], good["metrics"], "the first rung")
    assert frames[0] and not frames[1] and frames[2]


def test_a_rung_with_an_unknown_encoder_fails_alone_the_others_share(media: Media, tmp_path: Path) -> None:
    rungs = [{"encoder": "libx264", "crf": 30}, {"encoder": "libx999"}, {"encoder": "libx264", "crf": 40}]
    saved = tmp_path / "ladder.json"
    out, data, _ = _run_ladder(_ladder_job(tmp_path / "unknown.toml", media.ref, rungs), tmp_path, "unknown",
                               None, "-o", str(saved))
    assert out.code == 2, out.stderr
    # the report charts the rungs that were scored and lists the failed one
    report = run_vmafx("report", str(saved), "-o", str(tmp_path / "r.html"))
    assert report.code == 0, report.stderr
    assert "libx999" in (tmp_path / "r.html").read_text()
    assert data["rungs"][1]["schema"] == "vmafx.error" and data["rungs"][1]["exit_code"] == 2
    assert data["rungs"][1]["error"].startswith("unknown encoder 'libx999'; this ffmpeg has: ")
    for index in (0, 2):
        assert data["rungs"][index]["provenance"]["ladder"]["mode"] == "shared"
        assert data["rungs"][index]["provenance"]["ladder"]["shared_by"] == 2


def test_ladder_templates_are_checked_before_anything_runs(media: Media, tmp_path: Path) -> None:
    job = _ladder_job(tmp_path / "t.toml", media.ref, RUNGS[:2])
    for flag, value in (("--save-encode", str(tmp_path / "e.nut")), ("--frames", str(tmp_path / "f.json"))):
        out = run_vmafx("run", "--job", str(job), flag, value)
        assert out.code == 2 and out.stdout == ""
        assert out.stderr.startswith(f"vmafx: error: {flag} {value}: a ladder ") and "{rung}" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.toml"]


def test_interrupted_shared_ladder_leaves_nothing(tmp_path: Path) -> None:
    clip = clip_720p(tmp_path / "long.mp4", 40)
    job = _ladder_job(tmp_path / "long.toml", clip, [{"encoder": "libx264", "crf": c, "preset": "veryslow"}
                                                      for c in (24, 30, 36)])
    before = set(os.listdir(tempfile.gettempdir()))
    saves = tmp_path / "enc-{rung}.nut"
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", "--job", str(job), "--json",
                             "--save-encode", str(saves)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started: set[int] = set()
    deadline = time.monotonic() + 60
    while len(started) < 2 and time.monotonic() < deadline:  # the shared encoder and the scorer
        for pid in children(proc.pid):
            argv = cmdline(pid).split(b"\0")
            if b"tee" in argv or b"libvmaf" in b" ".join(argv):
                started.add(pid)
        time.sleep(0.05)
    assert len(started) == 2, "the shared pass never started"
    time.sleep(1.0)
    kids = children(proc.pid)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stdout == "" and "interrupted" in stderr and "Traceback" not in stderr
    assert not any(alive(pid) for pid in kids)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "long.toml"]  # no saved or part file
    assert not [n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("vmafx-") and
                f"-{proc.pid}-" in n]


def test_a_rung_whose_saved_copy_fails_fails_alone(media: Media, tmp_path: Path) -> None:
    """A real write error mid-stream (EFBIG: the vmafx process may write files of 64 KiB at most):
    the big rung's copy fails, the small rung's is saved, and both were encoded in the shared pass."""
    import resource

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    rungs = [{"encoder": "libx264", "crf": 0}, {"encoder": "libx264", "crf": 45, "size": "160x120"}]
    job = _ladder_job(tmp_path / "save.toml", media.ref, rungs)
    saves = tmp_path / "out" / "enc-{rung}.nut"
    saves.parent.mkdir()
    proc = subprocess.run([sys.executable, "-m", "vmafx_core", "run", "--job", str(job), "--json",
                           "--save-encode", str(saves)], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, preexec_fn=limit_file_size)
    assert proc.returncode == 1, proc.stderr
    big, small = json.loads(proc.stdout)["rungs"]
    big_path = str(saves).replace("{rung}", "0")
    assert big["schema"] == "vmafx.error"
    assert big["error"] == f"--save-encode {big_path}: writing failed (File too large)"
    assert small["provenance"]["ladder"]["mode"] == "shared"
    assert sorted(p.name for p in saves.parent.iterdir()) == ["enc-1.nut"]  # no part file of the big one
    assert small["encode"]["encoded_bytes"] == (saves.parent / "enc-1.nut").stat().st_size
