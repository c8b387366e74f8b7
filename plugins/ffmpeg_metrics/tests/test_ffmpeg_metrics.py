"""The ffmpeg-metrics scorer against bare ffmpeg runs of each filter, with the frames paired by hand.

Ground truth: both inputs decoded to raw YUV first (so no container or time base is involved),
then each filter alone on raw against raw, its per-frame values from `metadata=print` and its
pooled value from the line it prints at the end.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vmafx_core.ffmpeg import find_ffmpeg

W, H, RATE, FRAMES = 160, 90, "30000/1001", 30
FILTERS = ("xpsnr", "psnr", "ssim", "vif", "msad")
#: the metadata keys of each filter and vmafx's names for them
KEYS = {
    "xpsnr": {"lavfi.xpsnr.xpsnr.y": "xpsnr_y", "lavfi.xpsnr.xpsnr.u": "xpsnr_u", "lavfi.xpsnr.xpsnr.v": "xpsnr_v"},
    "psnr": {"lavfi.psnr.psnr.y": "psnr_y", "lavfi.psnr.psnr.u": "psnr_u", "lavfi.psnr.psnr.v": "psnr_v",
             "lavfi.psnr.psnr_avg": "psnr"},
    "ssim": {"lavfi.ssim.Y": "ssim_y", "lavfi.ssim.U": "ssim_u", "lavfi.ssim.V": "ssim_v", "lavfi.ssim.All": "ssim"},
    "vif": {f"lavfi.vif.scale.{i}": f"vif_scale{i}" for i in range(4)},
    "msad": {"lavfi.msad.msad.Y": "msad_y", "lavfi.msad.msad.U": "msad_u", "lavfi.msad.msad.V": "msad_v",
             "lavfi.msad.msad_avg": "msad"},
}


def _ffmpeg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-y", *args], check=True,
                          capture_output=True, text=True)


def _vmafx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmafx_core", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 29.97 fps reference in MP4 (time base 1/30000) and a noisier encode of it in Matroska (1 ms),
    and both decoded to raw YUV: the pairing by hand."""
    d = tmp_path_factory.mktemp("ffmpeg-metrics")
    ref, dis = d / "ref.mp4", d / "dis.mkv"
    _ffmpeg("-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate={RATE}", "-frames:v", str(FRAMES),
            "-c:v", "libx264", "-crf", "14", "-pix_fmt", "yuv420p", str(ref))
    _ffmpeg("-v", "error", "-i", str(ref), "-vf", "noise=alls=12:allf=t", "-c:v", "libx264", "-crf", "32",
            str(dis))
    out = {"ref": ref, "dis": dis, "ref_yuv": d / "ref.yuv", "dis_yuv": d / "dis.yuv", "dir": d}
    for src, raw in ((ref, out["ref_yuv"]), (dis, out["dis_yuv"])):
        _ffmpeg("-v", "error", "-i", str(src), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(raw))
    return out


def _bare(pair: dict[str, Path], name: str) -> tuple[list[dict[str, float]], str]:
    """One filter alone on the raw frames (distorted as main, reference second): per frame and stderr."""
    log = pair["dir"] / f"bare_{name}.txt"
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{W}x{H}", "-r", RATE]
    proc = _ffmpeg("-v", "info", "-nostats", *raw, "-i", str(pair["dis_yuv"]), *raw, "-i", str(pair["ref_yuv"]),
                   "-lavfi", f"[0:v][1:v]{name},metadata=mode=print:file={log}", "-f", "null", "-")
    frames: list[dict[str, float]] = []
    for line in log.read_text().splitlines():
        if line.startswith("frame:"):
            frames.append({})
        else:
            key, _, value = line.partition("=")
            if key in KEYS[name]:
                frames[-1][KEYS[name][key]] = float(value)
    return frames, proc.stderr


def _bare_pooled(name: str, stderr: str) -> dict[str, float]:
    """The pooled values the bare filter printed."""
    num = r"([\d.]+)"
    if name == "vif":
        return {f"vif_scale{s}": float(v) for s, v in re.findall(rf"VIF scale=(\d) average:{num}", stderr)}
    pattern = {"xpsnr": rf"XPSNR\s+y:\s*{num}\s+u:\s*{num}\s+v:\s*{num}",
               "psnr": rf"PSNR y:{num} u:{num} v:{num} average:{num}",
               "ssim": rf"SSIM Y:{num} \S+ U:{num} \S+ V:{num} \S+ All:{num}",
               "msad": rf"msad Y:{num} U:{num} V:{num} average:{num}"}[name]
    m = re.search(pattern, stderr)
    assert m, stderr
    names = {"xpsnr": ("xpsnr_y", "xpsnr_u", "xpsnr_v"), "psnr": ("psnr_y", "psnr_u", "psnr_v", "psnr"),
             "ssim": ("ssim_y", "ssim_u", "ssim_v", "ssim"), "msad": ("msad_y", "msad_u", "msad_v", "msad")}[name]
    return {k: float(v) for k, v in zip(names, m.groups(), strict=True)}


def _xpsnr_420(y: float, u: float, v: float) -> float:
    """XPSNR of the three planes of 4:2:0 video, weighted by their sample counts (4:1:1)."""
    return -10 * math.log10((4 * 10 ** (-y / 10) + 10 ** (-u / 10) + 10 ** (-v / 10)) / 6)


def test_every_metric_equals_its_bare_filter_mp4_against_mkv(pair: dict[str, Path], tmp_path: Path) -> None:
    frames_file = tmp_path / "frames.json"
    out = _vmafx("run", str(pair["ref"]), str(pair["dis"]), "--scorer", "ffmpeg-metrics", "--json",
                 "--frames", str(frames_file))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    rows = json.loads(frames_file.read_text())
    assert result["scorer"] == "ffmpeg-metrics" and result["frames_scored"] == FRAMES == len(rows)
    assert result["reference"]["frames"] == result["distorted"]["frames"] == FRAMES
    assert [r["frame"] for r in rows] == list(range(FRAMES))
    pooled_by_ffmpeg = result["provenance"]["pooled_by_ffmpeg"]
    for name in FILTERS:
        bare, stderr = _bare(pair, name)
        assert len(bare) == FRAMES
        for metric in bare[0]:
            per_frame = [r[metric] for r in rows]
            assert per_frame == [f[metric] for f in bare], (name, metric)
            assert result["metrics"][metric]["mean"] == pytest.approx(statistics.fmean(per_frame), abs=1e-12)
            assert result["metrics"][metric]["min"] == min(f[metric] for f in bare)
        for metric, value in _bare_pooled(name, stderr).items():
            assert pooled_by_ffmpeg[metric] == value, (name, metric)
    # the combined XPSNR: the planes' values weighted 4:1:1, frame by frame and pooled
    expected = [_xpsnr_420(r["xpsnr_y"], r["xpsnr_u"], r["xpsnr_v"]) for r in rows]
    assert [r["xpsnr"] for r in rows] == pytest.approx(expected, abs=1e-9)
    assert pooled_by_ffmpeg["xpsnr"] == pytest.approx(
        _xpsnr_420(pooled_by_ffmpeg["xpsnr_y"], pooled_by_ffmpeg["xpsnr_u"], pooled_by_ffmpeg["xpsnr_v"]))
    # a real, degraded encode: not a comparison of a file with itself
    assert 20 < result["metrics"]["psnr_y"]["mean"] < 45 and 0.5 < result["metrics"]["ssim"]["mean"] < 0.999
    assert "settb=1001/30000,setpts=N" in result["provenance"]["filter_graph"]


def test_several_distorted_share_one_pass_each_equal_to_its_bare_filters(pair: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    """`vmafx run REF D1 D2 --scorer ffmpeg-metrics`: the reference decoded once (`score_shared`), each
    pair's values, per frame and as ffmpeg pooled them, those of the bare filters on its raw frames."""
    dis2, dis2_yuv = tmp_path / "dis2.mkv", tmp_path / "dis2.yuv"
    _ffmpeg("-v", "error", "-i", str(pair["ref"]), "-vf", "noise=alls=30:allf=t", "-c:v", "libx264", "-crf", "38",
            str(dis2))
    _ffmpeg("-v", "error", "-i", str(dis2), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(dis2_yuv))
    out = _vmafx("run", str(pair["ref"]), str(pair["dis"]), str(dis2), "--scorer", "ffmpeg-metrics", "--json")
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    truths = [pair, {**pair, "dis_yuv": dis2_yuv, "dir": tmp_path}]
    for index, (result, truth) in enumerate(zip(results, truths, strict=True)):
        assert result["provenance"]["group"] == {"size": 2, "index": index, "reference_decoded_once": True}
        assert result["frames_scored"] == FRAMES
        for name in ("psnr", "ssim", "msad"):
            bare, stderr = _bare(truth, name)
            for metric in bare[0]:
                assert result["metrics"][metric]["min"] == min(f[metric] for f in bare), (index, metric)
                assert result["metrics"][metric]["mean"] == pytest.approx(
                    statistics.fmean(f[metric] for f in bare), abs=1e-12), (index, metric)
            for metric, value in _bare_pooled(name, stderr).items():
                assert result["provenance"]["pooled_by_ffmpeg"][metric] == value, (index, name, metric)
    assert results[0]["metrics"]["psnr_y"]["mean"] > results[1]["metrics"]["psnr_y"]["mean"] + 1  # two pairs


def test_a_ladder_shares_its_pass_and_equals_each_rung_on_its_own(pair: dict[str, Path], tmp_path: Path) -> None:
    """A ladder scored by ffmpeg-metrics: one encoder and one scorer pass for every rung; each rung's
    values those of the rung encoded and scored on its own (VMAFX_LADDER=per-rung)."""
    job = tmp_path / "ladder.json"
    job.write_text(json.dumps({"reference": {"uri": str(pair["ref"])},
                               "scorer": {"name": "ffmpeg-metrics", "metrics": ["psnr", "ssim"]},
                               "ladder": [{"encoder": "libx264", "crf": 20}, {"encoder": "libx264", "crf": 40}]}))
    shared = _vmafx("run", "--job", str(job), "--json")
    alone = _vmafx("run", "--job", str(job), "--json", env={"VMAFX_LADDER": "per-rung"})
    assert shared.returncode == alone.returncode == 0, shared.stderr + alone.stderr
    pairs = zip(json.loads(shared.stdout)["rungs"], json.loads(alone.stdout)["rungs"], strict=True)
    for one, other in pairs:
        assert one["provenance"]["ladder"]["mode"] == "shared" and other["provenance"]["ladder"]["mode"] == "per-rung"
        assert one["metrics"] == other["metrics"] and one["frames_scored"] == FRAMES
        assert one["provenance"]["pooled_by_ffmpeg"] == other["provenance"]["pooled_by_ffmpeg"]


def test_chosen_metrics_only(pair: dict[str, Path]) -> None:
    out = _vmafx("run", str(pair["ref"]), str(pair["dis"]), "--scorer", "ffmpeg-metrics",
                 "--scorer-option", "metrics=psnr,vif", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert sorted(result["metrics"]) == sorted(["psnr", "psnr_y", "psnr_u", "psnr_v",
                                                "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3"])
    assert "xpsnr" not in result["provenance"]["filter_graph"]


def test_job_file_with_an_offset_pairs_like_libvmaf(pair: dict[str, Path], tmp_path: Path) -> None:
    """An offset shifts the pairing for this scorer too: reference frame n+3 meets frame n of a
    distorted cut three frames in; the truth pairs the raw frames by slicing the bytes."""
    cut = tmp_path / "cut.mkv"
    _ffmpeg("-v", "error", "-i", str(pair["dis"]), "-vf", "trim=start_frame=3,setpts=PTS-STARTPTS",
            "-c:v", "libx264", "-qp", "0", str(cut))
    job = tmp_path / "job.toml"
    job.write_text(f'[reference]\nuri = "{pair["ref"]}"\n[distorted]\nuri = "{cut}"\n'
                   '[scorer]\nname = "ffmpeg-metrics"\nmetrics = ["psnr"]\n'
                   '[alignment]\nreference_offset = "3"\n')
    frames_file = tmp_path / "frames.json"
    out = _vmafx("run", "--job", str(job), "--json", "--frames", str(frames_file))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["frames_scored"] == FRAMES - 3
    frame_bytes = W * H * 3 // 2
    shifted = {"dir": tmp_path, "ref_yuv": tmp_path / "ref3.yuv", "dis_yuv": tmp_path / "cut.yuv"}
    shifted["ref_yuv"].write_bytes(pair["ref_yuv"].read_bytes()[3 * frame_bytes:])
    _ffmpeg("-v", "error", "-i", str(cut), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(shifted["dis_yuv"]))
    bare, _ = _bare(shifted, "psnr")
    assert [r["psnr_y"] for r in json.loads(frames_file.read_text())] == [f["psnr_y"] for f in bare]


def test_smaller_distorted_is_scaled_and_a_frame_limit_holds(pair: dict[str, Path], tmp_path: Path) -> None:
    """The distorted at 96x54 is scaled to the reference's as for VMAF (bicubic), and
    --frame-count stops at 12 pairs; the truth scales the raw frames by hand and keeps 12."""
    small = tmp_path / "small.mkv"
    _ffmpeg("-v", "error", "-i", str(pair["dis"]), "-vf", "scale=96:54", "-c:v", "libx264", "-qp", "0",
            str(small))
    frames_file = tmp_path / "frames.json"
    out = _vmafx("run", str(pair["ref"]), str(small), "--scorer", "ffmpeg-metrics", "--scorer-option",
                 "metrics=ssim", "--frame-count", "12", "--json", "--frames", str(frames_file))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["frames_scored"] == 12
    frame_bytes = W * H * 3 // 2
    truth = {"dir": tmp_path, "ref_yuv": tmp_path / "ref12.yuv", "dis_yuv": tmp_path / "small.yuv"}
    truth["ref_yuv"].write_bytes(pair["ref_yuv"].read_bytes()[:12 * frame_bytes])
    # both sited left (the x264 stream says so; the reference is assumed so): the scaler is told
    _ffmpeg("-v", "error", "-i", str(small), "-vf",
            f"scale={W}:{H}:flags=bicubic:in_chroma_loc=left:out_chroma_loc=left", "-frames:v", "12",
            "-f", "rawvideo", "-pix_fmt", "yuv420p", str(truth["dis_yuv"]))
    bare, _ = _bare(truth, "ssim")
    assert [r["ssim"] for r in json.loads(frames_file.read_text())] == [f["ssim"] for f in bare]


def test_identical_pictures_give_the_capped_psnr_not_infinity(pair: dict[str, Path]) -> None:
    """ffmpeg says inf for identical frames; vmafx reports libvmaf's 60 dB (8 bits) and says so."""
    out = _vmafx("run", str(pair["ref"]), str(pair["ref"]), "--scorer", "ffmpeg-metrics",
                 "--scorer-option", "metrics=psnr,xpsnr,ssim", "--json")
    assert out.returncode == 0, out.stderr
    assert "Infinity" not in out.stdout
    result = json.loads(out.stdout)
    for name in ("psnr", "psnr_y", "xpsnr", "xpsnr_y", "xpsnr_v"):
        assert result["metrics"][name]["mean"] == result["metrics"][name]["min"] == 60.0, name
        assert result["provenance"]["pooled_by_ffmpeg"][name] == 60.0
    assert result["metrics"]["ssim"]["mean"] == 1.0
    assert any("reported as 60 dB" in note for note in result["notes"])


def test_wrong_options_are_one_line_and_nothing_runs(pair: dict[str, Path]) -> None:
    for option, words in (("bogus=1", "no option 'bogus'"), ("metrics=psnr,foo", "unknown metric 'foo'"),
                          ("metrics", "KEY=VALUE")):
        out = _vmafx("run", str(pair["ref"]), str(pair["dis"]), "--scorer", "ffmpeg-metrics",
                     "--scorer-option", option)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vmafx: error: --scorer-option") and words in lines[0]


def test_left_out_by_the_allow_list_names_the_package(pair: dict[str, Path]) -> None:
    for args, env in ((["--plugins", "local,libvmaf"], None), ([], {"VMAFX_PLUGINS": "local"})):
        out = _vmafx("run", str(pair["ref"]), str(pair["dis"]), "--scorer", "ffmpeg-metrics", *args, env=env)
        assert out.returncode == 3, out.stderr
        assert "vmafx-ffmpeg-metrics" in out.stderr and "allowed plugins" in out.stderr
    # the allow-list flag also lets it in, alone with the storage it needs
    ok = _vmafx("run", str(pair["ref"]), str(pair["dis"]), "--scorer", "ffmpeg-metrics", "--plugins",
                "local,ffmpeg-metrics", "--scorer-option", "metrics=msad", "--json")
    assert ok.returncode == 0, ok.stderr


def test_plugins_lists_the_options() -> None:
    out = _vmafx("plugins", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["plugins"]}
    row = rows["ffmpeg-metrics"]
    assert row["package"] == "vmafx-ffmpeg-metrics" and row["loaded"]
    scorer = row["scorers"][0]
    assert scorer["options"] == [{"name": "metrics", "type": "Metrics(tuple)", "default": list(FILTERS)}]
    assert {o["name"] for o in rows["libvmaf"]["scorers"][0]["options"]} >= {"model", "n_subsample", "n_threads"}


def test_cut_input_is_not_scored(tmp_path: Path) -> None:
    full, cut = tmp_path / "full.mkv", tmp_path / "cut.mkv"
    _ffmpeg("-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=25:duration=4", "-c:v", "libx264",
            "-preset", "ultrafast", str(full))
    cut.write_bytes(full.read_bytes()[:full.stat().st_size // 2])
    out = _vmafx("run", str(full), str(cut), "--scorer", "ffmpeg-metrics")
    assert out.returncode == 1, out.stderr
    assert "no score is reported" in out.stderr


def test_batch_jobs_choose_the_scorer_and_its_options(pair: dict[str, Path], tmp_path: Path) -> None:
    def job(job_id: str, **scorer: Any) -> str:
        return json.dumps({"id": job_id, "reference": {"uri": str(pair["ref"])},
                           "distorted": {"uri": str(pair["dis"])}, "scorer": {"name": "ffmpeg-metrics", **scorer}})

    jobs, results = tmp_path / "jobs.jsonl", tmp_path / "results.jsonl"
    jobs.write_text("\n".join([job("ssim", metrics=["ssim"]), job("bad", metrics="psnr,nope")]) + "\n")
    out = _vmafx("batch", str(jobs), "--out", str(results))
    assert out.returncode == 1, out.stderr  # one job failed
    rows = {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert rows["ssim"]["status"] == "ok" and sorted(rows["ssim"]["metrics"]) == ["ssim", "ssim_u", "ssim_v", "ssim_y"]
    bare, _ = _bare(pair, "ssim")
    assert rows["ssim"]["metrics"]["ssim_y"]["min"] == min(f["ssim_y"] for f in bare)
    assert rows["bad"]["status"] == "failed" and rows["bad"]["exit_code"] == 2
    assert any("job.scorer.metrics" in e and "nope" in e for e in rows["bad"]["errors"])


def _pip_ok(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True, timeout=900)


def test_installs_alone_next_to_the_core_and_is_found_by_its_entry_point(tmp_path: Path,
                                                                        pair: dict[str, Path]) -> None:
    """A clean venv with only the core, vmafx-local and this package: found through its entry
    point, and it scores; without it, the core says which package to install."""
    root = Path(__file__).resolve().parents[3]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    core = _pip_ok(venv, "-e", str(root), "-e", str(root / "plugins" / "local"))
    if core.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"pip could not install the core into a clean venv: {core.stderr[-2000:]}")
        pytest.skip(f"no package index for a clean venv here: {core.stderr.strip().splitlines()[-1:]}")
    env = {k: v for k, v in os.environ.items() if k not in ("VMAFX_PLUGINS", "PYTHONPATH", "VIRTUAL_ENV")}
    vmafx = str(venv / "bin" / "vmafx")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([vmafx, *args], capture_output=True, text=True, env=env, timeout=300,
                              stdin=subprocess.DEVNULL)

    missing = run("run", str(pair["ref"]), str(pair["dis"]), "--scorer", "ffmpeg-metrics")
    assert missing.returncode == 3, missing.stderr
    assert "install vmafx-ffmpeg-metrics" in missing.stderr
    plugin = _pip_ok(venv, "-e", str(root / "plugins" / "ffmpeg_metrics"))
    assert plugin.returncode == 0, plugin.stderr
    listed = json.loads(run("plugins", "--json").stdout)
    assert {r["name"] for r in listed["plugins"]} == {"libvmaf", "local", "ffmpeg-metrics"}
    scored = run("run", str(pair["ref"]), str(pair["dis"]), "--scorer", "ffmpeg-metrics", "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["frames_scored"] == FRAMES
    shutil.rmtree(venv, ignore_errors=True)
