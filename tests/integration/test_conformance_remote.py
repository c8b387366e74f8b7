"""Both rclone backends against the storage conformance suite plugin authors get (`vmafx_core.testing`),
over a real S3 server: the kit works for a remote backend as it does for local files and zip members."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from testkit.s3server import S3Server
from vmafx_core.testing.storage import StorageBackendTests

pytestmark = pytest.mark.integration


class _OverS3(StorageBackendTests):
    s3: S3Server
    bucket: str

    @pytest.fixture(autouse=True)
    def _store(self, s3_server: S3Server, bucket: str) -> None:
        self.s3, self.bucket = s3_server, bucket

    def uri_for(self, path: Path, folder: Path) -> str:
        key = f"{secrets.token_hex(4)}/{path.name}"
        self.s3.put_file(self.bucket, key, path)
        return f"s3://{self.bucket}/{key}"

    def missing_uri(self, folder: Path) -> str:
        return f"s3://{self.bucket}/no-such-object.mp4"

    def extra_env(self) -> dict[str, str]:
        return self.s3.rclone_env()


class TestRcloneHttpConformance(_OverS3):
    backend = storage = "rclone-http"


class TestRcloneMountConformance(_OverS3):
    backend = storage = "rclone-mount"
