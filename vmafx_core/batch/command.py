"""`vmafx batch`, the command: read the jobs, open the results, run here or on a cluster, sum up."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from vmafx_core import cache
from vmafx_core.batch.grouping import available_memory, default_group_size, task_limit, units
from vmafx_core.batch.jobsfile import Entry, read_jobs
from vmafx_core.batch.local import cores, local_sizing, run_local
from vmafx_core.batch.progress import BatchProgress
from vmafx_core.batch.results import FRAMES_KEY, Known, Outcome, RecordFn, ResultWriter, keep_frames, summary_csv
from vmafx_core.errors import BadInput, ExitCode
from vmafx_core.files import write_atomically

log = logging.getLogger(__name__)

BATCH_HELP = """\b
Exit codes:
  0    every job of the batch has an ok result
  1    at least one job failed (its line in RESULTS says why)
  2    bad input (usage, unreadable jobs file, duplicate ids, results file not ours)
  3    environment missing (--cluster without the dask extra, scheduler unreachable)
  130  interrupted: running jobs stopped, finished results kept; run again to resume
"""


_CLUSTER_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")


def _run(runnable: Sequence[Entry], record: RecordFn, progress: BatchProgress, client: Any, *, jobs: int | None,
         threads_per_job: int | None, ffmpeg: str | None, out: Path, total: int, known: Mapping[str, Known],
         group_size: int | None) -> None:
    """Run the jobs here or on the cluster; on Ctrl-C say what was kept before the error line."""
    try:
        if client is not None:
            from vmafx_core.batch import cluster as dask_cluster
            size = group_size or dask_cluster.worker_group_size(client, threads_per_job)
            dask_cluster.run_on_cluster(client, _units(runnable, size), record, progress,
                                       threads_per_job=threads_per_job, ffmpeg=ffmpeg,
                                       cache=cache.batch_setting())
        elif runnable:
            assert jobs is not None and threads_per_job is not None
            size = group_size or default_group_size(jobs, threads_per_job, available_memory(), task_limit())
            run_local(_units(runnable, size), record, progress, jobs=jobs, threads_per_job=threads_per_job,
                      ffmpeg=ffmpeg)
    except BaseException:
        progress.close()
        ok = sum(1 for k in list(known.values()) if k.status == "ok")
        click.echo(f"vmafx: batch stopped: {ok} of {total} jobs have an ok result in {out}; "
                   "run the same command again to resume", err=True)
        raise
    progress.close()


def _units(runnable: Sequence[Entry], size: int) -> list[list[Entry]]:
    made = units(runnable, size, _shares_passes)
    grouped = sum(len(u) for u in made if len(u) > 1)
    if grouped:
        log.info("%d of %d jobs scored in %d shared passes (group size at most %d)", grouped, len(runnable),
                 sum(1 for u in made if len(u) > 1), size)
    return made


_cache_choice: dict[str, Any] = {"no_cache": False, "cache_dir": None}


def _cache_flag(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """`--no-cache`/`--cache-dir`: the cache every job of the batch uses (on by default); their
    callbacks set the process's default, the command's code is untouched."""
    _cache_choice[str(param.name)] = value
    folder = _cache_choice["cache_dir"]
    cache.use_for_batch(not _cache_choice["no_cache"], None if folder is None else str(folder))


def _shares_passes(scorer: str) -> bool:
    """Whether the installed scorer `scorer` scores several distorted in one pass."""
    from vmafx_core.errors import VmafxError
    from vmafx_core.plugins import shared

    try:
        provided = shared().scorers().get(scorer)
    except VmafxError:  # reported when the job runs
        return False
    return provided is not None and provided.item.score_shared is not None


def run_batch(jobs_file: Path, out: Path, *, jobs: int | None = None, threads_per_job: int | None = None,
              cluster: str | None = None, summary: Path | None = None, skip_failed: bool = False,
              ffmpeg: str | None = None, show_progress: bool = False, group_size: int | None = None,
              frames: bool = True) -> ExitCode:
    """Run every job of `jobs_file` that has no result yet; return the batch's exit code.

    `frames`: keep each job's per-frame values in the frames folder beside `out` (`keep_frames`)."""
    if cluster is not None:
        if not _CLUSTER_ADDRESS.match(cluster):
            raise BadInput(f"--cluster {cluster!r}: give the Dask scheduler as tcp://HOST:PORT")
        if jobs is not None:
            raise BadInput("--jobs sizes the local pool; with --cluster, each worker's --nthreads decides")
        from vmafx_core.batch import cluster as dask_cluster
        dask_cluster.require()
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
            outcome = keep_frames(out, dict(outcome), entry.id) if frames else \
                {k: v for k, v in outcome.items() if k != FRAMES_KEY}
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
                from vmafx_core.batch import cluster as dask_cluster
                client = stack.enter_context(dask_cluster.connect(cluster))  # before anything is written
            for entry in todo:
                if entry.problem is not None:
                    record(entry, {"status": "failed", "error": f"line {entry.line}: {entry.problem}",
                                   "exit_code": int(ExitCode.BAD_INPUT)}, running=False)
            _run(runnable, record, progress, client, jobs=jobs, threads_per_job=threads_per_job, ffmpeg=ffmpeg,
                 out=out, total=len(entries), known=known, group_size=group_size)
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
@click.option("--group-size", type=click.IntRange(min=1),
              help="Jobs that differ only in their distorted scored together in one pass over their reference, "
                   "at most N per pass; 1: every job alone (default: what a job slot's memory holds, at most 8; "
                   "README: Batches).")
@click.option("--no-progress", is_flag=True, help="No progress bar even on a terminal.")
@click.option("--no-frames", is_flag=True,
              help="Do not keep per-frame values (by default each job's are a CSV in RESULTS.frames/ beside --out, "
                   "named by the line's frames_file).")
@click.option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write an HTML report of every result in --out (needs the report extra).")
@click.option("--curve-by", "curve_by", multiple=True, metavar="LABEL",
              help="In the --report: one rate-quality curve per value of this job label (repeatable).")
@click.option("--plugins", "plugin_names", metavar="A,B",
              help="Load only these plugins for the batch's jobs (like $VMAFX_PLUGINS; on a cluster the "
                   "workers' own installation decides).")
@click.option("--no-cache", is_flag=True, expose_value=False, callback=_cache_flag,
              help="Score every job, even those the result cache holds (README: Result cache).")
@click.option("--cache-dir", type=click.Path(file_okay=False), expose_value=False, callback=_cache_flag,
              help="Result cache folder (default: $VMAFX_CACHE_DIR/results).")
def batch(jobs_file: Path, out: Path, jobs: int | None, threads_per_job: int | None, summary: Path | None,
          cluster: str | None, skip_failed: bool, ffmpeg_path: str | None, group_size: int | None, no_progress: bool,
          report_file: Path | None, plugin_names: str | None, curve_by: tuple[str, ...] = (),
          no_frames: bool = False) -> None:
    """Score every job of JOBS.jsonl (one `vmafx run --job` object per line) into --out.

    Jobs that already have an ok line in --out are skipped, so running the same command again
    after a crash or Ctrl-C resumes the batch. A failing job is recorded and the batch goes on.
    """
    from vmafx_core.clierrors import user_errors

    with user_errors():
        if plugin_names is not None:
            from vmafx_core.plugins import allow_list, use_only

            use_only(allow_list(plugin_names))
        if report_file is not None:  # before the batch runs, not after
            from vmafx_core.report.command import for_batch, require_extra
            require_extra()
        code = run_batch(jobs_file, out, jobs=jobs, threads_per_job=threads_per_job, cluster=cluster,
                         summary=summary, skip_failed=skip_failed, ffmpeg=ffmpeg_path,
                         show_progress=sys.stderr.isatty() and not no_progress, group_size=group_size,
                         frames=not no_frames)
        if report_file is not None:
            for_batch(out, report_file, curve_by)
    sys.exit(int(code))
