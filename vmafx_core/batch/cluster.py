"""`vmafx batch --cluster`: the same batch, one Dask task per unit of jobs, on a distributed scheduler.

A unit is one job, or jobs of one reference scored in one pass (`grouping.units`); a task returns
one outcome per job of its unit. Each worker uses the result cache the batch names: `--cache-dir
DIR` is that folder on every worker (a shared file system makes it one cache for the cluster),
without it each worker's own default (`$VMAFX_CACHE_DIR/results` in the worker's environment);
`--no-cache` turns it off on the workers too.

Dask does the hard parts: it places tasks on workers, and when a worker is lost it runs that
worker's tasks again elsewhere. Each worker runs a job with its own installed plugins, ffmpeg and
rclone configuration (`run_task` below is a plain function: it parses the job and calls
`run_job`), and returns the result or the error as plain data, so a user's mistake never crosses
the wire as an exception. The client streams results back as they complete and writes them
through the batch's one writer, which keeps one line per job id even if Dask ran a task twice.

`distributed` is an optional dependency (the `dask` extra): it is imported only here, lazily.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vmafx_core.errors import EnvironmentMissing, ExitCode

if TYPE_CHECKING:
    from vmafx_core.batch.jobsfile import Entry
    from vmafx_core.batch.progress import BatchProgress
    from vmafx_core.batch.results import Outcome, RecordFn
    from vmafx_core.cache import ResultCache

log = logging.getLogger(__name__)

MISSING = "--cluster needs the dask extra: pip install 'vmafx[dask]'"
#: how long the client waits for the scheduler to answer at the start
CONNECT_TIMEOUT_S = 10.0
#: how the client names the workers' result cache (see `run_task`)
CacheSetting = str | None


def require() -> None:
    """Fail with one line before anything starts when `distributed` is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise EnvironmentMissing(MISSING) from None


def task_key(job_id: str, run: str) -> str:
    """A Dask key unique to this job in this run: Dask must never take two jobs, or two runs, as one."""
    return f"vmafx-job-{hashlib.sha256(job_id.encode('utf-8')).hexdigest()[:20]}-{run}"


def worker_threads() -> int:
    """libvmaf threads for a job on this worker: its cores shared by its task slots."""
    from dask.system import CPU_COUNT
    from distributed import get_worker

    try:
        slots = int(getattr(get_worker(), "nthreads", 1) or 1)
    except ValueError:  # not inside a worker (called directly)
        slots = 1
    return max(1, CPU_COUNT // slots)


def run_task(lines: Sequence[int], datas: Sequence[Mapping[str, Any]], *, threads_per_job: int | None = None,
             ffmpeg: str | None = None, cache: CacheSetting = None) -> list[Outcome]:
    """Run one unit of jobs (one job, or jobs of one reference scored in one pass) on a Dask worker;
    always one outcome dict per job (see `batch.task.execute_group`).

    `cache` says which result cache the worker uses: None, none; "" the worker's own default
    ($VMAFX_CACHE_DIR/results there); else that folder on the worker.
    """
    from vmafx_core.batch.task import execute_group

    threads = threads_per_job or worker_threads()
    return execute_group([(f"line {line}", data) for line, data in zip(lines, datas, strict=True)],
                         threads_per_job=threads, ffmpeg=ffmpeg, cancelled=cancellation_check(),
                         cache=worker_cache(cache))


def worker_cache(setting: CacheSetting) -> ResultCache | None:
    from vmafx_core.cache import ResultCache, default_folder

    if setting is None:
        return None
    return ResultCache(setting or default_folder())


def worker_group_size(client: Any, threads_per_job: int | None) -> int:
    """The default group size for this cluster: what a task slot of its smallest worker can hold.

    A worker's memory is its `--memory-limit`, or else (and at most) what its machine or cgroup
    has available, asked of the worker itself.
    """
    from vmafx_core.batch.grouping import MAX_DEFAULT_GROUP, available_memory, default_group_size

    try:
        workers = client.scheduler_info()["workers"]
        free = client.run(available_memory)  # address -> bytes, run on every worker
    except Exception as exc:  # an old scheduler, a worker without vmafx: the plain default
        log.info("could not ask the workers about their memory: %s", exc)
        return MAX_DEFAULT_GROUP
    sizes = []
    for address, w in workers.items():
        slots = int(w.get("nthreads") or 1)
        limits = [m for m in (w.get("memory_limit"), free.get(address)) if m]
        sizes.append(default_group_size(slots, threads_per_job or 1, int(min(limits)) if limits else None))
    return min(sizes) if sizes else MAX_DEFAULT_GROUP


def cancellation_check() -> Callable[[], bool] | None:
    """For the task running in this thread: whether the scheduler no longer wants it.

    Dask cannot stop a running task; when its client cancels it or goes away, the worker only
    marks the task "cancelled" and waits for it to end. The job polls this while scoring and
    stops its ffmpeg and storage at once, instead of scoring on for nobody.
    """
    from distributed import get_worker

    try:
        worker = get_worker()
        key = worker.get_current_task()
    except (ValueError, AttributeError, KeyError):  # not inside a worker task (called directly)
        return None

    def cancelled() -> bool:
        task = worker.state.tasks.get(key)  # a read of the worker's state; its event loop updates it
        return task is None or task.state in ("cancelled", "released", "forgotten")

    return cancelled


def lost(exc: BaseException) -> Outcome:
    """The outcome of a task Dask could not finish: it never ran vmafx's code to the end."""
    name = type(exc).__name__
    if name == "KilledWorker":
        error = f"the job's task was lost: every worker that ran it died ({exc})"
    elif isinstance(exc, (asyncio.CancelledError, Exception)) and "Cancelled" in name:
        error = "the job's task was cancelled by the scheduler"
    else:
        error = f"the worker could not run the job: {name}: {exc} (is vmafx installed on every worker?)"
    return {"status": "failed", "error": error, "exit_code": int(ExitCode.JOB_FAILED)}


def connect(address: str) -> Any:
    """A client of the scheduler at `address`, or one line and exit code 3 when it does not answer."""
    try:
        from distributed import Client
    except ImportError:
        raise EnvironmentMissing(MISSING) from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise EnvironmentMissing(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def run_on_cluster(client: Any, units: Sequence[Sequence[Entry]], record: RecordFn, progress: BatchProgress, *,
                   threads_per_job: int | None, ffmpeg: str | None, cache: CacheSetting = None) -> None:
    """Submit one task per unit of jobs through `client` and record results as they complete.

    On Ctrl-C or SIGTERM the client cancels its tasks; a job already running on a worker sees that
    within a fraction of a second (`cancellation_check`) and stops its processes there.
    """
    from distributed import as_completed

    run = secrets.token_hex(4)
    futures = client.map(run_task, [[e.line for e in u] for u in units], [[e.data for e in u] for u in units],
                         key=[task_key("\0".join(e.id for e in u), run) for u in units], pure=False,
                         threads_per_job=threads_per_job, ffmpeg=ffmpeg, cache=cache)
    pending = {future.key: (future, unit) for future, unit in zip(futures, units, strict=True)}
    completed = as_completed(futures, loop=client.loop)
    del futures
    log.info("submitted %d jobs as %d tasks to %s", sum(len(u) for u in units), len(pending),
             client.scheduler.address)
    try:
        while not completed.is_empty():
            ready = completed.next_batch(block=False)
            if not ready:
                progress.refresh()
                time.sleep(0.2)
                continue
            for future in ready:
                _, unit = pending.pop(future.key)
                try:
                    outcomes = future.result()
                except (Exception, asyncio.CancelledError) as exc:
                    log.info("task of job(s) %s failed: %r", ", ".join(e.id for e in unit), exc)
                    outcomes = [lost(exc)] * len(unit)
                for entry, outcome in zip(unit, outcomes, strict=True):
                    record(entry, outcome)
                future.release()
    except BaseException:
        if pending:
            try:
                client.cancel([f for f, _ in pending.values()], force=True)
            except Exception as exc:  # the scheduler may be gone already
                log.info("cancelling the remaining tasks: %s", exc)
        raise
