"""Facts about an external binary (its version, whether ffmpeg has libvmaf), kept between runs.

Asking costs a process start per job: `ffmpeg -filters` about 25 ms, `rclone version` 50-100 ms
(it runs lsb_release, a shell script). A fact is kept per binary identity (real path, device,
inode, size, mtime), so a rebuilt or replaced binary is asked again, in one small JSON file:
`$VMAFX_CACHE_DIR/binaries.json`, by default `~/.cache/vmafx/`. Only successful answers are
kept; anything wrong with the file costs one more question, never an error.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmafx_core.files import write_atomically

log = logging.getLogger(__name__)

ENV_CACHE = "VMAFX_CACHE_DIR"
FILE_NAME = "binaries.json"


def cache_dir() -> str:
    return os.environ.get(ENV_CACHE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "vmafx")


def identity(path: str) -> str | None:
    """The binary at `path` as the cache knows it, or None when it cannot be stat'ed."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return f"{real}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}"


def read_table(file: str) -> dict[str, Any]:
    """A JSON object kept in `file`; empty when it is missing or not one."""
    try:
        with open(file, encoding="utf-8") as fh:
            table = json.load(fh)
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def keep(file: str, key: str, value: Any, still_valid: Callable[[str], bool] = lambda key: True) -> None:
    """Set `key` in the JSON object in `file`, dropping the keys `still_valid` refuses; OSError if it cannot.

    Written whole through a temp file: concurrent runs never see half, and the last writer wins.
    """
    table = {k: v for k, v in read_table(file).items() if still_valid(k)}
    table[key] = value
    write_atomically(Path(file), json.dumps(table, indent=1, sort_keys=True))


def remember(kind: str, path: str, ask: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The facts of `kind` about the binary at `path`: from the cache, else from `ask()` (then kept).

    `ask` raising means no answer: nothing is kept and the exception goes to the caller.
    """
    binary = identity(path)
    if binary is None:
        return ask()
    key = f"{kind}|{binary}"
    file = os.path.join(cache_dir(), FILE_NAME)
    facts = read_table(file).get(key)
    if isinstance(facts, dict):
        return facts
    facts = ask()
    try:
        keep(file, key, facts, still_valid=lambda k: os.path.exists(k.split("|", 2)[1]))  # forget removed
    except OSError as exc:
        log.debug("could not keep what %s said about itself in %s: %s", path, file, exc)
    return facts
