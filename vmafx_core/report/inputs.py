"""Reading what a report shows: results, ladders, batch results and per-frame files.

Every file is recognised by its content, not its name (except CSV), and anything that is not a
vmafx file is refused with one line (`BadInput`, exit 2) before any chart is drawn. A per-frame
file given right after a single result belongs to it and is checked against it (frame count,
metric names, means), so frames of another run are never drawn under a result's name.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from vmafx_core.errors import BadInput
from vmafx_core.result import SCHEMA_ID, SCHEMA_VERSION

LADDER_SCHEMA = "vmafx.ladder"
#: a ladder's rung that failed
ERROR_SCHEMA = "vmafx.error"
#: a frames file's metric mean may differ from the result's pooled mean by libvmaf's log rounding
MEAN_TOLERANCE = 1e-3

Frames = list[dict[str, float]]


@attrs.define
class Pair:
    """One scored pair: its result (pooled values) and, when known, its per-frame values."""

    label: str
    source: str  #: where it came from: a file name, with a line or rung when it is one of several
    result: Mapping[str, Any] | None
    frames: Frames | None = None
    frames_source: str | None = None
    #: frame rate given on the command line for frames files without a result
    fps_override: float | None = None
    #: pooled here, once, for frames files without a result
    pooled_here: Mapping[str, Mapping[str, float]] | None = None

    @property
    def fps(self) -> float | None:
        if self.fps_override:
            return self.fps_override
        if self.result is None:
            return None
        provenance = self.result.get("provenance") or {}
        for where in (provenance.get("reference_stream"), self.result.get("reference", {}).get("raw")):
            if isinstance(where, Mapping) and isinstance(where.get("fps"), (int, float)) and where["fps"] > 0:
                return float(where["fps"])
        return None

    @property
    def subsample(self) -> int:
        """Scored frame i is source frame i * n_subsample."""
        provenance = (self.result or {}).get("provenance") or {}
        n = provenance.get("n_subsample", 1)
        return int(n) if isinstance(n, int) and n > 0 else 1

    @property
    def metrics(self) -> Mapping[str, Mapping[str, float]]:
        """Pooled values: the result's, or pooled here from the frames of a frames file alone."""
        if self.result is not None:
            return self.result["metrics"]
        if self.pooled_here is None:
            from vmafx_core.result import pool

            assert self.frames is not None
            names = list(dict.fromkeys(k for f in self.frames for k in f))
            self.pooled_here = {n: attrs.asdict(pool([f[n] for f in self.frames if n in f])) for n in names}
        return self.pooled_here

    @property
    def labels(self) -> Mapping[str, Any]:
        """The job's labels (README: Labels and bitrates); none for a frames file alone."""
        labels = (self.result or {}).get("labels")
        return labels if isinstance(labels, Mapping) else {}

    @property
    def encode(self) -> Mapping[str, Any] | None:
        encode = (self.result or {}).get("encode")
        return encode if isinstance(encode, Mapping) else None


@attrs.frozen
class Failed:
    """A batch job that has no result: its id and why."""

    label: str
    source: str
    error: str


@attrs.define
class Inputs:
    pairs: list[Pair] = attrs.field(factory=list)
    failed: list[Failed] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)


def load(paths: Sequence[Path], fps: float | None = None) -> Inputs:
    """Read every file, in order; a frames file attaches to the single result just before it."""
    if not paths:
        raise BadInput("give at least one result, ladder, batch results or --frames file")
    inputs = Inputs()
    previous_single: Pair | None = None
    for path in paths:
        kind, content = _read(path)
        if kind == "frames":
            frames = content
            if previous_single is not None and previous_single.frames is None:
                attach(previous_single, frames, str(path))
            else:
                inputs.pairs.append(Pair(label=path.name, source=str(path), result=None, frames=frames,
                                         frames_source=str(path), fps_override=fps))
            previous_single = None
            continue
        if kind == "result":
            pair = Pair(label=result_label(content, path.name), source=str(path), result=content)
            inputs.pairs.append(pair)
            previous_single = pair
            continue
        previous_single = None
        if kind == "ladder":
            inputs.pairs.extend(_rungs(content, str(path)))
            inputs.failed.extend(_failed_rungs(content, str(path)))
        elif kind == "many":  # `vmafx run REF DIS1 DIS2 --json`: a result or an error per distorted
            for i, item in enumerate(content):
                where = f"{path} distorted {i}"
                if item.get("schema") == ERROR_SCHEMA:
                    inputs.failed.append(Failed(str(item.get("distorted", f"distorted {i}")), where,
                                                str(item.get("error", "failed"))))
                else:
                    inputs.pairs.append(Pair(label=result_label(item, f"distorted {i}"), source=where, result=item))
        else:  # batch results, with the per-frame values the batch kept beside them
            for record in content:
                where = f"{path}:{record.get('line', '?')}"
                if record.get("status") != "ok":
                    inputs.failed.append(Failed(str(record["id"]), where, str(record.get("error", "failed"))))
                elif record.get("schema") == LADDER_SCHEMA:
                    rungs = _rungs(_checked_ladder(record, where), where)
                    kept = [r for r in record["rungs"] if r.get("schema") != ERROR_SCHEMA]
                    for pair, rung in zip(rungs, kept, strict=True):
                        _kept_frames(pair, rung, path, inputs.notes)
                    inputs.pairs.extend(rungs)
                    inputs.failed.extend(_failed_rungs(record, where))
                else:
                    result = _checked_result(record, where)
                    pair = Pair(label=str(record["id"]), source=where, result=result)
                    _kept_frames(pair, record, path, inputs.notes)
                    inputs.pairs.append(pair)
    unique_labels(inputs.pairs)
    return inputs


def _kept_frames(pair: Pair, record: Mapping[str, Any], results: Path, notes: list[str]) -> None:
    """Attach the frames file a batch kept for `record` (its `frames_file`, beside the results file);
    a file that is gone is a note, not a failure: the pooled values still stand."""
    name = record.get("frames_file")
    if not isinstance(name, str):
        return
    path = results.parent / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        notes.append(f"{pair.label}: its per-frame values {path} cannot be read ({exc.strerror}); pooled values only")
        return
    attach(pair, _frames_csv(text, path), str(path))


def attach(pair: Pair, frames: Frames, source: str) -> None:
    """Give `pair` its per-frame values, refusing frames that are not the result's."""
    assert pair.result is not None
    scored = pair.result["frames_scored"]
    if len(frames) != scored:
        raise BadInput(f"{source}: {len(frames)} frames, but {pair.source} scored {scored}; a --frames file "
                       "must follow its own result on the command line")
    names = set(dict.fromkeys(k for f in frames for k in f))
    pooled = pair.result["metrics"]
    if names != set(pooled):
        raise BadInput(f"{source}: its metrics ({', '.join(sorted(names))}) are not those of {pair.source}; "
                       "a --frames file must follow its own result on the command line")
    for name, values in pooled.items():
        column = [f[name] for f in frames if name in f]
        if column and abs(statistics.fmean(column) - values["mean"]) > MEAN_TOLERANCE:
            raise BadInput(f"{source}: its {name} mean {statistics.fmean(column):.6f} is not the "
                           f"{values['mean']:.6f} of {pair.source}; a --frames file must follow its own result")
    pair.frames = frames
    pair.frames_source = source


def result_label(result: Mapping[str, Any], fallback: str) -> str:
    if isinstance(result.get("job_id"), str) and result["job_id"]:
        return str(result["job_id"])
    uri = str(result.get("distorted", {}).get("uri") or "")
    return uri.rstrip("/").rsplit("/", 1)[-1] or fallback


def unique_labels(pairs: list[Pair]) -> None:
    seen: dict[str, int] = {}
    for pair in pairs:
        seen[pair.label] = seen.get(pair.label, 0) + 1
    for pair in pairs:
        if seen[pair.label] > 1:
            pair.label = f"{pair.label} ({pair.source})"


def _rungs(ladder: Mapping[str, Any], where: str) -> list[Pair]:
    return [Pair(label=result_label(rung, f"rung {i}"), source=f"{where} rung {i}", result=rung)
            for i, rung in enumerate(ladder["rungs"]) if rung.get("schema") != ERROR_SCHEMA]


def _failed_rungs(ladder: Mapping[str, Any], where: str) -> list[Failed]:
    """A ladder's rungs that failed (`vmafx.error` in their place): listed, not charted."""
    return [Failed(str(rung.get("job_id", f"rung {i}")), f"{where} rung {i}", str(rung.get("error", "failed")))
            for i, rung in enumerate(ladder["rungs"]) if rung.get("schema") == ERROR_SCHEMA]


# ---- reading and recognising one file ------------------------------------------------------


def _read(path: Path) -> tuple[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a folder; give result files") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text, so not a vmafx result") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot be read: {exc.strerror}") from None
    if path.suffix.lower() == ".csv":
        return "frames", _frames_csv(text, path)
    if not text.strip():
        raise BadInput(f"{path}: is empty; give a vmafx result, ladder, batch results or --frames file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > 1 and _is_json(lines[0]):
            return "batch", _batch(lines, path)
        raise BadInput(f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg}); "
                       "give a vmafx result, ladder, batch results or --frames file") from None
    if isinstance(data, list) and data and all(isinstance(item, Mapping) and "schema" in item for item in data):
        return "many", _checked_many(data, path)
    if isinstance(data, list):
        return "frames", _frames_json(data, path)
    if isinstance(data, Mapping) and data.get("schema") == LADDER_SCHEMA:
        return "ladder", _checked_ladder(data, str(path))
    if isinstance(data, Mapping) and "status" in data and "id" in data:
        return "batch", _batch([text], path)
    if isinstance(data, Mapping) and data.get("schema") == SCHEMA_ID:
        return "result", _checked_result(data, str(path))
    raise BadInput(f"{path}: not a vmafx result, ladder, batch results or --frames file "
                   f"(no \"schema\": \"{SCHEMA_ID}\")")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _batch(lines: Sequence[str], path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines) and records:
                continue  # a last line cut short by a crash: `vmafx batch` drops it on resume too
            raise BadInput(f"{path}: line {number} is not valid JSON ({exc.msg}); give a vmafx result, "
                           "ladder, batch results or --frames file") from None
        if not (isinstance(record, dict) and isinstance(record.get("id"), str)
                and record.get("status") in ("ok", "failed")):
            raise BadInput(f"{path}: line {number} is not a vmafx batch result (no \"id\" and \"status\")")
        records.append(record)
    return records


def _checked_many(data: list[Any], path: Path) -> list[Mapping[str, Any]]:
    for i, item in enumerate(data):
        if item.get("schema") != ERROR_SCHEMA:
            _checked_result(item, f"{path} distorted {i}")
    return data


def _checked_ladder(data: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    _check_version(data, where)
    rungs = data.get("rungs")
    if not isinstance(rungs, list) or not rungs:
        raise BadInput(f"{where}: a vmafx ladder without rungs")
    for i, rung in enumerate(rungs):
        if not (isinstance(rung, Mapping) and rung.get("schema") == ERROR_SCHEMA):
            _checked_result(rung, f"{where} rung {i}")
    return data


def _checked_result(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA_ID:
        raise BadInput(f"{where}: not a vmafx result (no \"schema\": \"{SCHEMA_ID}\")")
    _check_version(data, where)
    metrics = data.get("metrics")
    if not isinstance(data.get("frames_scored"), int) or not isinstance(metrics, Mapping) or not metrics:
        raise BadInput(f"{where}: a vmafx result without frames_scored or metrics; was it edited?")
    for name, pooled in metrics.items():
        if not isinstance(pooled, Mapping) or not all(
                isinstance(pooled.get(k), (int, float)) for k in ("mean", "harmonic_mean", "min", "max")):
            raise BadInput(f"{where}: metric {name!r} has no pooled mean, harmonic_mean, min and max")
    return data


def _check_version(data: Mapping[str, Any], where: str) -> None:
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise BadInput(f"{where}: schema_version {version!r} is not one this vmafx reads "
                       f"(up to {SCHEMA_VERSION}); upgrade vmafx")


def _number(text: Any, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadInput(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BadInput(f"{where}: {text!r} is not a finite number")
    return value


#: columns of a --frames file that are no metric: where the frame sits on the paired timeline
_NOT_METRICS = frozenset({"time_s"})


def _frames_csv(text: str, path: Path) -> Frames:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not rows[0] or rows[0][0] != "frame" or len(rows[0]) < 2:
        raise BadInput(f"{path}: not a vmafx --frames CSV (its first column must be \"frame\")")
    names = rows[0][1:]
    frames: Frames = []
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != len(names) + 1:
            raise BadInput(f"{path}: line {number} has {len(row)} columns, the header {len(names) + 1}")
        frames.append({n: _number(v, f"{path}: line {number}") for n, v in zip(names, row[1:], strict=True)
                       if v != "" and n not in _NOT_METRICS})
    if not frames:
        raise BadInput(f"{path}: a --frames CSV without frames")
    return frames


def _frames_json(data: list[Any], path: Path) -> Frames:
    frames: Frames = []
    for i, row in enumerate(data):
        if not isinstance(row, Mapping) or "frame" not in row:
            raise BadInput(f"{path}: not a vmafx --frames JSON (item {i} is not an object with \"frame\")")
        frames.append({k: _number(v, f"{path}: item {i} {k}") for k, v in row.items()
                       if k != "frame" and k not in _NOT_METRICS})
    if not frames:
        raise BadInput(f"{path}: a --frames JSON without frames")
    return frames
