"""Encode a reference that streams from S3, and stream the encode back to S3 with rclone rcat."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from testkit.cli import run_vmafx
from testkit.media import Media, clip_720p
from testkit.procs import alive, children, cmdline


def test_encode_from_s3_saved_to_s3(s3_server: Any, bucket: str, media: Media, tmp_path: Path) -> None:
    s3_server.put_file(bucket, "src/ref.mp4", media.ref)
    out = run_vmafx("run", f"s3://{bucket}/src/ref.mp4", "--encode", "libx264", "--crf", "32", "--json",
                    "--save-encode", f"s3://{bucket}/encodes/crf32.nut", env=s3_server.rclone_env())
    assert out.code == 0, out.stderr
    result = out.json()
    stat = s3_server.client().stat_object(bucket, "encodes/crf32.nut")
    assert result["encode"]["encoded_bytes"] == stat.size > 0
    assert result["provenance"]["storage"] == {"reference": "rclone-http", "distorted": "encode"}
    assert s3_server.secret_key not in out.stdout + out.stderr

    # the saved object scores exactly as the stream did
    local = tmp_path / "crf32.nut"
    s3_server.client().fget_object(bucket, "encodes/crf32.nut", str(local))
    again = run_vmafx("run", str(media.ref), str(local), "--json")
    assert again.code == 0, again.stderr
    assert again.json()["metrics"]["vmaf"] == result["metrics"]["vmaf"]


def _one_line(out: Any) -> str:
    """The one `vmafx: error:` line of the run's stderr; at most the usual hint follows it, never a traceback."""
    lines = out.stderr.strip().splitlines()
    assert lines and lines[0].startswith("vmafx: error: --save-encode "), out.stderr
    assert lines[1:] in ([], ["  (run `vmafx -v run ...` to see ffmpeg's/rclone's last lines)"]), out.stderr
    return str(lines[0])


def _nothing_listens() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_save_encode_remote_destination_is_checked_before_encoding(s3_server: Any, bucket: str, media: Media) -> None:
    env = s3_server.rclone_env()
    unknown = run_vmafx("run", str(media.ref), "--encode", "libx264", "--save-encode", "nosuchremote:e/x.nut",
                        env=env, timeout=60)
    assert unknown.code == 2 and "unknown rclone remote 'nosuchremote'" in _one_line(unknown)

    s3_server.put_bytes(bucket, "encodes/old.nut", b"x")
    folder = run_vmafx("run", str(media.ref), "--encode", "libx264", "--save-encode", f"s3://{bucket}/encodes",
                       env=env, timeout=60)
    assert folder.code == 2 and _one_line(folder) == f"vmafx: error: --save-encode s3://{bucket}/encodes: is a " \
                                                     "folder; give a file name"

    dead = {k.replace("_S3_", "_DEAD_"): v for k, v in env.items()}
    dead["RCLONE_CONFIG_DEAD_ENDPOINT"] = f"http://127.0.0.1:{_nothing_listens()}"
    unreachable = run_vmafx("run", str(media.ref), "--encode", "libx264", "--save-encode", "dead:b/x.nut",
                            env=dead, timeout=60)
    assert unreachable.code == 3 and "cannot reach the server of remote 'dead'" in _one_line(unreachable)
    for out in (unknown, folder, unreachable):
        assert s3_server.secret_key not in out.stderr and out.stdout == ""
    names = [o.object_name for o in s3_server.client().list_objects(bucket, recursive=True)]
    assert names == ["encodes/old.nut"]


def test_save_encode_remote_failing_while_writing_is_one_line(s3_server: Any, bucket: str, media: Media) -> None:
    """rclone stops the upload mid-stream (its own transfer limit, from the user's environment)."""
    env = {**s3_server.rclone_env(), "RCLONE_MAX_TRANSFER": "16Ki"}
    out = run_vmafx("run", str(media.ref), "--encode", "libx264", "--crf", "0", "--save-encode",
                    f"s3://{bucket}/big.nut", env=env, timeout=120)
    assert out.code == 1 and out.stdout == "", out.stderr
    assert _one_line(out).startswith(f"vmafx: error: --save-encode s3://{bucket}/big.nut: rclone rcat")
    assert s3_server.secret_key not in out.stderr
    assert list(s3_server.client().list_objects(bucket, recursive=True)) == []


def test_ladder_from_s3_reads_the_reference_once_and_saves_each_rung(s3_server: Any, bucket: str, media: Media,
                                                                      tmp_path: Path) -> None:
    s3_server.put_file(bucket, "src/ref.mp4", media.ref)
    job = tmp_path / "ladder.toml"
    job.write_text(f'id = "lad"\n[reference]\nuri = "s3://{bucket}/src/ref.mp4"\n'
                   '[[ladder]]\nencoder = "libx264"\ncrf = 24\n'
                   '[[ladder]]\nencoder = "libx264"\ncrf = 36\nsize = "160x120"\n')
    out = run_vmafx("run", "--job", str(job), "--json", "--save-encode", f"s3://{bucket}/enc/rung-{{rung}}.nut",
                    env=s3_server.rclone_env())
    assert out.code == 0, out.stderr
    assert s3_server.secret_key not in out.stdout + out.stderr
    for index, rung in enumerate(out.json()["rungs"]):
        assert rung["provenance"]["ladder"]["mode"] == "shared"
        assert rung["provenance"]["storage"] == {"reference": "rclone-http", "distorted": "encode"}
        stat = s3_server.client().stat_object(bucket, f"enc/rung-{index}.nut")
        assert rung["encode"]["encoded_bytes"] == stat.size > 0
        # the saved object scores locally exactly as the rung did from S3
        local = tmp_path / f"rung-{index}.nut"
        s3_server.client().fget_object(bucket, f"enc/rung-{index}.nut", str(local))
        again = run_vmafx("run", str(media.ref), str(local), "--json")
        assert again.code == 0, again.stderr
        assert again.json()["metrics"]["vmaf"] == rung["metrics"]["vmaf"]


def test_ctrl_c_during_a_ladder_from_s3_leaves_nothing(s3_server: Any, bucket: str, tmp_path: Path) -> None:
    clip = clip_720p(tmp_path / "long.mp4", 40)
    s3_server.put_file(bucket, "src/long.mp4", clip)
    job = tmp_path / "ladder.toml"
    job.write_text(f'[reference]\nuri = "s3://{bucket}/src/long.mp4"\n' +
                   "".join(f'[[ladder]]\nencoder = "libx264"\ncrf = {crf}\npreset = "veryslow"\n' for crf in (24, 34)))
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", "--job", str(job), "--json",
                             "--save-encode", f"s3://{bucket}/enc/r-{{rung}}.nut"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **s3_server.rclone_env()})
    encoder = None
    deadline = time.monotonic() + 60
    while encoder is None and time.monotonic() < deadline:
        encoder = next((pid for pid in children(proc.pid) if b"tee" in cmdline(pid).split(b"\0")), None)
        time.sleep(0.05)
    assert encoder is not None, "the shared encoder never started"
    time.sleep(1.0)
    kids = children(proc.pid)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stdout == "" and "Traceback" not in stderr and s3_server.secret_key not in stderr
    assert not any(alive(pid) for pid in kids)
    names = [o.object_name for o in s3_server.client().list_objects(bucket, recursive=True)]
    assert names == ["src/long.mp4"]  # no saved rung, no partial upload
