"""rclone-http against a real S3 server in a container: real rclone, real ffmpeg, no mocks.

Every score read through rclone must equal the score of the same files read locally, pooled and
frame by frame; failures must be one clear line with the documented exit code; the S3 secret must
never show in any process's argv; a 1 GiB source must stream with nothing written to disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.media import BIG_H, BIG_W, Media, ffmpeg_run, upload_gib_raw
from testkit.watch import Watcher

pytestmark = pytest.mark.integration


def _env(s3_server: Any, **extra: str) -> dict[str, str]:
    return {**s3_server.rclone_env(), **extra}


def _upload(s3_server: Any, bucket: str, files: dict[str, Path]) -> None:
    for key, path in files.items():
        s3_server.put_file(bucket, key, path)


def _scores(out: Any, frames: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    assert out.code == 0, out.stderr
    return out.json(), json.loads(frames.read_text())


def _same_scores(local: tuple[dict[str, Any], list[dict[str, Any]]],
                 remote: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    assert remote[0]["metrics"] == local[0]["metrics"]
    assert remote[1] == local[1]
    assert remote[0]["frames_scored"] == local[0]["frames_scored"]


def test_s3_pair_scores_exactly_like_local(s3_server: Any, bucket: str, media: Media, tmp_path: Path) -> None:
    _upload(s3_server, bucket, {"clips/ref.mp4": media.ref, "clips/dis.mp4": media.dis})
    local = _scores(run_vmafx("run", str(media.ref), str(media.dis), "--json", "--frames", str(tmp_path / "l.json")),
                    tmp_path / "l.json")
    out = run_vmafx("run", f"s3://{bucket}/clips/ref.mp4", f"s3://{bucket}/clips/dis.mp4", "--json",
                    "--frames", str(tmp_path / "r.json"), env=_env(s3_server))
    remote = _scores(out, tmp_path / "r.json")
    _same_scores(local, remote)
    result = remote[0]
    assert result["provenance"]["storage"] == {"reference": "rclone-http", "distorted": "rclone-http"}
    assert result["reference"]["uri"] == f"s3://{bucket}/clips/ref.mp4"
    assert result["reference"]["size"] == media.ref.stat().st_size
    assert s3_server.secret_key not in out.stdout + out.stderr


def test_moov_at_end_needs_range_requests_and_scores_correctly(s3_server: Any, bucket: str, media: Media,
                                                              tmp_path: Path) -> None:
    moov_end = tmp_path / "moov_end.mp4"
    faststart = tmp_path / "faststart.mp4"
    ffmpeg_run("-i", str(media.dis), "-c", "copy", str(moov_end))
    ffmpeg_run("-i", str(media.dis), "-c", "copy", "-movflags", "+faststart", str(faststart))
    data = moov_end.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")  # the index really is at the end
    _upload(s3_server, bucket, {"ref.mp4": media.ref, "moov end.mp4": moov_end})
    local = _scores(run_vmafx("run", str(media.ref), str(moov_end), "--json", "--frames", str(tmp_path / "l.json")),
                    tmp_path / "l.json")
    remote = _scores(run_vmafx("run", f"s3://{bucket}/ref.mp4", f"s3://{bucket}/moov end.mp4", "--json",
                               "--frames", str(tmp_path / "r.json"), env=_env(s3_server)), tmp_path / "r.json")
    _same_scores(local, remote)


@pytest.mark.parametrize("bits", [8, 10])
def test_raw_yuv_pair_over_http(s3_server: Any, bucket: str, media: Media, tmp_path: Path, bits: int) -> None:
    pix_fmt = "yuv420p" if bits == 8 else "yuv420p10le"
    ref, dis = (media.ref_yuv, media.dis_yuv) if bits == 8 else (media.ref_yuv10, media.dis_yuv10)
    _upload(s3_server, bucket, {"raw/ref #1.yuv": ref, "raw/dis 100%.raw": dis})
    raw = ["--width", "320", "--height", "240", "--pix-fmt", pix_fmt, "--fps", "24"]
    local = _scores(run_vmafx("run", str(ref), str(dis), *raw, "--json", "--frames", str(tmp_path / "l.json")),
                    tmp_path / "l.json")
    remote = _scores(run_vmafx("run", f"s3://{bucket}/raw/ref #1.yuv", f"s3://{bucket}/raw/dis 100%.raw", *raw,
                               "--json", "--frames", str(tmp_path / "r.json"), env=_env(s3_server)),
                     tmp_path / "r.json")
    _same_scores(local, remote)
    assert remote[0]["frames_scored"] == media.frames


def test_rclone_remote_syntax_and_mixed_local_remote(s3_server: Any, bucket: str, media: Media,
                                                     tmp_path: Path) -> None:
    _upload(s3_server, bucket, {"dir/ünïcode ref?.mp4": media.ref})
    out = run_vmafx("run", f"s3:{bucket}/dir/ünïcode ref?.mp4", str(media.dis), "--json", env=_env(s3_server))
    assert out.code == 0, out.stderr
    result = out.json()
    assert result["provenance"]["storage"] == {"reference": "rclone-http", "distorted": "local"}
    local = run_vmafx("run", str(media.ref), str(media.dis), "--json")
    assert result["metrics"]["vmaf"] == local.json()["metrics"]["vmaf"]


def test_readme_remote_storage_example_works_as_written(s3_server: Any, media: Media, tmp_path: Path) -> None:
    """The README's Remote storage commands, run as written with the test server's address and keys."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("<!-- remote-example -->")[1].split("```sh\n")[1].split("```")[0]
    s3_server.make_bucket("videos")
    _upload(s3_server, "videos", {"ref.mp4": media.ref, "dis.mp4": media.dis})
    script = (block.replace("http://127.0.0.1:9000", s3_server.endpoint)
              .replace("YOUR_ACCESS_KEY", s3_server.access_key)
              .replace("YOUR_SECRET_KEY", s3_server.secret_key)
              .replace("vmafx run", f"{sys.executable} -m vmafx_core run"))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("VMAF ")
    local = run_vmafx("run", str(media.ref), str(media.dis), "--json").json()
    assert proc.stdout.strip() == f"VMAF {local['metrics']['vmaf']['mean']:.6f}"


def test_missing_object_is_one_clear_line(s3_server: Any, bucket: str, media: Media) -> None:
    _upload(s3_server, bucket, {"ref.mp4": media.ref})
    out = run_vmafx("run", f"s3://{bucket}/ref.mp4", f"s3://{bucket}/nope.mp4", env=_env(s3_server))
    assert out.code == 2
    assert out.stderr.strip().splitlines()[0] == f"vmafx: error: distorted s3://{bucket}/nope.mp4: no such object " \
                                                 "(checked through rclone)"


def test_wrong_credentials_are_one_clear_line(s3_server: Any, bucket: str, media: Media) -> None:
    _upload(s3_server, bucket, {"ref.mp4": media.ref, "dis.mp4": media.dis})
    env = _env(s3_server, RCLONE_CONFIG_S3_SECRET_ACCESS_KEY="wrong-" + s3_server.secret_key[:8])
    out = run_vmafx("run", f"s3://{bucket}/ref.mp4", f"s3://{bucket}/dis.mp4", env=env)
    assert out.code == 3, out.stderr
    first = out.stderr.strip().splitlines()[0]
    assert first.startswith("vmafx: error: ") and "credentials" in first
    assert "wrong-" not in out.stderr and s3_server.secret_key not in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_remote_is_one_clear_line(s3_server: Any, media: Media) -> None:
    out = run_vmafx("run", "nosuchremote:bucket/ref.mp4", str(media.dis), env=_env(s3_server))
    assert out.code == 2
    first = out.stderr.strip().splitlines()[0]
    assert "nosuchremote" in first and "remote" in first
    assert "Traceback" not in out.stderr


def test_secret_never_in_any_argv(s3_server: Any, bucket: str, media: Media) -> None:
    _upload(s3_server, bucket, {"ref.mp4": media.ref, "dis.mp4": media.dis})
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", f"s3://{bucket}/ref.mp4",
                             f"s3://{bucket}/dis.mp4", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **_env(s3_server)})
    watcher = Watcher(proc.pid)
    stdout, stderr = proc.communicate(timeout=300)
    watcher.stop()
    assert proc.returncode == 0, stderr
    assert watcher.named(b"rclone"), "no rclone process was seen"
    assert watcher.named(b"ffmpeg"), "no ffmpeg process was seen"
    for pid, cmdline in watcher.cmdlines.items():
        assert s3_server.secret_key.encode() not in cmdline, f"secret in argv of pid {pid}"
        assert s3_server.access_key.encode() not in cmdline, f"access key in argv of pid {pid}"
    assert s3_server.secret_key.encode() not in stdout + stderr


def test_one_gib_source_streams_without_writing_to_disk(s3_server: Any, bucket: str, tmp_path: Path) -> None:
    """A 1 GiB raw source, read twice (reference and distorted), with zero media bytes on local disk."""
    width, height = BIG_W, BIG_H
    frames, size = upload_gib_raw(s3_server, bucket, "big/source.yuv", tmp_path)

    rclone_cache = Path.home() / ".cache" / "rclone"
    temp_before = set(os.listdir(tempfile.gettempdir()))
    cache_before = set(os.listdir(rclone_cache)) if rclone_cache.exists() else set()
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", f"s3://{bucket}/big/source.yuv",
                             f"s3://{bucket}/big/source.yuv", "--width", str(width), "--height", str(height),
                             "--pix-fmt", "yuv420p", "--fps", "25", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **_env(s3_server)})
    watcher = Watcher(proc.pid)
    stdout, stderr = proc.communicate(timeout=1200)
    watcher.stop()
    assert proc.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["frames_scored"] == frames
    assert result["reference"]["size"] == size

    def subcommand(pid: int) -> bytes:
        return (watcher.cmdlines[pid].split(b"\0") + [b""])[1]

    rclone = [p for p in watcher.named(b"rclone") if subcommand(p) == b"serve"]
    ffmpeg = [p for p in watcher.named(b"ffmpeg") if b"libvmaf" in watcher.cmdlines[p]]
    assert len(rclone) == 1, "reference and distorted share one server"
    # without the result cache no input's identity is looked up (an `rclone lsjson` each)
    assert [subcommand(p) for p in watcher.named(b"rclone")] == [b"serve"]
    assert ffmpeg
    assert sum(watcher.write_bytes.get(p, 0) for p in rclone) == 0
    # ffmpeg writes only libvmaf's log of scores: a few hundred bytes per frame, never media
    assert sum(watcher.write_bytes.get(p, 0) for p in ffmpeg) < 2000 * frames
    peak = max(watcher.peak_rss_kib[p] for p in rclone + ffmpeg if p in watcher.peak_rss_kib) * 1024
    assert peak < size / 4, f"peak RSS {peak / 2**20:.0f} MiB is not far below the {size / 2**20:.0f} MiB source"
    new_temp = set(os.listdir(tempfile.gettempdir())) - temp_before
    assert not {n for n in new_temp if n.startswith(("vmafx", "rclone"))}
    cache_after = set(os.listdir(rclone_cache)) if rclone_cache.exists() else set()
    assert cache_after == cache_before


CONTAINERS = {
    "mp4": ["-c:v", "libx264", "-preset", "ultrafast"],
    "mp4-faststart": ["-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart"],
    "mp4-with-audio": ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"],
    "mkv": ["-c:v", "libx264", "-preset", "ultrafast"],
    "webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
    "ts": ["-c:v", "libx264", "-preset", "ultrafast"],
}


@pytest.mark.parametrize("kind", list(CONTAINERS))
def test_container_facts_over_http_equal_the_local_ones(s3_server: Any, bucket: str, tmp_path: Path,
                                                        kind: str) -> None:
    """Duration and declared frame count (what the cut-short check compares with) are the same
    whether the file is read locally or through rclone serve http."""
    ext = kind.split("-")[0]
    path = tmp_path / f"clip.{ext}"
    audio = ["-f", "lavfi", "-i", "sine=duration=3"] if "audio" in kind else []
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30000/1001:duration=2", *audio,
               *CONTAINERS[kind], str(path))
    s3_server.put_file(bucket, path.name, path)
    local = run_vmafx("run", str(path), str(path), "--json")
    remote = run_vmafx("run", f"s3://{bucket}/{path.name}", f"s3://{bucket}/{path.name}", "--json",
                       env=s3_server.rclone_env())
    assert local.code == 0 and remote.code == 0, local.stderr + remote.stderr
    facts = [{k: out.json()["provenance"]["reference_stream"][k] for k in ("duration", "declared_frames")}
             for out in (local, remote)]
    assert facts[0] == facts[1], facts
    if kind in ("mp4", "mp4-faststart", "mkv", "webm"):
        assert facts[1]["declared_frames"] == 60, facts  # a count the check can use
