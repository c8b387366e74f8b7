"""Shared fixtures: small real videos made by the real ffmpeg (the makers and helpers live in testkit/)."""

from __future__ import annotations

import os

import pytest

from testkit.media import Media, make_media

# batches use the result cache by default; tests of scoring must score (tests/cli/test_cache.py
# turns it back on where the cache is what is tested)
os.environ["VMAFX_RESULT_CACHE"] = "off"


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """A 2 s 320x240 reference, a degraded 160x120 encode of it, a shorter one, and raw YUV pairs."""
    return make_media(tmp_path_factory.mktemp("media"))
