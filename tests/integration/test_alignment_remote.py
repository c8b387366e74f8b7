"""Alignment over rclone-http: the same pairing, sync and resampling as local files, to the bit.

The prefix reads that alignment adds (the sync search) go through the same storage as the
scoring pass; the scores must equal the local run and the hand-paired truth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit.alignment_media import (
    RATES,
    Clip,
    assert_matches,
    bare_raw_vmaf,
    decode_raw,
    encode_clip,
    make_distorted,
    make_reference,
    raw_frames,
    write_raw,
)
from testkit.cli import run_vmafx

pytestmark = pytest.mark.integration


def _remote(s3_server: Any, bucket: str, tmp_path: Path, ref: Clip, dis: Clip, *flags: str) -> tuple[Any, list]:
    s3_server.put_file(bucket, f"a/{ref.path.name}", ref.path)
    s3_server.put_file(bucket, f"a/{dis.path.name}", dis.path)
    frames = tmp_path / "remote-frames.json"
    out = run_vmafx("run", f"s3://{bucket}/a/{ref.path.name}", f"s3://{bucket}/a/{dis.path.name}", "--json",
                    "--n-threads", "2", "--frames", str(frames), *flags, env=s3_server.rclone_env())
    return out, ([row["vmaf"] for row in json.loads(frames.read_text())] if out.code == 0 else [])


def test_mixed_time_bases_over_http_equal_truth_and_local(s3_server: Any, bucket: str, tmp_path: Path) -> None:
    ref = make_reference(tmp_path, ".mp4", RATES["29.97"])
    dis = make_distorted(tmp_path, ref, ".mkv")
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    assert decode_raw(ref, ref_yuv) == decode_raw(dis, dis_yuv) == 24
    truth = bare_raw_vmaf(ref_yuv, dis_yuv, tmp_path / "truth.json")
    out, per_frame = _remote(s3_server, bucket, tmp_path, ref, dis)
    remote = assert_matches(out, per_frame, truth)
    local = run_vmafx("run", str(ref.path), str(dis.path), "--json", "--n-threads", "2")
    assert local.code == 0 and local.json()["metrics"] == remote["metrics"]
    assert remote["provenance"]["storage"]["reference"] == "rclone-http"


def test_sync_over_http_finds_the_offset(s3_server: Any, bucket: str, tmp_path: Path) -> None:
    master = raw_frames(make_reference(tmp_path, ".yuv", "25", frames=32, name="master").path)
    ref = encode_clip(write_raw(tmp_path / "ref-src.yuv", master[2:], "25"), tmp_path / "ref.mp4")
    dis = encode_clip(write_raw(tmp_path / "dis-src.yuv", master, "25"), tmp_path / "dis.mkv", "mid")
    ref_yuv, dis_yuv = tmp_path / "r.yuv", tmp_path / "d.yuv"
    decode_raw(ref, ref_yuv)
    decode_raw(dis, dis_yuv)
    write_raw(tmp_path / "d2.yuv", raw_frames(dis_yuv)[2:], "25")
    truth = bare_raw_vmaf(ref_yuv, tmp_path / "d2.yuv", tmp_path / "truth.json")
    out, per_frame = _remote(s3_server, bucket, tmp_path, ref, dis, "--sync", "auto")
    result = assert_matches(out, per_frame, truth)
    assert result["provenance"]["alignment"]["sync"]["offset"] == 2
