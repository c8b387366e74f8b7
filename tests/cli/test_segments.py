"""A pair scored in segments side by side equals the whole run, frame by frame (README: Segments).

Each cell scores one pair twice through the real CLI, whole (`--segments 1`) and cut in three
(`--segments 3`), and asks for the same per-frame values, the same frame numbers and the same
pooled values; the whole run itself is held against a bare `ffmpeg -lavfi libvmaf` run in the
first cell. Clips are small (320x240, 120 frames at 25 fps, a keyframe every 25 with B-frames) so
the matrix stays fast on two cores; three segments of 40 frames each carry the same warm-up and
look-ahead as the segments of a film.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.media import ffmpeg_run

FRAMES = 120
SRC = f"testsrc2=size=320x240:rate=25,trim=end_frame={FRAMES}"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("segments")
    made: dict[str, Path] = {}
    x264 = ["-c:v", "libx264", "-g", "25", "-bf", "3", "-pix_fmt", "yuv420p"]
    made["ref.mp4"] = d / "ref.mp4"
    ffmpeg_run("-f", "lavfi", "-i", SRC, *x264, "-crf", "10", str(made["ref.mp4"]))
    made["dis.mp4"] = d / "dis.mp4"
    ffmpeg_run("-i", str(made["ref.mp4"]), "-c:v", "libx264", "-g", "31", "-bf", "2", "-crf", "36",
               str(made["dis.mp4"]))
    for ext, extra in ((".mkv", []), (".ts", ["-f", "mpegts"])):
        for role, crf in (("ref", "10"), ("dis", "36")):
            path = d / f"{role}{ext}"
            ffmpeg_run("-f", "lavfi", "-i", SRC, *x264, "-crf", crf, *extra, str(path))
            made[path.name] = path
    made["dis-small.mp4"] = d / "dis-small.mp4"
    ffmpeg_run("-i", str(made["ref.mp4"]), "-vf", "scale=160:120", *x264, "-crf", "30", str(made["dis-small.mp4"]))
    # open GOP HEVC: CRA keyframes whose leading pictures belong to the GOP before
    for role, crf in (("ref", "12"), ("dis", "34")):
        path = d / f"{role}-hevc.mp4"
        ffmpeg_run("-f", "lavfi", "-i", SRC, "-c:v", "libx265", "-crf", crf, "-pix_fmt", "yuv420p",
                   "-x265-params", "keyint=25:min-keyint=25:open-gop=1:bframes=4:log-level=error", str(path))
        made[path.name] = path
    for role in ("ref", "dis"):
        path = d / f"{role}.yuv"
        ffmpeg_run("-i", str(made[f"{role}.mp4"]), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(path))
        made[path.name] = path
    # the distorted starts 5 frames later than the reference: --reference-offset 5 pairs them
    made["dis-late.mp4"] = d / "dis-late.mp4"
    ffmpeg_run("-i", str(made["dis.mp4"]), "-vf", "trim=start_frame=5,setpts=PTS-STARTPTS", *x264, "-crf", "20",
               str(made["dis-late.mp4"]))
    made["dis-50.mp4"] = d / "dis-50.mp4"
    ffmpeg_run("-i", str(made["dis.mp4"]), "-vf", "fps=50", *x264, "-crf", "30", str(made["dis-50.mp4"]))
    return made


def _score(tmp: Path, ref: Path, dis: Path, segments: str, *flags: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    frames = tmp / f"frames-{segments}.json"
    out = run_vmafx("run", str(ref), str(dis), "--json", "--segments", segments, "--frames", str(frames), *flags)
    assert out.code == 0, out.stderr
    return out.json(), json.loads(frames.read_text())


def _same(tmp: Path, ref: Path, dis: Path, *flags: str, segmented: bool = True) -> dict[str, Any]:
    """Score whole and in three segments; assert equal per frame; return the segmented result."""
    whole, whole_frames = _score(tmp, ref, dis, "1", *flags)
    split, split_frames = _score(tmp, ref, dis, "3", *flags)
    assert [f["frame"] for f in split_frames] == [f["frame"] for f in whole_frames]
    assert split_frames == whole_frames  # every metric of every frame, to the last digit libvmaf writes
    assert split["frames_scored"] == whole["frames_scored"]
    for metric, pooled in whole["metrics"].items():
        for key, value in pooled.items():
            if key in ("mean", "harmonic_mean"):  # libvmaf's, full precision to six decimals, against
                # vmafx's of the six-decimal frames: each within 5e-7 of the true mean
                assert split["metrics"][metric][key] == pytest.approx(value, abs=1e-6), (metric, key)
            else:
                assert split["metrics"][metric][key] == value, (metric, key)
    segments = split["provenance"]["segments"]
    if segmented:
        assert segments["count"] == 3, segments
        spans = [p["frames"] for p in segments["parts"]]
        assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False)), spans
    else:
        assert segments["count"] == 1 and segments["whole_because"]
    return split


def test_mp4_v061_psnr_cambi_equal_whole_and_bare_truth(clips: dict[str, Path], tmp_path: Path) -> None:
    ref, dis = clips["ref.mp4"], clips["dis.mp4"]
    split = _same(tmp_path, ref, dis, "--feature", "psnr", "--feature", "cambi")
    parts = split["provenance"]["segments"]["parts"]
    assert all(p["seek_s"][0] for p in parts[1:]), parts  # later segments start by seeking, not decoding all
    truth_log = tmp_path / "truth.json"
    ffmpeg_run("-i", str(ref), "-i", str(dis), "-lavfi",
               "[1:v]settb=1/25,setpts=N[d];[0:v]settb=1/25,setpts=N[r];"
               f"[d][r]libvmaf=log_fmt=json:log_path={truth_log}:n_threads=1", "-f", "null", "-")
    truth = [f["metrics"]["vmaf"] for f in json.loads(truth_log.read_text())["frames"]]
    frames = json.loads((tmp_path / "frames-3.json").read_text())
    assert [f["vmaf"] for f in frames] == truth


@pytest.mark.parametrize("model", ["vmaf_v0.6.1neg", "vmaf_v1.0.16_3d0h", "vmaf_v1.0.16_hfr_3d0h"])
def test_models_equal_whole(clips: dict[str, Path], tmp_path: Path, model: str) -> None:
    _same(tmp_path, clips["ref.mp4"], clips["dis.mp4"], "--model", model)


@pytest.mark.parametrize("container", [".mkv", ".ts"])
def test_containers_equal_whole(clips: dict[str, Path], tmp_path: Path, container: str) -> None:
    _same(tmp_path, clips[f"ref{container}"], clips[f"dis{container}"])


def test_raw_yuv_equal_whole(clips: dict[str, Path], tmp_path: Path) -> None:
    _same(tmp_path, clips["ref.yuv"], clips["dis.yuv"], "--width", "320", "--height", "240", "--pix-fmt",
          "yuv420p", "--fps", "25")


def test_open_gop_hevc_equal_whole(clips: dict[str, Path], tmp_path: Path) -> None:
    _same(tmp_path, clips["ref-hevc.mp4"], clips["dis-hevc.mp4"])


def test_offset_scaled_and_subsampled_equal_whole(clips: dict[str, Path], tmp_path: Path) -> None:
    _same(tmp_path, clips["ref.mp4"], clips["dis-late.mp4"], "--reference-offset", "5")
    _same(tmp_path, clips["ref.mp4"], clips["dis-small.mp4"])
    _same(tmp_path, clips["ref.mp4"], clips["dis.mp4"], "--n-subsample", "3")
    _same(tmp_path, clips["ref.mp4"], clips["dis.mp4"], "--frame-count", "100")


def test_rate_conversion_runs_whole_and_says_why(clips: dict[str, Path], tmp_path: Path) -> None:
    split = _same(tmp_path, clips["ref.mp4"], clips["dis-50.mp4"], "--frame-rate", "reference", segmented=False)
    assert "resampled by timestamp" in split["provenance"]["segments"]["whole_because"]
    assert any(n.startswith("scored whole, not in segments") for n in split["notes"])


def test_sync_auto_runs_whole_and_says_why(clips: dict[str, Path], tmp_path: Path) -> None:
    split = _same(tmp_path, clips["ref.mp4"], clips["dis-late.mp4"], "--sync", "auto", segmented=False)
    assert "--sync auto" in split["provenance"]["segments"]["whole_because"]


def test_auto_leaves_a_short_clip_whole(clips: dict[str, Path]) -> None:
    out = run_vmafx("run", str(clips["ref.mp4"]), str(clips["dis.mp4"]), "--json", "--segments", "auto")
    assert out.code == 0, out.stderr
    assert out.json()["provenance"]["segments"]["count"] == 1


def test_bad_segments_flag_is_one_line(clips: dict[str, Path]) -> None:
    out = run_vmafx("run", str(clips["ref.mp4"]), str(clips["dis.mp4"]), "--segments", "two")
    assert out.code == 2 and "--segments two" in out.stderr and "Traceback" not in out.stderr


def test_ctrl_c_stops_every_segment(clips: dict[str, Path], tmp_path: Path) -> None:
    """SIGINT while three segments score: exit 130, no ffmpeg of the run left."""
    import os
    import signal
    import sys
    import time

    from testkit.procs import descendants

    long_ref, long_dis = tmp_path / "long-ref.mp4", tmp_path / "long-dis.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=40", "-c:v", "libx264", "-preset",
               "ultrafast", "-g", "50", str(long_ref))
    ffmpeg_run("-i", str(long_ref), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "35", str(long_dis))
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", str(long_ref), str(long_dis),
                             "--segments", "3", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    children: set[int] = set()
    while time.monotonic() < deadline:
        children = {p for p in descendants(proc.pid) if _is_scoring_ffmpeg(p)}
        if len(children) >= 3:
            break
        time.sleep(0.1)
    assert len(children) >= 3, "three segment ffmpegs never ran at once"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    time.sleep(0.5)
    assert not [p for p in children if os.path.exists(f"/proc/{p}")], "a segment's ffmpeg outlived the run"


def _is_scoring_ffmpeg(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    return any(a.endswith(b"ffmpeg") or b"ffmpeg-linux" in a for a in argv[:1]) and b"libvmaf" in b" ".join(argv)
