"""Ctrl-C and SIGTERM at any moment of a local job: always exit 130 with one line, nothing left."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.media import clip_720p
from tests.storm import storm


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clip_720p(tmp_path_factory.mktemp("storm") / "long.mp4", 20)  # far longer than the 1 s window


def test_signals_at_random_moments_of_a_local_job(long_clip: Path) -> None:
    failed = storm(["run", str(long_clip), str(long_clip), "--n-threads", "1"])
    assert not failed, "\n".join(o.describe() for o in failed[:5])
