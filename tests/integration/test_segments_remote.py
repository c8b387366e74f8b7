"""A pair read from the S3 container in segments equals the whole run, frame by frame.

Every segment's ffmpeg reads the same `rclone serve http` through its ffconcat wrapper (the
credential never in an argv) and seeks in it; the index is read in-process by PyAV with the
credential in the URL. Scores must equal the whole remote run and the whole local run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.media import ffmpeg_run

pytestmark = pytest.mark.integration


def test_segments_over_http_equal_whole(s3_server: Any, bucket: str, tmp_path: Path) -> None:
    ref, dis = tmp_path / "ref.mp4", tmp_path / "dis.mkv"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25,trim=end_frame=100", "-c:v", "libx264",
               "-g", "25", "-bf", "3", "-crf", "12", str(ref))
    ffmpeg_run("-i", str(ref), "-vf", "scale=160:120", "-c:v", "libx264", "-g", "30", "-crf", "32", str(dis))
    for path in (ref, dis):
        s3_server.put_file(bucket, f"s/{path.name}", path)
    runs: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for name, inputs, segments in (("remote-whole", "s3", "1"), ("remote-split", "s3", "2"),
                                   ("local-whole", "local", "1")):
        frames = tmp_path / f"{name}.json"
        args = ([f"s3://{bucket}/s/{ref.name}", f"s3://{bucket}/s/{dis.name}"] if inputs == "s3"
                else [str(ref), str(dis)])
        out = run_vmafx("run", *args, "--json", "--segments", segments, "--frames", str(frames),
                        env=s3_server.rclone_env())
        assert out.code == 0, out.stderr
        runs[name] = (out.json(), json.loads(frames.read_text()))
    split, split_frames = runs["remote-split"]
    assert split["provenance"]["segments"]["count"] == 2, split["provenance"]["segments"]
    assert split["provenance"]["storage"]["reference"] == "rclone-http"
    assert split_frames == runs["remote-whole"][1] == runs["local-whole"][1]
    assert split["metrics"]["vmaf"]["mean"] == pytest.approx(runs["local-whole"][0]["metrics"]["vmaf"]["mean"],
                                                             abs=1e-6)
