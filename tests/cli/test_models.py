"""Models, model parameters, several models in one pass, feature options and per-frame numbering.

The truth for every score is a bare `ffmpeg -lavfi libvmaf` run on the same two files, with the
filter options written out by hand as libvmaf's and ffmpeg's documentation give them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from testkit.cli import run_vmafx
from testkit.media import ffmpeg_run

W, H, FPS, FRAMES = 320, 180, 25, 25


@attrs.frozen
class Clips:
    ref: Path
    dis: Path
    ref_yuv: Path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    d = tmp_path_factory.mktemp("models")
    ref, dis, ref_yuv = d / "ref.mp4", d / "dis.mp4", d / "ref.yuv"
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate={FPS}:duration={FRAMES / FPS}", "-c:v", "libx264",
               "-crf", "12", "-pix_fmt", "yuv420p", str(ref))
    ffmpeg_run("-i", str(ref), "-c:v", "libx264", "-crf", "38", "-pix_fmt", "yuv420p", str(dis))
    ffmpeg_run("-i", str(ref), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(ref_yuv))
    return Clips(ref, dis, ref_yuv)


def bare(clips: Clips, tmp_path: Path, vmaf_options: str, pre: str = "", ref_args: tuple[str, ...] = ()) -> Any:
    """libvmaf by hand: `pre` is a filter applied to both inputs first (e.g. format=yuv420p10le)."""
    log = tmp_path / f"bare-{abs(hash((vmaf_options, pre, ref_args)))}.json"
    chain = f"{pre}," if pre else ""
    ffmpeg_run(*ref_args, "-i", str(clips.ref), "-i", str(clips.dis), "-lavfi",
               f"[1:v]{chain}setpts=PTS-STARTPTS[d];[0:v]{chain}setpts=PTS-STARTPTS[r];"
               f"[d][r]libvmaf={vmaf_options}:log_fmt=json:log_path={log}:n_threads=2", "-f", "null", "-")
    return json.loads(log.read_text())


def vmafx(clips: Clips, tmp_path: Path, *args: str) -> tuple[Any, list[dict[str, Any]]]:
    frames = tmp_path / "frames.json"
    out = run_vmafx("run", str(clips.ref), str(clips.dis), "--json", "--n-threads", "2", "--frames", str(frames),
                    *args)
    assert out.code == 0, out.stderr
    return out.json(), json.loads(frames.read_text())


def per_frame(log: Any, key: str) -> list[float]:
    return [f["metrics"][key] for f in log["frames"]]


def test_models_lists_what_the_binary_has_on_a_fresh_cache(tmp_path: Path) -> None:
    env = {"VMAFX_CACHE_DIR": str(tmp_path / "fresh-cache")}
    out = run_vmafx("models", "--json", env=env)
    assert out.code == 0, out.stderr
    rows = {row["name"]: row for row in out.json()["models"]}
    assert {"vmaf_v0.6.1", "vmaf_v1.0.16_3d0h", "vmaf_v1.0.16_5d0h", "vmaf_v1.0.16_1d5h_2160",
            "vmaf_v1.0.16_3d0h_2160", "vmaf_v1.0.16_hfr_3d0h", "vmaf_4k_v0.6.1", "vmaf_float_v0.6.1"} <= set(rows)
    assert rows["vmaf_v1.0.16_3d0h_2160"]["score_range"] == [0, 110]
    assert rows["vmaf_v1.0.16_3d0h_2160"]["display"] == "2160p"
    assert rows["vmaf_v1.0.16_1d5h_2160"]["viewing_distance"] == "1.5H"
    assert rows["vmaf_v1.0.16_5d0h"]["viewing_distance"] == "5H"
    assert "high frame rate" in rows["vmaf_v1.0.16_hfr_3d0h"]["frame_rate"]
    assert rows["vmaf_v1.0.16_3d0h"]["precision_bits"] == 10 and rows["vmaf_v1.0.16_3d0h"]["loads"]
    assert rows["vmaf_v0.6.1"]["transform"] and not rows["vmaf_4k_v0.6.1"]["transform"]
    assert "NEG" in rows["vmaf_v0.6.1neg"]["purpose"]
    text = run_vmafx("models", env=env)  # the second time from the cache
    assert text.code == 0, text.stderr
    assert any(line.startswith("vmaf_v1.0.16_3d0h ") and "3H" in line for line in text.stdout.splitlines())
    assert (tmp_path / "fresh-cache" / "binaries.json").is_file()


def test_unknown_model_is_one_line_naming_vmafx_models(clips: Clips) -> None:
    out = run_vmafx("run", str(clips.ref), str(clips.dis), "--model", "vmaf_v9.9.9")
    assert out.code == 2 and out.stdout == ""
    assert out.stderr.splitlines()[0].startswith("vmafx: error: unknown model 'vmaf_v9.9.9'")
    assert "vmafx models" in out.stderr and "Traceback" not in out.stderr


def test_a_model_that_does_not_load_and_a_confidence_interval_are_clear_errors(clips: Clips) -> None:
    out = run_vmafx("run", str(clips.ref), str(clips.dis), "--model", "vmaf_b_v0.6.3")
    if out.code == 0:
        pytest.skip("this libvmaf loads the bootstrap model")
    assert out.code == 3, out.stderr
    assert "vmaf_b_v0.6.3" in out.stderr.splitlines()[0] and "does not load" in out.stderr
    ci = run_vmafx("run", str(clips.ref), str(clips.dis), "--model", "vmaf_v0.6.1:enable_conf_interval=true")
    assert ci.code == 3 and "confidence interval" in ci.stderr.splitlines()[0]
    bad = run_vmafx("run", str(clips.ref), str(clips.dis), "--model", "vmaf_v0.6.1:enable_transfrom=true")
    assert bad.code == 2 and "unknown model parameter 'enable_transfrom'" in bad.stderr


def test_v1_model_is_scored_at_10_bits_like_its_documentation_says(clips: Clips, tmp_path: Path) -> None:
    result, frames = vmafx(clips, tmp_path, "--model", "vmaf_v1.0.16_3d0h")
    truth = bare(clips, tmp_path, "model=version=vmaf_v1.0.16_3d0h", pre="format=yuv420p10le")
    assert result["metrics"]["vmaf"]["mean"] == truth["pooled_metrics"]["vmaf"]["mean"]
    assert [f["vmaf"] for f in frames] == per_frame(truth, "vmaf")
    eight_bit = bare(clips, tmp_path, "model=version=vmaf_v1.0.16_3d0h")
    assert result["metrics"]["vmaf"]["mean"] != eight_bit["pooled_metrics"]["vmaf"]["mean"]  # it matters
    (row,) = result["provenance"]["models"]
    assert row["scored_as"] == "yuv420p10le" and "10-bit" in row["precision"]
    assert "format=yuv420p10le" in result["provenance"]["filter_graph"]


def test_model_parameters_reach_libvmaf(clips: Clips, tmp_path: Path) -> None:
    spec = "vmaf_v1.0.16_3d0h:cambi.enc_bitdepth=8:disable_clip=true"
    result, _ = vmafx(clips, tmp_path, "--model", spec)
    truth = bare(clips, tmp_path, "model=version=vmaf_v1.0.16_3d0h\\\\:disable_clip=true\\\\:cambi.enc_bitdepth=8",
                 pre="format=yuv420p10le")
    assert result["metrics"]["vmaf"]["mean"] == truth["pooled_metrics"]["vmaf"]["mean"]
    assert "cambi_hrs_1080_cmxv_17_vlt_0.06_encbd_8" in result["metrics"]  # CAMBI took the encode's depth
    assert result["provenance"]["model"] == "vmaf_v1.0.16_3d0h:disable_clip=true:cambi.enc_bitdepth=8"


def test_phone_model(clips: Clips, tmp_path: Path) -> None:
    result, _ = vmafx(clips, tmp_path, "--model", "vmaf_v0.6.1:enable_transform=true")
    truth = bare(clips, tmp_path, "model=version=vmaf_v0.6.1\\\\:enable_transform=true")
    plain = bare(clips, tmp_path, "model=version=vmaf_v0.6.1")
    assert result["metrics"]["vmaf"]["mean"] == truth["pooled_metrics"]["vmaf"]["mean"]
    assert truth["pooled_metrics"]["vmaf"]["mean"] > plain["pooled_metrics"]["vmaf"]["mean"] + 1
    assert result["provenance"]["model"] == "vmaf_v0.6.1:enable_transform=true"


def test_several_models_in_one_pass_equal_their_separate_bare_runs(clips: Clips, tmp_path: Path) -> None:
    result, frames = vmafx(clips, tmp_path, "--model", "vmaf_v0.6.1", "--model", "vmaf_v0.6.1neg",
                           "--model", "vmaf_v1.0.16_3d0h", "--model", "vmaf_v0.6.1:enable_transform=true")
    truths = {
        "vmaf_v0.6.1": bare(clips, tmp_path, "model=version=vmaf_v0.6.1"),
        "vmaf_v0.6.1neg": bare(clips, tmp_path, "model=version=vmaf_v0.6.1neg"),
        "vmaf_v1.0.16_3d0h": bare(clips, tmp_path, "model=version=vmaf_v1.0.16_3d0h", pre="format=yuv420p10le"),
        "vmaf_v0.6.1_phone": bare(clips, tmp_path, "model=version=vmaf_v0.6.1\\\\:enable_transform=true"),
    }
    assert "vmaf" not in result["metrics"]
    for metric, truth in truths.items():
        assert result["metrics"][metric]["mean"] == pytest.approx(truth["pooled_metrics"]["vmaf"]["mean"], abs=1e-6)
        assert [f[metric] for f in frames] == pytest.approx(per_frame(truth, "vmaf"), abs=1e-6)
    graph = result["provenance"]["filter_graph"]
    assert graph.count("libvmaf=") == 2  # one pass: 8-bit and 10-bit instances
    assert "log_path=<log.1>" in graph and "vmafx-libvmaf" not in graph
    assert [m["metric"] for m in result["provenance"]["models"]] == [
        "vmaf_v0.6.1", "vmaf_v0.6.1neg", "vmaf_v0.6.1_phone", "vmaf_v1.0.16_3d0h"]


def test_models_as_a_list_in_a_job_file(clips: Clips, tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(f'[reference]\nuri = "{clips.ref}"\n[distorted]\nuri = "{clips.dis}"\n[scorer]\n'
                   'name = "libvmaf"\nn_threads = 2\n'
                   'model = ["vmaf_v0.6.1", { name = "vmaf_v0.6.1", enable_transform = true, metric = "phone" }]\n'
                   'features = [{ name = "psnr", enable_chroma = false }]\n')
    out = run_vmafx("run", "--job", str(job), "--json")
    assert out.code == 0, out.stderr
    metrics = out.json()["metrics"]
    phone = bare(clips, tmp_path, "model=version=vmaf_v0.6.1\\\\:enable_transform=true")
    assert metrics["phone"]["mean"] == pytest.approx(phone["pooled_metrics"]["vmaf"]["mean"], abs=1e-6)
    assert "vmaf_v0.6.1" in metrics and "psnr_y" in metrics and "psnr_cb" not in metrics
    clash = tmp_path / "clash.toml"
    clash.write_text(job.read_text().replace('metric = "phone"', 'metric = "vmaf_v0.6.1"'))
    bad = run_vmafx("run", "--job", str(clash))
    assert bad.code == 2 and "same metric" in bad.stderr


def test_feature_options(clips: Clips, tmp_path: Path) -> None:
    result, frames = vmafx(clips, tmp_path, "--feature", "cambi:full_ref=true", "--feature",
                           "psnr:enable_chroma=false")
    truth = bare(clips, tmp_path, "model=version=vmaf_v0.6.1:feature=name=cambi\\\\:full_ref=true"
                                  "|name=psnr\\\\:enable_chroma=false")
    for key in ("cambi", "cambi_full_reference", "cambi_source", "psnr_y", "vmaf"):
        assert result["metrics"][key]["mean"] == truth["pooled_metrics"][key]["mean"], key
        assert [f[key] for f in frames] == per_frame(truth, key)
    assert "psnr_cb" not in result["metrics"]  # chroma off, as asked
    assert result["provenance"]["features"] == ["cambi:full_ref=true", "psnr:enable_chroma=false"]
    bad = run_vmafx("run", str(clips.ref), str(clips.dis), "--feature", "cambi:fullref=true")
    assert bad.code == 2, bad.stderr
    assert "feature cambi has no option 'fullref'" in bad.stderr and "Traceback" not in bad.stderr


def test_subsampled_frame_numbers_and_times_are_libvmafs(clips: Clips, tmp_path: Path) -> None:
    result, frames = vmafx(clips, tmp_path, "--n-subsample", "3")
    truth = bare(clips, tmp_path, "model=version=vmaf_v0.6.1:n_subsample=3")
    numbers = [f["frameNum"] for f in truth["frames"]]
    assert numbers[:4] == [0, 3, 6, 9]
    assert [f["frame"] for f in frames] == numbers
    assert [f["time_s"] for f in frames] == [round(n / FPS, 6) for n in numbers]
    assert [f["vmaf"] for f in frames] == per_frame(truth, "vmaf")
    csv_file = tmp_path / "frames.csv"
    out = run_vmafx("run", str(clips.ref), str(clips.dis), "--n-subsample", "3", "--frames", str(csv_file))
    assert out.code == 0, out.stderr
    lines = csv_file.read_text().splitlines()
    header = lines[0].split(",")
    assert header[0] == "frame" and header[-1] == "time_s" and "vmaf" in header
    assert [int(line.split(",")[0]) for line in lines[1:]] == numbers
    assert result["frames_scored"] == len(numbers)


def test_raw_reference_and_mp4_distorted_from_the_command_line(clips: Clips, tmp_path: Path) -> None:
    raw_args = ("-f", "rawvideo", "-video_size", f"{W}x{H}", "-pixel_format", "yuv420p", "-framerate", str(FPS))
    log = tmp_path / "bare-raw.json"
    ffmpeg_run(*raw_args, "-i", str(clips.ref_yuv), "-i", str(clips.dis), "-lavfi",
               "[1:v]setpts=PTS-STARTPTS[d];[0:v]setpts=PTS-STARTPTS[r];"
               f"[d][r]libvmaf=model=version=vmaf_v0.6.1:log_fmt=json:log_path={log}:n_threads=2",
               "-f", "null", "-")
    truth = json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"]
    shared = run_vmafx("run", str(clips.ref_yuv), str(clips.dis), "--width", str(W), "--height", str(H),
                       "--pix-fmt", "yuv420p", "--fps", str(FPS), "--n-threads", "2", "--json")
    assert shared.code == 0, shared.stderr
    assert shared.json()["distorted"]["raw"] is None and shared.json()["reference"]["raw"]["width"] == W
    per_input = run_vmafx("run", str(clips.ref_yuv), str(clips.dis), "--reference-raw", f"{W}x{H}:yuv420p:{FPS}",
                          "--n-threads", "2", "--json")
    assert per_input.code == 0, per_input.stderr
    job = tmp_path / "raw.toml"
    job.write_text(f'[reference]\nuri = "{clips.ref_yuv}"\n'
                   f'raw = {{ width = {W}, height = {H}, pix_fmt = "yuv420p", fps = {FPS} }}\n'
                   f'[distorted]\nuri = "{clips.dis}"\n[scorer]\nname = "libvmaf"\nn_threads = 2\n')
    from_job = run_vmafx("run", "--job", str(job), "--json")
    assert from_job.code == 0, from_job.stderr
    for out in (shared, per_input, from_job):
        assert out.json()["metrics"]["vmaf"]["mean"] == truth
    neither = run_vmafx("run", str(clips.ref), str(clips.dis), "--width", str(W), "--height", str(H),
                        "--pix-fmt", "yuv420p", "--fps", str(FPS))
    assert neither.code == 2 and "--reference-raw" in neither.stderr
    bad = run_vmafx("run", str(clips.ref_yuv), str(clips.dis), "--reference-raw", "320:180")
    assert bad.code == 2 and "WIDTHxHEIGHT:PIX_FMT:FPS" in bad.stderr


def test_a_picture_too_small_for_a_v1_model_is_said_so(clips: Clips) -> None:
    out = run_vmafx("run", str(clips.ref), str(clips.dis), "--model", "vmaf_v1.0.16_5d0h")
    assert out.code == 2 and out.stdout == ""
    line = out.stderr.splitlines()[0]
    assert f"({W}x{H}) are too small for vmaf_v1.0.16_5d0h" in line and "image too small" in line


def test_several_models_with_a_frame_limit_equal_bare_runs_of_those_frames(clips: Clips, tmp_path: Path) -> None:
    result, frames = vmafx(clips, tmp_path, "--model", "vmaf_v0.6.1", "--model", "vmaf_v1.0.16_3d0h",
                           "--frame-count", "8")
    plain = bare(clips, tmp_path, "model=version=vmaf_v0.6.1", pre="trim=end_frame=8")
    v1 = bare(clips, tmp_path, "model=version=vmaf_v1.0.16_3d0h", pre="trim=end_frame=8,format=yuv420p10le")
    assert result["frames_scored"] == len(frames) == 8
    assert result["metrics"]["vmaf_v0.6.1"]["mean"] == pytest.approx(plain["pooled_metrics"]["vmaf"]["mean"], abs=1e-6)
    assert result["metrics"]["vmaf_v1.0.16_3d0h"]["mean"] == pytest.approx(v1["pooled_metrics"]["vmaf"]["mean"],
                                                                           abs=1e-6)
