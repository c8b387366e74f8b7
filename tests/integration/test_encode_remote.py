"""Encode a reference that streams from S3, and stream the encode back to S3 with rclone rcat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Media, run_vmafx


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
