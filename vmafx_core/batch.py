"""`vmafx batch`: score many jobs from a JSON Lines file, on this machine or on a Dask cluster.

A batch is long, so it must survive being stopped. Each job's result is one line of the results
file, appended and fsynced as the job ends, by one writer that holds a lock on the file: a crash
loses only the jobs that were running. Running the same command again skips every job that
already has an ok line (resume), re-runs failed ones unless `--skip-failed`, and drops a last line
cut short by a crash. A job is known by its `id`, or by a hash of its line when it has none, so
resume does not depend on line numbers. The writer also keeps each id to one line per run, which
is what makes a task that Dask ran twice (its worker died after finishing) harmless.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import click

from vmafx_core import cache
from vmafx_core.errors import BadInput, ExitCode, JobFailed, VmafxError
from vmafx_core.job import parse_job
from vmafx_core.plugins import Plugins
from vmafx_core.process import stop_all
from vmafx_core.result import write_atomically

log = logging.getLogger(__name__)

#: libvmaf threads per job when neither --jobs nor --threads-per-job is given: jobs side by side
#: also overlap each other's serial parts (probing, decoding, storage start-up), threads do not
DEFAULT_THREADS_PER_JOB = 2
#: how long Ctrl-C waits for running jobs to unwind after their processes were stopped
STOP_GRACE_S = 30.0

BATCH_HELP = """\b
Exit codes:
  0    every job of the batch has an ok result
  1    at least one job failed (its line in RESULTS says why)
  2    bad input (usage, unreadable jobs file, duplicate ids, results file not ours)
  3    environment missing (--cluster without the dask extra, scheduler unreachable)
  130  interrupted: running jobs stopped, finished results kept; run again to resume
"""

#: what to record for a job, given as a plain dict so it crosses a Dask wire as it is
Outcome = dict[str, Any]
RecordFn = Callable[["Entry", Outcome], None]


@attrs.frozen
class Entry:
    """One line of the jobs file."""

    line: int
    id: str
    #: the job as given (None when the line is not a JSON object)
    data: Mapping[str, Any] | None
    #: why the line cannot be a job at all (not JSON, not an object)
    problem: str | None = None


@attrs.frozen
class Known:
    """What the results file already says about a job: enough for resume, the summary and exit code."""

    status: str
    line: int | None = None
    vmaf_mean: float | None = None
    frames: int | None = None
    exit_code: int | None = None
    error: str | None = None

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Known:
        vmaf = record.get("metrics", {}).get("vmaf") if isinstance(record.get("metrics"), Mapping) else None
        mean = vmaf.get("mean") if isinstance(vmaf, Mapping) else None
        return cls(status=str(record.get("status")), line=record.get("line"),
                   vmaf_mean=mean if isinstance(mean, (int, float)) else None,
                   frames=record.get("frames_scored"), exit_code=record.get("exit_code"), error=record.get("error"))


# ---- the jobs file ---------------------------------------------------------------------------


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


# ---- running one job (here, or on a Dask worker) ---------------------------------------------


@functools.lru_cache(maxsize=1)
def _plugins() -> Plugins:
    """One plugin manager per process: loading entry points once, not once per job."""
    return Plugins()


def with_threads(data: Mapping[str, Any], threads: int | None) -> Mapping[str, Any]:
    """Give a libvmaf job `threads` libvmaf threads when it leaves n_threads unset or 0 ("all cores").

    Several jobs at once each taking every core would oversubscribe the machine.
    """
    if threads is None:
        return data
    scorer = data.get("scorer", {"name": "libvmaf"})
    if not isinstance(scorer, Mapping) or scorer.get("name", "libvmaf") != "libvmaf":
        return data
    current = scorer.get("n_threads")
    if current is not None and not (type(current) is int and current == 0):
        return data
    return {**data, "scorer": {"name": "libvmaf", **scorer, "n_threads": threads}}


def failure(exc: VmafxError) -> Outcome:
    """A failed job's outcome: the one-line message, the exit code `vmafx run` would give, details."""
    out: Outcome = {"status": "failed", "error": exc.message, "exit_code": int(exc.exit_code)}
    errors = getattr(exc, "errors", None)
    if errors:
        out["errors"] = list(errors)
    elif exc.detail:
        out["detail"] = exc.detail
    return out


def execute(data: Mapping[str, Any], *, origin: str, threads_per_job: int | None,
            ffmpeg: str | None = None, cancelled: Callable[[], bool] | None = None) -> Outcome:
    """Parse and run one job; return its result or its error as plain data, never raise a user error.

    This is what a Dask worker runs, so everything it returns must pickle and nothing a user can
    cause may come back as an exception (that would count as a task failure and be retried).
    """
    from vmafx_core.executor import ladder_result, ladder_rungs, run_job

    try:
        plugins = _plugins()

        def options_type_for(name: str) -> type | None:
            provided = plugins.scorers().get(name)
            return provided.item.options_type if provided else None

        job, options = parse_job(with_threads(data, threads_per_job), origin, options_type_for)
        if getattr(job, "ladder", ()):
            # as `vmafx run --job` does: one encode and score per rung, one result holding them all
            rungs = [run_job(rung, options, plugins, ffmpeg=ffmpeg, cancelled=cancelled)[0].to_dict()
                     for rung in ladder_rungs(job)]
            return {"status": "ok", **ladder_result(job, rungs)}
        result, _frames = run_job(job, options, plugins, ffmpeg=ffmpeg, cancelled=cancelled)
        return {"status": "ok", **result.to_dict()}
    except VmafxError as exc:
        return failure(exc)
    except Exception as exc:  # a bug: keep the batch going, and keep the traceback in the log
        log.exception("%s: unexpected error", origin)
        return {"status": "failed", "error": f"unexpected error {type(exc).__name__}: {exc}",
                "exit_code": int(ExitCode.JOB_FAILED)}


# ---- the results file --------------------------------------------------------------------------


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
    """One row per job of the jobs file, in its order; jobs without a result yet are "pending"."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "line", "status", "vmaf_mean", "frames", "exit_code", "error"])
    for entry in entries:
        k = known.get(entry.id)
        if k is None:
            writer.writerow([entry.id, entry.line, "pending", "", "", "", ""])
        else:
            writer.writerow([entry.id, entry.line, k.status, "" if k.vmaf_mean is None else k.vmaf_mean,
                             "" if k.frames is None else k.frames, "" if k.exit_code is None else k.exit_code,
                             k.error or ""])
    return out.getvalue()


# ---- progress ------------------------------------------------------------------------------------


class BatchProgress:
    """Counts and a one-line bar on stderr (on a terminal): done, failed, running, total, ETA."""

    def __init__(self, total: int, ok: int, failed: int, enabled: bool) -> None:
        self.total = total
        self.ok = ok
        self.failed = failed
        self.running = 0
        self.finished_here = 0  #: jobs ended in this run, the base of the ETA
        self.last_finish = 0.0
        self.enabled = enabled
        self.started_at = time.monotonic()
        self._lock = threading.Lock()
        self._shown = False
        self._last = 0.0

    def start(self) -> None:
        with self._lock:
            self.running += 1
            self._render()

    def finish(self, ok: bool, running: bool = True) -> None:
        with self._lock:
            if running:  # lines refused before running take no time: they would skew the ETA
                self.running = max(0, self.running - 1)
                self.finished_here += 1
                self.last_finish = time.monotonic()
            if ok:
                self.ok += 1
            else:
                self.failed += 1
            self._render()

    def note(self, text: str) -> None:
        """A line for the user above the bar."""
        with self._lock:
            if self._shown:
                click.echo("\r\033[K", err=True, nl=False)
            click.echo(text, err=True)
            self._render(force=True)

    def refresh(self) -> None:
        with self._lock:
            self._render()

    def eta(self) -> str:
        remaining = self.total - self.ok - self.failed
        if not self.finished_here:
            return "-:--"
        per_job = (self.last_finish - self.started_at) / self.finished_here
        # counts down between completions instead of growing with the wait for the next one
        seconds = int(max(0.0, per_job * remaining - (time.monotonic() - self.last_finish)))
        hours, rest = divmod(seconds, 3600)
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"

    def _render(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        done = self.ok + self.failed
        filled = int(30 * done / self.total) if self.total else 30
        running = f"  running {self.running}" if self.running else ""
        click.echo(f"\r[{'#' * filled:<30}] {done}/{self.total}  failed {self.failed}{running}  "
                   f"ETA {self.eta()}\033[K", err=True, nl=False)
        self._shown = True

    def close(self) -> None:
        with self._lock:
            if self._shown:
                click.echo("\r\033[K", err=True, nl=False)
                self._shown = False


# ---- running the batch ---------------------------------------------------------------------------


def cores() -> int:
    """CPUs this process may use (its affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def local_sizing(jobs: int | None, threads_per_job: int | None, n_cores: int) -> tuple[int, int]:
    """(jobs at once, libvmaf threads per job) so that their product fits the cores."""
    if jobs is None and threads_per_job is None:
        threads_per_job = max(1, min(DEFAULT_THREADS_PER_JOB, n_cores))
    if jobs is None:
        assert threads_per_job is not None
        jobs = max(1, n_cores // threads_per_job)
    if threads_per_job is None:
        threads_per_job = max(1, n_cores // jobs)
    return jobs, threads_per_job


def run_local(entries: Sequence[Entry], record: RecordFn, progress: BatchProgress, *, jobs: int,
              threads_per_job: int, ffmpeg: str | None) -> None:
    """Run jobs `jobs` at a time on threads; each job's ffmpeg and rclone are its own children.

    A job thread starts and waits for its own children (their death signal is tied to that
    thread). On Ctrl-C or SIGTERM (raised in this, the main thread) queued jobs are dropped, the
    running jobs' children are stopped until every job thread has ended, and a job that failed
    only because it was stopped is not recorded: it runs again next time.
    """
    cancelled = threading.Event()

    def work(entry: Entry) -> None:
        assert entry.data is not None
        progress.start()
        outcome = execute(entry.data, origin=f"line {entry.line}", threads_per_job=threads_per_job, ffmpeg=ffmpeg)
        if cancelled.is_set() and outcome["status"] != "ok":
            return
        record(entry, outcome)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="vmafx-batch")
    futures = [pool.submit(work, entry) for entry in entries]
    try:
        pending = set(futures)
        while pending:
            done, pending = concurrent.futures.wait(pending, timeout=0.5,
                                                    return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                future.result()  # a writer failure (disk full) ends the batch
            progress.refresh()
    except BaseException:
        cancelled.set()
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_running(futures)
        raise
    pool.shutdown(wait=True)


def _stop_running(futures: Sequence[concurrent.futures.Future[None]]) -> None:
    """Stop children until every job thread has ended: a thread may start its next child late."""
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        running = [f for f in futures if not f.done()]
        if not running:
            return
        stop_all(timeout=2.0)
        concurrent.futures.wait(running, timeout=0.2)
    log.warning("%d job(s) did not end within %.0fs of being stopped", sum(not f.done() for f in futures),
                STOP_GRACE_S)


_CLUSTER_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")


def _run(runnable: Sequence[Entry], record: RecordFn, progress: BatchProgress, client: Any, *, jobs: int | None,
         threads_per_job: int | None, ffmpeg: str | None, out: Path, total: int, known: Mapping[str, Known]) -> None:
    """Run the jobs here or on the cluster; on Ctrl-C say what was kept before the error line."""
    try:
        if client is not None:
            from vmafx_core import dask_runner
            dask_runner.run_on_cluster(client, runnable, record, progress, threads_per_job=threads_per_job,
                                       ffmpeg=ffmpeg)
        elif runnable:
            assert jobs is not None and threads_per_job is not None
            run_local(runnable, record, progress, jobs=jobs, threads_per_job=threads_per_job, ffmpeg=ffmpeg)
    except BaseException:
        progress.close()
        ok = sum(1 for k in list(known.values()) if k.status == "ok")
        click.echo(f"vmafx: batch stopped: {ok} of {total} jobs have an ok result in {out}; "
                   "run the same command again to resume", err=True)
        raise
    progress.close()


def run_batch(jobs_file: Path, out: Path, *, jobs: int | None = None, threads_per_job: int | None = None,
              cluster: str | None = None, summary: Path | None = None, skip_failed: bool = False,
              ffmpeg: str | None = None, show_progress: bool = False) -> ExitCode:
    """Run every job of `jobs_file` that has no result yet; return the batch's exit code."""
    if cluster is not None:
        if not _CLUSTER_ADDRESS.match(cluster):
            raise BadInput(f"--cluster {cluster!r}: give the Dask scheduler as tcp://HOST:PORT")
        if jobs is not None:
            raise BadInput("--jobs sizes the local pool; with --cluster, each worker's --nthreads decides")
        from vmafx_core import dask_runner
        dask_runner.require()
    if out.exists() and jobs_file.exists() and out.resolve() == jobs_file.resolve():
        raise BadInput(f"--out {out} is the jobs file itself; give another file")
    entries = read_jobs(jobs_file)
    writer = ResultWriter(out)
    writer.open()
    known: dict[str, Known] = {}
    try:
        ids = {e.id for e in entries}
        known.update({i: k for i, k in writer.previous.items() if i in ids})
        todo = [e for e in entries if e.id not in known or (known[e.id].status == "failed" and not skip_failed)]
        kept_failed = sum(1 for e in entries if e.id in known and known[e.id].status == "failed" and skip_failed)
        done_before = sum(1 for e in entries if e.id in known and known[e.id].status == "ok")
        where = f"on {cluster}" if cluster else ""
        if cluster is None:
            jobs, threads_per_job = local_sizing(jobs, threads_per_job, cores())
            where = f"{jobs} at a time x {threads_per_job} libvmaf threads"
        click.echo(f"vmafx: batch of {len(entries)} jobs: {done_before} done before, "
                   + (f"{kept_failed} failed before (kept: --skip-failed), " if kept_failed else "")
                   + f"{len(todo)} to run" + (f", {where}" if todo else ""), err=True)
        progress = BatchProgress(len(entries), done_before, kept_failed, show_progress)
        lock = threading.Lock()

        def record(entry: Entry, outcome: Outcome, running: bool = True) -> None:
            line = {"id": entry.id, "status": outcome["status"], "line": entry.line,
                    **{k: v for k, v in outcome.items() if k != "status"}}
            if not writer.write(line):
                return
            with lock:
                known[entry.id] = Known.of(line)
            progress.finish(outcome["status"] == "ok", running=running)
            if outcome["status"] != "ok":
                extra = "; ".join(outcome.get("errors", ()))
                progress.note(f"vmafx: job {entry.id} failed: {outcome['error']}" + (f": {extra}" if extra else ""))
            else:
                log.info("job %s ok", entry.id)

        runnable = [e for e in todo if e.problem is None]
        with contextlib.ExitStack() as stack:
            client = None
            if runnable and cluster is not None:
                from vmafx_core import dask_runner
                client = stack.enter_context(dask_runner.connect(cluster))  # before anything is written
            for entry in todo:
                if entry.problem is not None:
                    record(entry, {"status": "failed", "error": f"line {entry.line}: {entry.problem}",
                                   "exit_code": int(ExitCode.BAD_INPUT)}, running=False)
            _run(runnable, record, progress, client, jobs=jobs, threads_per_job=threads_per_job, ffmpeg=ffmpeg,
                 out=out, total=len(entries), known=known)
    finally:
        writer.close()
        if summary is not None:
            with contextlib.suppress(OSError):
                write_atomically(summary, summary_csv(entries, known))
    ok = sum(1 for e in entries if e.id in known and known[e.id].status == "ok")
    failed = sum(1 for e in entries if e.id in known and known[e.id].status == "failed")
    click.echo(f"vmafx: batch done: {ok} ok, {failed} failed of {len(entries)}; results in {out}"
               + (f", summary in {summary}" if summary else ""), err=True)
    return ExitCode.OK if ok == len(entries) else ExitCode.JOB_FAILED


@click.command(epilog=BATCH_HELP)
@click.argument("jobs_file", metavar="JOBS.jsonl", type=click.Path(path_type=Path, dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Results, one JSON line per job, appended as jobs end; reused to resume.")
@click.option("-j", "--jobs", type=click.IntRange(min=1),
              help="Jobs at once on this machine (default: cores / threads per job).")
@click.option("--threads-per-job", type=click.IntRange(min=1),
              help="libvmaf threads of a job that leaves n_threads unset or 0 (default: 2 locally; on a "
                   "cluster, the worker's cores / its --nthreads).")
@click.option("--summary", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write a CSV with one row per job: id, line, status, vmaf_mean, frames, exit_code, error.")
@click.option("--cluster", metavar="tcp://HOST:PORT", help="Run the jobs on this Dask scheduler's workers.")
@click.option("--skip-failed", is_flag=True, help="On resume, keep earlier failures instead of running them again.")
@click.option("--ffmpeg", "ffmpeg_path", help="ffmpeg binary (on a cluster: its path on the workers).")
@click.option("--no-progress", is_flag=True, help="No progress bar even on a terminal.")
@click.option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write an HTML report of every result in --out (needs the report extra).")
@cache.batch_no_cache
@cache.batch_cache_dir
def batch(jobs_file: Path, out: Path, jobs: int | None, threads_per_job: int | None, summary: Path | None,
          cluster: str | None, skip_failed: bool, ffmpeg_path: str | None, no_progress: bool,
          report_file: Path | None) -> None:
    """Score every job of JOBS.jsonl (one `vmafx run --job` object per line) into --out.

    Jobs that already have an ok line in --out are skipped, so running the same command again
    after a crash or Ctrl-C resumes the batch. A failing job is recorded and the batch goes on.
    """
    from vmafx_core.cli import _user_errors

    with _user_errors():
        if report_file is not None:  # before the batch runs, not after
            from vmafx_core.report.command import for_batch, require_extra
            require_extra()
        code = run_batch(jobs_file, out, jobs=jobs, threads_per_job=threads_per_job, cluster=cluster,
                         summary=summary, skip_failed=skip_failed, ffmpeg=ffmpeg_path,
                         show_progress=sys.stderr.isatty() and not no_progress)
        if report_file is not None:
            for_batch(out, report_file)
    sys.exit(int(code))

