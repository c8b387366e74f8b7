"""docs/PLUGINS.md names every field of the storage descriptors (a backend is written from it alone)."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from vmafx_core.types import InputRequest, PrepareContext, PreparedInput, StorageBackend

DOC = (Path(__file__).resolve().parents[2] / "docs" / "PLUGINS.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("cls", [StorageBackend, PreparedInput, PrepareContext, InputRequest])
def test_every_storage_descriptor_field_is_documented(cls: type) -> None:
    missing = [f.name for f in attrs.fields(cls) if not re.search(rf"`(?:\w+\.)?{f.name}\b", DOC)]
    assert missing == [], f"docs/PLUGINS.md does not name {cls.__name__}.{', '.join(missing)}"
