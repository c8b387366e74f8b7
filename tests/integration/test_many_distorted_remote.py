"""Several distorted against one reference, all read through rclone from a real S3 server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testkit.cli import run_vmafx
from testkit.media import Media, ffmpeg_run

pytestmark = pytest.mark.integration


def test_grouped_from_s3_equals_separate_runs(s3_server: Any, bucket: str, media: Media, tmp_path: Path) -> None:
    second = tmp_path / "dis2.mp4"
    ffmpeg_run("-i", str(media.ref), "-c:v", "libx264", "-crf", "40", str(second))
    for key, path in {"g/ref.mp4": media.ref, "g/dis.mp4": media.dis, "g/dis2.mp4": second}.items():
        s3_server.put_file(bucket, key, path)
    uris = [f"s3://{bucket}/g/{name}" for name in ("ref.mp4", "dis.mp4", "nope.mp4", "dis2.mp4")]
    done = run_vmafx("run", *uris, "--json", env=s3_server.rclone_env())
    assert done.code == 2, done.stderr  # the missing object's code; the others are scored
    assert s3_server.secret_key not in done.stdout + done.stderr
    rows = done.json()
    assert rows[1]["schema"] == "vmafx.error" and "no such object" in rows[1]["error"]
    for row, uri in ((rows[0], uris[1]), (rows[2], uris[3])):
        assert row["provenance"]["group"]["size"] == 2
        assert row["provenance"]["storage"] == {"reference": "rclone-http", "distorted": "rclone-http"}
        alone = run_vmafx("run", uris[0], uri, "--json", env=s3_server.rclone_env())
        assert alone.code == 0, alone.stderr
        for metric, pooled in alone.json()["metrics"].items():
            assert row["metrics"][metric] == pytest.approx(pooled, abs=1e-6)
