"""What the result cache's key covers: everything that changes a number, nothing that does not."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vmafx_core.cache import code_digest, make_key
from vmafx_core.ffmpeg import find_ffmpeg
from vmafx_core.job import parse_job
from vmafx_core.plugins import Plugins

IDS = ["local:/r|size=1", "local:/d|size=2"]


def _key(data: dict[str, Any], identities: list[str | None] = IDS) -> str | None:
    plugins = Plugins()
    job, options = parse_job({"reference": {"uri": "/r.mkv"}, "distorted": {"uri": "/d.mkv"}, **data}, "test",
                             lambda n: plugins.scorers()[n].item.options_type)
    facts = plugins.scorer(job.scorer_name).cache_facts
    assert facts is not None
    scorer_facts = facts(options)
    if scorer_facts is None:
        return None
    return make_key(job, options, identities, find_ffmpeg(), scorer_facts=scorer_facts)


def test_what_changes_no_number_keeps_the_key() -> None:
    base = _key({})
    assert base is not None
    assert _key({"id": "x", "limits": {"timeout": 5}, "storage": "local", "storage_options": {"a": 1}}) == base
    assert _key({"scorer": {"name": "libvmaf", "model": "vmaf_v0.6.1"}}) == base


def test_what_changes_a_number_changes_the_key() -> None:
    base = _key({})
    assert _key({"alignment": {"scale_filter": "lanczos"}}) != base
    assert _key({"scorer": {"name": "libvmaf", "features": ["psnr"]}}) != base
    assert _key({"scorer": {"name": "libvmaf", "model": "vmaf_v0.6.1:enable_transform=true"}}) != base
    assert _key({}, ["local:/r|size=1", "local:/d|size=3"]) != base
    assert _key({}, ["local:/r|size=1", None]) is None  # an input without identity is never cached


def test_a_model_file_edited_in_place_changes_the_key(tmp_path: Path) -> None:
    model = tmp_path / "model.json"
    model.write_text('{"a": 1}')
    first = _key({"scorer": {"name": "libvmaf", "model": str(model)}})
    assert first is not None
    stat = model.stat()
    model.write_text('{"a": 2}')  # same size, within the same clock tick: its content tells
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _key({"scorer": {"name": "libvmaf", "model": str(model)}}) not in (first, None)
    model.unlink()
    assert _key({"scorer": {"name": "libvmaf", "model": str(model)}}) is None


def test_the_scorers_release_and_code_are_in_the_key(tmp_path: Path, monkeypatch: Any) -> None:
    plugins = Plugins()
    job, options = parse_job({"reference": {"uri": "/r.mkv"}, "distorted": {"uri": "/d.mkv"}}, "test",
                             lambda n: plugins.scorers()[n].item.options_type)
    base = make_key(job, options, IDS, find_ffmpeg(), "vmafx 0.1.0", "vmafx_core.scorers.libvmaf")
    assert make_key(job, options, IDS, find_ffmpeg(), "vmafx 0.1.1", "vmafx_core.scorers.libvmaf") != base
    # a package whose code changed under the same version number: another key
    package = tmp_path / "scorerpkg"
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = make_key(job, options, IDS, find_ffmpeg(), "scorerpkg 1", "scorerpkg.plugin")
    code_digest.cache_clear()
    (package / "__init__.py").write_text("X = 2\n")
    assert make_key(job, options, IDS, find_ffmpeg(), "scorerpkg 1", "scorerpkg.plugin") not in (first, None)
    code_digest.cache_clear()
