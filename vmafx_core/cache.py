"""The result cache: a job whose numbers cannot have changed is answered from its earlier result.

A result is reused only when everything that decides a number is the same as when it was stored:

- each input's identity as its storage backend reports it (`PreparedInput.identity`: for a local
  file its real path, size, mtime, ctime, device and inode; for an object read through rclone its
  remote path, size, modification time and ETag/hash as rclone reports them). An input without an
  identity (an encode streamed in, an http(s) URL ffmpeg reads itself) is never cached;
- the job's data that scoring reads: the inputs and their raw geometry, the scorer's name and its
  options as structured (so defaults and spellings are normalised), the alignment settings;
  limits, storage choices and the job's id do not change a number and are left out;
- what the scorer's `cache_facts` adds (libvmaf: the SHA-256 of each model file the job names,
  "all cores" as the thread count it means here), the ffmpeg binary (real path, inode, size, mtime)
  and its version, the vmafx version, the scorer's package and version, and a digest of the code
  itself (every .py file of the core and of the scorer's package: an editable install changed
  since, or a fix released under the same version number, is a miss).

All of these are hashed (SHA-256) into the key; an entry is one JSON file
`<folder>/<key[:2]>/<key>.json` with the result and its per-frame values, written atomically. An
entry that cannot be read, is not JSON, or does not hold what it should is a miss with a warning,
never an error. The folder is `$VMAFX_CACHE_DIR/results` (default `~/.cache/vmafx/results`) or
what `--cache-dir` says. `vmafx run` uses the cache with `--cache`; `vmafx batch` uses it unless
`--no-cache` is given (or `VMAFX_RESULT_CACHE=off` is set); on a Dask cluster each worker uses the
`--cache-dir` folder (as a path on the worker) or else its own default (`batch_setting`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from vmafx_core import __version__, binfacts

log = logging.getLogger(__name__)

#: bumped when the entry's layout or what the key covers changes: older entries become misses
ENTRY_VERSION = 1


def default_folder() -> str:
    return os.path.join(binfacts.cache_dir(), "results")


def local_identity(path: str) -> str | None:
    """A local file's identity: real path, size, mtime and ctime (ns), device and inode.

    A file rewritten in place (even to the same size) changes its mtime and ctime; setting the
    mtime back by hand still changes the ctime.
    """
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return (f"local:{real}|size={st.st_size}|mtime_ns={st.st_mtime_ns}|ctime_ns={st.st_ctime_ns}"
            f"|dev={st.st_dev}|ino={st.st_ino}")


@attrs.frozen
class ResultCache:
    """Entries in one folder."""

    folder: str

    def path(self, key: str) -> str:
        return os.path.join(self.folder, key[:2], key + ".json")

    def lookup(self, key: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The stored result and frames under `key`, or None (missing, or unusable: with a warning)."""
        path = self.path(key)
        try:
            with open(path, encoding="utf-8") as fh:
                entry = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("result cache entry %s is unreadable (%s); scoring again", path, exc)
            return None
        if (not isinstance(entry, dict) or entry.get("version") != ENTRY_VERSION or entry.get("key") != key
                or not isinstance(entry.get("result"), dict) or not isinstance(entry.get("frames"), list)):
            log.warning("result cache entry %s does not hold a result for its key; scoring again", path)
            return None
        return entry["result"], entry["frames"]

    def store(self, key: str, result: Mapping[str, Any], frames: Sequence[Mapping[str, Any]]) -> None:
        """Keep a result; a cache that cannot be written costs a warning, never the job."""
        from vmafx_core.result import write_atomically

        stored_at = round(time.time(), 3)
        entry = {"version": ENTRY_VERSION, "key": key, "stored_at": stored_at,
                 "result": {**result, "cache": {"key": key, "stored_at": stored_at}},
                 "frames": [dict(f) for f in frames]}
        try:
            write_atomically(Path(self.path(key)), json.dumps(entry, separators=(",", ":")))
        except (OSError, TypeError, ValueError) as exc:
            log.warning("could not keep the result in the cache at %s: %s", self.folder, exc)


def job_material(job: Any, options: Any, scorer_facts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What of a job decides its numbers, as plain data (see the module's docstring); the scorer's
    facts (`Scorer.cache_facts`) over its options' values."""
    from vmafx_core.job import converter

    data = converter.unstructure(job)
    scorer_options = converter.unstructure(options) if options is not None else job.scorer_options
    if scorer_facts and isinstance(scorer_options, dict):
        scorer_options = {**scorer_options, **scorer_facts}
    return {
        "reference": data.get("reference"),
        "distorted": data.get("distorted"),
        "scorer": job.scorer_name,
        "options": scorer_options,
        "alignment": data.get("alignment"),
    }


@functools.cache
def code_digest(package: str) -> str:
    """SHA-256 over the .py files of the importable package `package` (paths and contents)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return "unknown"
    digest = hashlib.sha256()
    for location in spec.submodule_search_locations:
        root = Path(location)
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def make_key(job: Any, options: Any, identities: Sequence[str | None], ffmpeg: str,
             scorer_release: str = "unknown", scorer_module: str = "",
             scorer_facts: Mapping[str, Any] | None = None) -> str | None:
    """The entry's key, or None when something cannot be pinned down (then the job is not cached).

    `scorer_facts` is what the scorer's `cache_facts` adds beyond its options as structured (a
    model file's digest, "all cores" as the count it means here).
    """
    from vmafx_core.ffmpeg import ffmpeg_info

    if job.encode is not None or job.ladder or any(i is None for i in identities):
        return None
    binary = binfacts.identity(ffmpeg)
    if binary is None:
        return None
    code = sorted({code_digest("vmafx_core"), *([code_digest(scorer_module.split(".")[0])] if scorer_module else [])})
    material = {"entry": ENTRY_VERSION, "vmafx": __version__, "scorer_release": scorer_release, "code": code,
                "ffmpeg": binary,
                "ffmpeg_version": ffmpeg_info(ffmpeg).version, "inputs": list(identities),
                "job": job_material(job, options, scorer_facts)}
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ---- the process's default: what `vmafx batch` turns on ---------------------------------------

#: `VMAFX_RESULT_CACHE=off` in the environment: batches do not use the cache (as with --no-cache)
ENV_OFF = "VMAFX_RESULT_CACHE"
_batch_folder: str | None = None


def process_default() -> ResultCache | None:
    """The cache jobs of this process use when their caller named none (set by `vmafx batch`)."""
    return _process_default


_process_default: ResultCache | None = None


def set_process_default(cache: ResultCache | None) -> None:
    global _process_default
    _process_default = cache


def batch_setting() -> str | None:
    """The batch's cache as a Dask worker should use it: None (off), "" (the worker's own default
    folder) or the folder `--cache-dir` named."""
    if process_default() is None:
        return None
    return _batch_folder or ""


def use_for_batch(enabled: bool, folder: str | None) -> None:
    """The cache every job of a batch uses (`vmafx batch`, on unless --no-cache or
    `VMAFX_RESULT_CACHE=off`), in `folder` (default: `default_folder()`)."""
    global _batch_folder
    _batch_folder = folder
    off = os.environ.get(ENV_OFF, "").strip().lower() in ("off", "0", "no", "false")
    set_process_default(ResultCache(folder or default_folder()) if enabled and not off else None)
