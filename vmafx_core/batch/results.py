"""The results file: one fsynced JSON line per job, by one locking writer; what it already holds
is what resume skips."""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from vmafx_core.batch.jobsfile import Entry
from vmafx_core.errors import BadInput, JobFailed

log = logging.getLogger(__name__)

#: what to record for a job, given as a plain dict so it crosses a Dask wire as it is
Outcome = dict[str, Any]
RecordFn = Callable[[Entry, Outcome], None]

#: an outcome's per-frame values on their way to the frames folder (never written into the line):
#: a list of frames for a result, a list of them (None for a failed rung) for a ladder
FRAMES_KEY = "_frames"


def frames_folder(results: Path) -> Path:
    """Where a batch keeps its per-frame values: beside the results file, `results.frames/`."""
    return results.with_name(results.stem + ".frames")


def frames_name(job_id: str) -> str:
    """A file name for a job id (ids may hold any character): the id where it is one, else its
    safe characters and a digest of the id, so two ids never share a file."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", job_id).strip("._")[:80]
    if safe == job_id and safe:
        return safe
    return f"{safe or 'job'}-{hashlib.sha256(job_id.encode()).hexdigest()[:10]}"


def keep_frames(results: Path, outcome: Outcome, job_id: str) -> Outcome:
    """Write an outcome's per-frame values as CSV into the frames folder, and name the file (relative
    to the results file's folder) in the line: `frames_file` of a result, of each rung of a ladder.
    Written before the line, so a line never names a file that is not there."""
    from vmafx_core.files import write_atomically
    from vmafx_core.result import frames_text

    frames = outcome.pop(FRAMES_KEY, None)
    if frames is None:
        return outcome
    folder = frames_folder(results)
    folder.mkdir(exist_ok=True)
    base = frames_name(job_id)
    if isinstance(outcome.get("rungs"), list):
        rungs = []
        for index, (rung, its) in enumerate(zip(outcome["rungs"], frames, strict=True)):
            if its:
                path = folder / f"{base}.rung{index}.csv"
                write_atomically(path, frames_text(its, "csv"))
                rung = {**rung, "frames_file": f"{folder.name}/{path.name}"}
            rungs.append(rung)
        return {**outcome, "rungs": rungs}
    if frames:
        path = folder / f"{base}.csv"
        write_atomically(path, frames_text(frames, "csv"))
        return {**outcome, "frames_file": f"{folder.name}/{path.name}"}
    return outcome


@attrs.frozen
class Known:
    """What the results file already says about a job: enough for resume, the summary and exit code."""

    status: str
    line: int | None = None
    vmaf_mean: float | None = None
    frames: int | None = None
    exit_code: int | None = None
    error: str | None = None
    bitrate_bps: float | None = None  #: the distorted's measured video bitrate (an encode's: its own)
    labels: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Known:
        vmaf = record.get("metrics", {}).get("vmaf") if isinstance(record.get("metrics"), Mapping) else None
        mean = vmaf.get("mean") if isinstance(vmaf, Mapping) else None
        distorted, encode = record.get("distorted"), record.get("encode")
        rate = next((where.get("bitrate_bps") for where in (distorted, encode)
                     if isinstance(where, Mapping) and isinstance(where.get("bitrate_bps"), (int, float))), None)
        labels = record.get("labels")
        return cls(status=str(record.get("status")), line=record.get("line"),
                   vmaf_mean=mean if isinstance(mean, (int, float)) else None,
                   frames=record.get("frames_scored"), exit_code=record.get("exit_code"), error=record.get("error"),
                   bitrate_bps=rate, labels=dict(labels) if isinstance(labels, Mapping) else {})


class ResultWriter:
    """The only writer of RESULTS.jsonl: appends one fsynced line per job, at most once per id.

    It holds an exclusive lock on the file for the whole run, so two batches cannot interleave
    their lines in one file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._written: set[str] = set()
        #: the last line of each id already in the file when it was opened
        self.previous: dict[str, Known] = {}

    def open(self) -> None:
        """Lock the file, read what earlier runs wrote, and cut a last line a crash left half-written."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise BadInput(f"results file {self.path} cannot be opened: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BadInput(f"results file {self.path} is in use by another vmafx batch") from None
        try:
            self._load(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _load(self, fd: int) -> None:
        keep_to: int | None = None  # truncate here: the last line is torn
        needs_newline = False
        for number, offset, raw, is_last in _lines(fd):
            text = raw.strip()
            if not text:
                continue
            record = _result_record(text)
            if record is None:
                if not is_last:
                    raise BadInput(f"results file {self.path}: line {number} is not a vmafx batch result; "
                                   "give another --out file or fix that line")
                log.warning("%s: ignoring the cut-off last line %d (a run was stopped while writing it)",
                            self.path, number)
                keep_to = offset
                break
            if is_last and not raw.endswith(b"\n"):
                needs_newline = True
            self.previous[str(record["id"])] = Known.of(record)
        if keep_to is not None:
            os.ftruncate(fd, keep_to)
            os.fsync(fd)
        elif needs_newline:
            self._append(fd, b"\n")

    def write(self, record: Mapping[str, Any]) -> bool:
        """Append `record` and fsync it; False (nothing written) when its id was already written."""
        job_id = str(record["id"])
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            previous = self.previous.get(job_id)
            if job_id in self._written or (previous is not None and previous.status == "ok"):
                log.info("result of %s already written; dropping a second one", job_id)
                return False
            assert self._fd is not None, "write() before open()"
            try:
                self._append(self._fd, data)
            except OSError as exc:
                raise JobFailed(f"cannot append to results file {self.path}: {exc.strerror}") from None
            self._written.add(job_id)
        return True

    @staticmethod
    def _append(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            done = os.write(fd, view)
            view = view[done:]
        os.fsync(fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


def _result_record(text: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if isinstance(record, dict) and isinstance(record.get("id"), str) and record.get("status") in ("ok", "failed"):
        return record
    return None


def _lines(fd: int) -> Iterator[tuple[int, int, bytes, bool]]:
    """(line number, byte offset, bytes, is the last line) for each line of the file, streamed."""
    with os.fdopen(os.dup(fd), "rb") as fh:
        fh.seek(0)
        offset = 0
        number = 0
        previous: tuple[int, int, bytes] | None = None
        for raw in fh:
            number += 1
            if previous is not None:
                yield (*previous, False)
            previous = (number, offset, raw)
            offset += len(raw)
        if previous is not None:
            yield (*previous, True)


def summary_csv(entries: Sequence[Entry], known: Mapping[str, Known]) -> str:
    """One row per job of the jobs file, in its order; jobs without a result yet are "pending".

    After the fixed columns, the measured bitrate and one `label:NAME` column per label any job
    has (a job's own labels from its line when it has no result), so a table tool can group by them.
    """
    def labels_of(entry: Entry) -> Mapping[str, Any]:
        k = known.get(entry.id)
        given = (entry.data or {}).get("labels")
        return k.labels if k is not None and k.labels else given if isinstance(given, Mapping) else {}

    names = list(dict.fromkeys(name for entry in entries for name in labels_of(entry)))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "line", "status", "vmaf_mean", "frames", "exit_code", "error", "bitrate_bps",
                     *(f"label:{n}" for n in names)])
    for entry in entries:
        k = known.get(entry.id)
        labels = [labels_of(entry).get(n, "") for n in names]
        if k is None:
            writer.writerow([entry.id, entry.line, "pending", "", "", "", "", "", *labels])
        else:
            writer.writerow([entry.id, entry.line, k.status, "" if k.vmaf_mean is None else k.vmaf_mean,
                             "" if k.frames is None else k.frames, "" if k.exit_code is None else k.exit_code,
                             k.error or "", "" if k.bitrate_bps is None else k.bitrate_bps, *labels])
    return out.getvalue()
