"""The local backend against the storage conformance suite every backend can run (`vmafx_core.testing`)."""

from __future__ import annotations

from pathlib import Path

from vmafx_core.testing.storage import StorageBackendTests


class TestLocalConformance(StorageBackendTests):
    backend = "local"

    def uri_for(self, path: Path, folder: Path) -> str:
        return str(path)

    def missing_uri(self, folder: Path) -> str:
        return str(folder / "no-such-file.mp4")
