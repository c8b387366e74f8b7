"""`vmafx run` on local files: same numbers as a bare ffmpeg libvmaf command, and clear failures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from testkit.cli import run_vmafx
from testkit.media import Media, bare_libvmaf, cut_mkv, ffmpeg_run


def _assert_same_as_bare(result: dict, bare: dict) -> None:
    assert result["metrics"]["vmaf"]["mean"] == bare["pooled_metrics"]["vmaf"]["mean"]
    assert result["metrics"]["vmaf"]["harmonic_mean"] == bare["pooled_metrics"]["vmaf"]["harmonic_mean"]
    assert result["frames_scored"] == len(bare["frames"])


def _per_frame(path: Path) -> list[float]:
    return [row["vmaf"] for row in json.loads(path.read_text())]


def test_container_pair_matches_bare_ffmpeg(media: Media, tmp_path: Path) -> None:
    frames = tmp_path / "frames.json"
    out = run_vmafx("run", str(media.ref), str(media.dis), "--json", "--n-threads", "2", "--frames", str(frames))
    assert out.code == 0, out.stderr
    result = out.json()
    bare = bare_libvmaf(["-i", str(media.ref)], ["-i", str(media.dis)], tmp_path / "bare.json",
                        width=media.width, height=media.height)
    _assert_same_as_bare(result, bare)
    assert _per_frame(frames) == [f["metrics"]["vmaf"] for f in bare["frames"]]
    assert result["frames_scored"] == media.frames
    assert result["reference"]["frames"] == result["distorted"]["frames"] == media.frames
    assert 20 < result["metrics"]["vmaf"]["mean"] < 95  # a real, degraded encode
    assert result["schema"] == "vmafx.result" and result["schema_version"] == 1
    prov = result["provenance"]
    assert prov["model"] == "vmaf_v0.6.1" and prov["storage"] == {"reference": "local", "distorted": "local"}
    assert "libvmaf=" in prov["filter_graph"] and "scale=320:240:flags=bicubic" in prov["filter_graph"]
    assert prov["ffmpeg"] and prov["libvmaf"]
    assert result["reference"]["size"] == media.ref.stat().st_size


@pytest.mark.parametrize("bits", [8, 10])
def test_raw_yuv_pair_matches_bare_ffmpeg(media: Media, tmp_path: Path, bits: int) -> None:
    pix_fmt = "yuv420p" if bits == 8 else "yuv420p10le"
    ref, dis = (media.ref_yuv, media.dis_yuv) if bits == 8 else (media.ref_yuv10, media.dis_yuv10)
    frames = tmp_path / "frames.json"
    out = run_vmafx("run", str(ref), str(dis), "--width", "320", "--height", "240", "--pix-fmt", pix_fmt,
                    "--fps", "24", "--n-threads", "2", "--json", "--frames", str(frames))
    assert out.code == 0, out.stderr
    raw_opts = ["-f", "rawvideo", "-video_size", "320x240", "-pixel_format", pix_fmt, "-framerate", "24"]
    bare = bare_libvmaf([*raw_opts, "-i", str(ref)], [*raw_opts, "-i", str(dis)], tmp_path / "bare.json",
                        width=320, height=240)
    result = out.json()
    _assert_same_as_bare(result, bare)
    assert _per_frame(frames) == [f["metrics"]["vmaf"] for f in bare["frames"]]
    assert result["reference"]["raw"]["pix_fmt"] == pix_fmt
    assert result["frames_scored"] == media.frames


def test_frames_csv_and_extra_features(media: Media, tmp_path: Path) -> None:
    frames = tmp_path / "frames.csv"
    out = run_vmafx("run", str(media.ref), str(media.dis), "--json", "--feature", "psnr", "--feature",
                    "float_ssim", "--frames", str(frames))
    assert out.code == 0, out.stderr
    metrics = out.json()["metrics"]
    assert {"vmaf", "psnr_y", "float_ssim"} <= set(metrics)
    pooled = metrics["vmaf"]
    assert pooled["min"] <= pooled["p1"] <= pooled["p5"] <= pooled["p50"] <= pooled["max"]
    assert pooled["stdev"] >= 0
    lines = frames.read_text().splitlines()
    assert lines[0].startswith("frame,") and "vmaf" in lines[0].split(",")
    assert len(lines) == 1 + media.frames


def test_human_summary_and_output_file(media: Media, tmp_path: Path) -> None:
    result_file = tmp_path / "result.json"
    out = run_vmafx("run", str(media.ref), str(media.dis), "-o", str(result_file))
    assert out.code == 0, out.stderr
    assert out.stdout.startswith("VMAF ")
    mean = json.loads(result_file.read_text())["metrics"]["vmaf"]["mean"]
    assert out.stdout.strip() == f"VMAF {mean:.6f}"
    assert "frames" in out.stderr


def test_frame_count_mismatch_is_an_error_unless_allowed(media: Media) -> None:
    out = run_vmafx("run", str(media.ref), str(media.short_dis), "--json")
    assert out.code == 2
    assert "frame counts differ: reference has 48 frames, distorted 40" in out.stderr
    assert out.stdout == ""
    allowed = run_vmafx("run", str(media.ref), str(media.short_dis), "--json", "--allow-frame-mismatch")
    assert allowed.code == 0, allowed.stderr
    result = allowed.json()
    assert result["frames_scored"] == 40
    assert any("overlap" in n for n in result["notes"])


def test_container_cut_short_is_not_scored(tmp_path: Path) -> None:
    """The defect this project grew from: a cut stream scored as a shorter clip with exit 0."""
    full, cut = cut_mkv(tmp_path)
    assert run_vmafx("run", str(full), str(full)).code == 0
    out = run_vmafx("run", str(cut), str(cut), "--json")
    assert out.code == 1 and out.stdout == ""
    line = out.stderr.splitlines()[0]
    assert "decoded" in line and "its container declares 200" in line and "cut short" in line, out.stderr
    allowed = run_vmafx("run", str(cut), str(cut), "--json", "--allow-frame-mismatch")
    assert allowed.code == 0, allowed.stderr
    result = allowed.json()
    assert result["frames_scored"] < 200 and any("declares 200" in n for n in result["notes"])


def test_matroska_with_late_video_and_longer_audio_is_not_taken_for_cut(tmp_path: Path) -> None:
    clip = tmp_path / "late.mkv"  # the video's DURATION tag counts from 0, its first frame is at 0.52 s
    ffmpeg_run("-itsoffset", "0.5", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4",
               "-f", "lavfi", "-i", "sine=duration=4.5", "-c:v", "libx264", "-preset", "ultrafast",
               "-c:a", "libopus", str(clip))
    out = run_vmafx("run", str(clip), str(clip), "--json")
    assert out.code == 0, out.stderr
    assert out.json()["frames_scored"] == 100 and not out.json()["notes"]


def test_cut_mp4_fails_naming_the_cause(tmp_path: Path) -> None:
    full, cut = tmp_path / "full.mp4", tmp_path / "cut.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=8", "-c:v", "libx264",
               "-preset", "ultrafast", "-movflags", "+faststart", str(full))
    cut.write_bytes(full.read_bytes()[:full.stat().st_size // 2])
    out = run_vmafx("run", str(cut), str(cut), "--json")
    assert out.code == 1 and out.stdout == ""
    line = out.stderr.splitlines()[0]
    assert re.search(r"corrupt|partial file|invalid data|cut short", line, re.IGNORECASE), out.stderr
    assert "Conversion failed" not in line and "@ 0x" not in line


def test_resolution_mismatch_without_scaling_is_refused(media: Media) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), "--scale-filter", "none")
    assert out.code == 2
    assert "distorted is 160x120 but reference is 320x240" in out.stderr


def test_missing_file_is_one_clear_line(media: Media, tmp_path: Path) -> None:
    out = run_vmafx("run", str(media.ref), str(tmp_path / "nope.mp4"))
    assert out.code == 2
    assert out.stderr.strip().splitlines() == [f"vmafx: error: distorted {tmp_path / 'nope.mp4'}: no such file"]


def test_not_a_video(media: Media, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video at all" * 100)
    out = run_vmafx("run", str(media.ref), str(junk))
    assert out.code == 2
    assert "not a video ffmpeg can read" in out.stderr
    assert "Traceback" not in out.stderr


def test_raw_size_that_is_not_whole_frames(media: Media, tmp_path: Path) -> None:
    odd = tmp_path / "odd.yuv"
    odd.write_bytes(media.ref_yuv.read_bytes()[:-100])
    out = run_vmafx("run", str(media.ref_yuv), str(odd), "--width", "320", "--height", "240", "--pix-fmt",
                    "yuv420p", "--fps", "24")
    assert out.code == 2
    assert "is not a whole number of 320x240 yuv420p frames" in out.stderr


def test_raw_flags_must_come_together(media: Media) -> None:
    out = run_vmafx("run", str(media.ref_yuv), str(media.dis_yuv), "--width", "320")
    assert out.code == 2
    assert "needs --height, --pix-fmt, --fps as well" in out.stderr


def test_missing_model_file(media: Media, tmp_path: Path) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), "--model", str(tmp_path / "model.json"))
    assert out.code == 2
    assert "model file" in out.stderr and "does not exist" in out.stderr


def test_other_builtin_model(media: Media) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), "--json", "--model", "vmaf_v0.6.1neg")
    assert out.code == 0, out.stderr
    assert out.json()["provenance"]["model"] == "vmaf_v0.6.1neg"


def test_unknown_storage_mode(media: Media) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), "--storage", "ftp-magic")
    assert out.code == 2
    assert "unknown storage 'ftp-magic'" in out.stderr


def test_usage_errors(media: Media) -> None:
    assert run_vmafx("run", str(media.ref)).code == 2
    assert run_vmafx("run", "--bogus").code == 2


def test_subsampling_scores_every_nth_frame(media: Media) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), "--json", "--n-subsample", "5")
    assert out.code == 0, out.stderr
    assert out.json()["frames_scored"] == -(-media.frames // 5)
    assert out.json()["reference"]["frames"] == media.frames
