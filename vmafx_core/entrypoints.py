"""The `vmafx` entry points of the installed packages, without importing importlib.metadata each run.

`importlib.metadata` (with the email, zipfile and csv modules it pulls in) costs about 20 ms of a
`vmafx run` that otherwise imports in ~75 ms. What it finds changes only when packages are
installed or removed, which changes the folders on `sys.path` (pip adds, renames or removes a
`*.dist-info` folder in them). So the answer is kept, keyed by every `sys.path` folder and its
mtime, in `$VMAFX_CACHE_DIR/entry-points.json` (see `vmafx_core.binfacts`); any difference means
a fresh scan. `vmafx plugins` and `vmafx doctor` always scan afresh.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from typing import Any

import attrs

from vmafx_core import binfacts

log = logging.getLogger(__name__)

FILE_NAME = "entry-points.json"
_VALUE = re.compile(r"^\s*(?P<module>[\w.]+)\s*(?::\s*(?P<attr>[\w.]+)\s*)?(?:\[.*\])?\s*$")


@attrs.frozen
class Distribution:
    name: str
    version: str


@attrs.frozen
class EntryPoint:
    """What vmafx uses of `importlib.metadata.EntryPoint`: name, value, dist, load()."""

    name: str
    value: str
    group: str
    dist: Distribution | None = None

    def load(self) -> Any:
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"entry point {self.name} = {self.value!r} is not 'module:attribute'")
        found: Any = importlib.import_module(match.group("module"))
        for part in (match.group("attr") or "").split("."):
            if part:
                found = getattr(found, part)
        return found


def _path_key() -> list[list[Any]]:
    """Every sys.path folder with its mtime; the working directory (`python -m`, `-c`) by name only:
    every file a user writes there would otherwise throw the list away."""
    key: list[list[Any]] = []
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = ""
    for entry in sys.path:
        if entry in ("", ".", cwd):
            key.append([entry, "cwd"])
            continue
        try:
            key.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            key.append([entry, None])
    return key


def _scan(group: str) -> list[EntryPoint]:
    import importlib.metadata

    found = []
    for ep in importlib.metadata.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        found.append(EntryPoint(ep.name, ep.value, group,
                                Distribution(dist.name, dist.version) if dist is not None else None))
    return found


def entry_points(group: str, *, fresh: bool = False) -> list[EntryPoint]:
    """The entry points of `group`, from the cache when `sys.path` has not changed since it was made."""
    file = os.path.join(binfacts.cache_dir(), FILE_NAME)
    key = _path_key()
    slot = f"{group}|{sys.prefix}"  # one per environment: two venvs do not evict each other
    if not fresh:
        saved = binfacts.read_table(file).get(slot)
        try:
            if isinstance(saved, dict) and saved.get("sys_path") == key:
                return [EntryPoint(e["name"], e["value"], group,
                                   Distribution(**e["dist"]) if e.get("dist") else None) for e in saved["entries"]]
        except (AttributeError, KeyError, TypeError):  # an entry of some other shape: scan
            pass
    found = _scan(group)
    try:
        binfacts.keep(file, slot, {"sys_path": key, "entries": [
            {"name": e.name, "value": e.value, "dist": attrs.asdict(e.dist) if e.dist else None} for e in found]})
    except OSError as exc:
        log.debug("could not keep the entry points in %s: %s", file, exc)
    return found

