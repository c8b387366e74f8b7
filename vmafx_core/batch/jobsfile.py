"""The jobs file: one job per line of JSON Lines, each known by its `id` or a hash of its line."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from vmafx_core.errors import BadInput


@attrs.frozen
class Entry:
    """One line of the jobs file."""

    line: int
    id: str
    #: the job as given (None when the line is not a JSON object)
    data: Mapping[str, Any] | None
    #: why the line cannot be a job at all (not JSON, not an object)
    problem: str | None = None


def job_identity(data: Any, text: str) -> str:
    """The job's `id`, or a stable hash of its canonical JSON (key order and spacing do not matter)."""
    if isinstance(data, Mapping) and isinstance(data.get("id"), str) and data["id"].strip():
        return str(data["id"])
    if data is None:
        canonical = text.strip()
    else:
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def read_jobs(path: Path) -> list[Entry]:
    """Every non-blank line of the jobs file as an Entry; two jobs with one identity are refused."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"jobs file {path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"jobs file {path} cannot be read: {exc.strerror}") from None
    entries: list[Entry] = []
    first_line_of: dict[str, int] = {}
    for number, chunk in enumerate(raw.split(b"\n"), 1):
        data: dict[str, Any] | None = None
        problem: str | None
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            text, problem = chunk.decode("utf-8", "replace"), "not UTF-8 text"
        else:
            text = text.lstrip("\ufeff") if number == 1 else text
            if not text.strip():
                continue
            data, problem = _parse_line(text)
        identity = job_identity(data, text)
        if identity in first_line_of:
            what = (f"has the same id {identity!r} as line {first_line_of[identity]}"
                    if not identity.startswith("sha256:") else f"repeats the job of line {first_line_of[identity]}")
            raise BadInput(f"jobs file {path}: line {number} {what}; every job needs its own id")
        first_line_of[identity] = number
        entries.append(Entry(line=number, id=identity, data=data, problem=problem))
    return entries


def _parse_line(text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc}"
    if not isinstance(data, dict):
        return None, "a job must be a JSON object"
    return data, None
