"""The installed plugins' entry points are kept between runs, and scanned again once sys.path changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LIST = ("import json, sys; from vmafx_core.plugins import Plugins; p = Plugins(); "
        "print(json.dumps({'plugins': sorted((i.name, i.package) for i in p.infos), "
        "'scanned': 'importlib.metadata' in sys.modules}))")


def _run(cache: Path, extra_path: Path | None = None) -> dict[str, object]:
    env = {**os.environ, "VMAFX_CACHE_DIR": str(cache)}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", LIST], capture_output=True, text=True, env=env, timeout=60,
                          check=True)
    data: dict[str, object] = json.loads(done.stdout)
    return data


def test_second_run_uses_the_kept_list_and_a_new_package_is_seen(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _run(cache)
    assert first["scanned"] and ["local", "vmafx-local"] in first["plugins"]  # type: ignore[operator]
    second = _run(cache)
    assert second == {**first, "scanned": False}
    # a package installed into a folder on sys.path: the key changes, the new plugin is found
    site = tmp_path / "site"
    dist = site / "vmafx_extra-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vmafx-extra\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[vmafx]\nextra = vmafx_extra_plugin\n")
    (site / "vmafx_extra_plugin.py").write_text("")
    third = _run(cache, site)
    assert third["scanned"] and ["extra", "vmafx-extra"] in third["plugins"]  # type: ignore[operator]
    assert _run(cache, site) == {**third, "scanned": False}


def test_unreadable_cache_means_a_scan(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "entry-points.json").write_text("[1, 2")
    assert _run(cache)["scanned"]
