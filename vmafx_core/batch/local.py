"""Running a batch's jobs on threads of this process, each job owning (and stopping) its children."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from collections.abc import Sequence

from vmafx_core.batch.jobsfile import Entry
from vmafx_core.batch.progress import BatchProgress
from vmafx_core.batch.results import RecordFn
from vmafx_core.batch.task import execute_group

log = logging.getLogger(__name__)

#: libvmaf threads per job when neither --jobs nor --threads-per-job is given: jobs side by side
#: also overlap each other's serial parts (probing, decoding, storage start-up), threads do not
DEFAULT_THREADS_PER_JOB = 2
#: how long Ctrl-C waits for running jobs to stop their processes and unwind
STOP_GRACE_S = 30.0


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


def run_local(units: Sequence[Sequence[Entry]], record: RecordFn, progress: BatchProgress, *, jobs: int,
              threads_per_job: int, ffmpeg: str | None) -> None:
    """Run units of jobs (`grouping.units`: one job, or jobs of one reference scored in one pass)
    `jobs` at a time on threads; each unit's ffmpeg and rclone are its own children.

    A unit's thread starts and waits for its own children (their death signal is tied to that
    thread). On Ctrl-C or SIGTERM (raised in this, the main thread) queued units are dropped and
    the running ones are cancelled the way a cluster cancels its tasks: `run_job(cancelled=...)`,
    polled while scoring, makes each job stop its own processes and unwind. A job that failed
    only because it was stopped is not recorded: it runs again next time.
    """
    cancelled = threading.Event()

    def work(unit: Sequence[Entry]) -> None:
        for entry in unit:
            assert entry.data is not None
            progress.start()
        outcomes = execute_group([(f"line {e.line}", e.data) for e in unit if e.data is not None],
                                 threads_per_job=threads_per_job, ffmpeg=ffmpeg, cancelled=cancelled.is_set)
        for entry, outcome in zip(unit, outcomes, strict=True):
            if cancelled.is_set() and outcome["status"] != "ok":
                continue
            record(entry, outcome)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="vmafx-batch")
    futures = [pool.submit(work, unit) for unit in units]
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
        _wait_stopped(futures)
        raise
    pool.shutdown(wait=True)


def _wait_stopped(futures: Sequence[concurrent.futures.Future[None]]) -> None:
    """Wait, within bounds, for the cancelled jobs to stop their processes and end."""
    _, running = concurrent.futures.wait(futures, timeout=STOP_GRACE_S)
    if running:
        log.warning("%d job(s) did not end within %.0fs of being stopped", len(running), STOP_GRACE_S)
