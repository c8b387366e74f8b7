"""Encode, then score: the encode streams into the scorer through a pipe, never through a file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.media import Media, clip_720p
from testkit.procs import alive, children, cmdline

ENCODERS = {
    # large lookaheads: the encoder holds many frames before its first output
    "libx264": ["--crf", "30", "--preset", "fast", "--encode-arg=-x264-params", "--encode-arg=rc-lookahead=60"],
    "libsvtav1": ["--crf", "45", "--preset", "12", "--encode-arg=-svtav1-params", "--encode-arg=lookahead=60"],
}


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_streamed_encode_scores_like_the_encode_as_a_file(media: Media, tmp_path: Path, encoder: str) -> None:
    saved = tmp_path / "encode.nut"
    streamed = run_vmafx("run", str(media.ref), "--encode", encoder, *ENCODERS[encoder], "--json",
                         "--frames", str(tmp_path / "s.json"), "--save-encode", str(saved))
    assert streamed.code == 0, streamed.stderr
    result = streamed.json()
    assert result["encode"]["encoder"] == encoder
    assert result["encode"]["encoded_bytes"] == saved.stat().st_size > 0
    assert result["encode"]["bitrate_bps"] == round(saved.stat().st_size * 8 / (media.frames / media.fps))
    assert result["encode"]["encode_fps"] > 0
    assert result["frames_scored"] == media.frames
    assert result["provenance"]["storage"]["distorted"] == "encode"

    from_file = run_vmafx("run", str(media.ref), str(saved), "--json", "--frames", str(tmp_path / "f.json"))
    assert from_file.code == 0, from_file.stderr
    assert from_file.json()["metrics"]["vmaf"] == result["metrics"]["vmaf"]
    assert json.loads((tmp_path / "s.json").read_text()) == json.loads((tmp_path / "f.json").read_text())


def test_encode_from_raw_reference_and_scaled(media: Media, tmp_path: Path) -> None:
    out = run_vmafx("run", str(media.ref_yuv), "--width", "320", "--height", "240", "--pix-fmt", "yuv420p",
                    "--fps", "24", "--encode", "libx264", "--crf", "35", "--encode-size", "160x120", "--json")
    assert out.code == 0, out.stderr
    result = out.json()
    assert result["frames_scored"] == media.frames
    assert result["encode"]["options"]["size"] == "160x120"
    assert result["metrics"]["vmaf"]["mean"] < 95


def test_unknown_encoder_fails_before_anything_runs(media: Media) -> None:
    out = run_vmafx("run", str(media.ref), "--encode", "libx999")
    assert out.code == 2
    line = out.stderr.strip().splitlines()[0]
    assert line.startswith("vmafx: error: unknown encoder 'libx999'; this ffmpeg has: ")
    assert "libx264" in line and "libsvtav1" in line


def test_encode_flags_need_an_encoder(media: Media) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), "--crf", "20")
    assert out.code == 2 and "only apply with --encode" in out.stderr


def test_encoder_dying_midway_fails_the_job_and_leaves_nothing(tmp_path: Path) -> None:
    clip = clip_720p(tmp_path / "long.mp4", 40)
    saved = tmp_path / "partial.nut"
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", str(clip), "--encode", "libx264",
                             "--preset", "veryslow", "--save-encode", str(saved)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    encoder = None
    deadline = time.monotonic() + 60
    while encoder is None and time.monotonic() < deadline:
        for pid in children(proc.pid):
            argv = cmdline(pid).split(b"\0")
            if b"libx264" in argv and b"-filter_complex" not in argv:  # the encoder, not the scorer
                encoder = pid
        time.sleep(0.05)
    assert encoder is not None
    time.sleep(1.0)
    kids = children(proc.pid)
    os.kill(encoder, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert "the encoder libx264 failed" in stderr and stdout == ""
    assert not any(alive(pid) for pid in kids)
    assert not saved.exists() and not (tmp_path / ".partial.nut.part").exists()


def test_ladder_gives_one_result_per_rung(media: Media, tmp_path: Path) -> None:
    job = tmp_path / "ladder.toml"
    job.write_text(f'''
id = "ladder-x264"
[reference]
uri = "{media.ref}"
[[ladder]]
encoder = "libx264"
crf = 20
[[ladder]]
encoder = "libx264"
crf = 40
size = "160x120"
''')
    out = run_vmafx("run", "--job", str(job), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["schema"] == "vmafx.ladder" and len(data["rungs"]) == 2
    high, low = data["rungs"]
    assert high["job_id"] == "ladder-x264/0" and high["encode"]["options"]["crf"] == 20
    assert high["encode"]["encoded_bytes"] > low["encode"]["encoded_bytes"]
    assert high["metrics"]["vmaf"]["mean"] > low["metrics"]["vmaf"]["mean"]
    # each rung equals the same encode run on its own
    alone = run_vmafx("run", str(media.ref), "--encode", "libx264", "--crf", "20", "--json")
    assert alone.json()["metrics"]["vmaf"] == high["metrics"]["vmaf"]


def _one_error_line(out: Any) -> str:
    """The one `vmafx: error:` line of the run's stderr; at most the usual hint follows it, never a traceback."""
    lines = out.stderr.strip().splitlines()
    assert lines and lines[0].startswith("vmafx: error: --save-encode "), out.stderr
    assert lines[1:] in ([], ["  (run `vmafx -v run ...` to see ffmpeg's/rclone's last lines)"]), out.stderr
    return str(lines[0])


@pytest.mark.parametrize(("where", "says"), [
    ("folder", "is a folder; give a file name"),
    ("missing", "does not exist"),
    ("under-a-file", "is not a folder"),
    ("/proc/vmafx-save.nut", "cannot write in /proc"),  # isdir, yet nothing can be created in it
    ("/sys/vmafx-save.nut", "cannot write in /sys (Permission denied)"),  # even for root
])
def test_save_encode_destination_is_checked_before_encoding(media: Media, tmp_path: Path, where: str,
                                                            says: str) -> None:
    (tmp_path / "a-file").write_text("x")
    dest = {"folder": str(tmp_path), "missing": str(tmp_path / "nope" / "e.nut"),
            "under-a-file": str(tmp_path / "a-file" / "e.nut")}.get(where, where)
    out = run_vmafx("run", str(media.ref), "--encode", "libx264", "--crf", "30", "--json", "--save-encode", dest)
    assert out.code == 2 and out.stdout == ""
    assert says in _one_error_line(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no part file, nothing saved


def test_save_encode_failing_while_writing_is_one_line_and_leaves_nothing(media: Media, tmp_path: Path) -> None:
    """A real write error mid-stream (EFBIG: the file-size limit of the vmafx process is 64 KiB)."""
    import resource

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    saved = tmp_path / "big.nut"
    proc = subprocess.run([sys.executable, "-m", "vmafx_core", "run", str(media.ref), "--encode", "libx264",
                           "--crf", "0", "--json", "--save-encode", str(saved)],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, preexec_fn=limit_file_size)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert proc.stderr.strip() == f"vmafx: error: --save-encode {saved}: writing failed (File too large)"
    assert list(tmp_path.iterdir()) == []
