"""Parsing and running one job of a batch, here or on a Dask worker: always an outcome, never a user error raised."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vmafx_core.batch.results import FRAMES_KEY, Outcome
from vmafx_core.cache import ResultCache
from vmafx_core.errors import ExitCode, VmafxError
from vmafx_core.job import DEFAULT_SCORER
from vmafx_core.plugins import Plugins
from vmafx_core.plugins import for_job as plugins_for_job

log = logging.getLogger(__name__)


def _plugins(data: Mapping[str, Any]) -> Plugins:
    """One plugin manager per process (per allow-list a job names): entry points loaded once, not
    once per job."""
    return plugins_for_job(data)


def with_threads(data: Mapping[str, Any], threads: int | None, plugins: Plugins | None = None) -> Mapping[str, Any]:
    """Give a job `threads` threads when its scorer has a thread option (`Scorer.threads_option`)
    and the job leaves it unset or 0 ("all cores").

    Several jobs at once each taking every core would oversubscribe the machine.
    """
    if threads is None:
        return data
    scorer = data.get("scorer", {"name": DEFAULT_SCORER})
    if not isinstance(scorer, Mapping):
        return data
    name = scorer.get("name", DEFAULT_SCORER)
    provided = (plugins if plugins is not None else _plugins(data)).scorers().get(name)
    option = provided.item.threads_option if provided is not None else None
    if option is None:
        return data
    current = scorer.get(option)
    if current is not None and not (type(current) is int and current == 0):
        return data
    return {**data, "scorer": {"name": name, **scorer, option: threads}}


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
            ffmpeg: str | None = None, cancelled: Callable[[], bool] | None = None,
            cache: ResultCache | None = None) -> Outcome:
    """Parse and run one job; return its result or its error as plain data, never raise a user error.

    This is what a Dask worker runs, so everything it returns must pickle and nothing a user can
    cause may come back as an exception (that would count as a task failure and be retried).
    `cache` is the result cache to use (default: the process's, which `vmafx batch` sets).
    """
    from vmafx_core.executor import ladder_result, run_job

    try:
        plugins = _plugins(data)
        job, options = plugins.parse_job(with_threads(data, threads_per_job, plugins), origin)
        if getattr(job, "ladder", ()):
            # as `vmafx run --job` does: the reference read once for every rung, one result holding them all
            from vmafx_core.ladder import ladder_rows, run_ladder

            outcomes = run_ladder(job, options, plugins, ffmpeg=ffmpeg, cancelled=cancelled)
            rows, failed = ladder_rows(job, outcomes)
            rung_frames = [None if isinstance(o, VmafxError) else list(o[1]) for o in outcomes]
            if failed is not None:  # the ladder is not done: rerun on resume, the rungs that worked kept here
                return {**failure(failed), **ladder_result(job, rows)}
            return {"status": "ok", **ladder_result(job, rows), FRAMES_KEY: rung_frames}
        result, frames = run_job(job, options, plugins, ffmpeg=ffmpeg, cancelled=cancelled, cache=cache)
        return {"status": "ok", **result.to_dict(), FRAMES_KEY: list(frames)}
    except VmafxError as exc:
        return failure(exc)
    except Exception as exc:  # a bug: keep the batch going, and keep the traceback in the log
        return _bug(origin, exc)


def _bug(origin: str, exc: Exception) -> Outcome:
    log.exception("%s: unexpected error", origin)
    return {"status": "failed", "error": f"unexpected error {type(exc).__name__}: {exc}",
            "exit_code": int(ExitCode.JOB_FAILED)}


def execute_group(members: Sequence[tuple[str, Mapping[str, Any]]], *, threads_per_job: int | None,
                  ffmpeg: str | None = None, cancelled: Callable[[], bool] | None = None,
                  cache: ResultCache | None = None) -> list[Outcome]:
    """Run jobs that share their reference and settings (`grouping.units`) together: one outcome
    each, in order, as `execute` gives them.

    `members` are (origin, job data). A member whose line does not parse fails alone; the others
    go to `group.run_group`, which answers cached ones first and scores the rest in one pass. When
    the group as a whole fails (its reference cannot be prepared), each member runs alone so that
    its error is exactly its own run's.
    """
    from vmafx_core.errors import Interrupted
    from vmafx_core.group import run_group

    if len(members) == 1:
        origin, data = members[0]
        return [execute(data, origin=origin, threads_per_job=threads_per_job, ffmpeg=ffmpeg, cancelled=cancelled,
                        cache=cache)]
    outcomes: dict[int, Outcome] = {}
    parsed: list[tuple[int, Any]] = []
    options: Any = None
    try:
        plugins = _plugins(members[0][1])  # members share every field but id and distorted
        for index, (origin, data) in enumerate(members):
            try:
                job, options = plugins.parse_job(with_threads(data, threads_per_job, plugins), origin)
            except VmafxError as exc:
                outcomes[index] = failure(exc)
                continue
            parsed.append((index, job))
        if parsed:
            scored = run_group([job for _, job in parsed], options, plugins, ffmpeg=ffmpeg, cancelled=cancelled,
                               cache=cache)
            for (index, _), outcome in zip(parsed, scored, strict=True):
                outcomes[index] = (failure(outcome) if isinstance(outcome, VmafxError)
                                   else {"status": "ok", **outcome[0].to_dict(), FRAMES_KEY: list(outcome[1])})
    except Interrupted as exc:
        return [outcomes.get(i) or failure(exc) for i in range(len(members))]
    except VmafxError:
        for index, _ in parsed:  # exactly each one's own error, or its result
            origin, data = members[index]
            outcomes[index] = execute(data, origin=origin, threads_per_job=threads_per_job, ffmpeg=ffmpeg,
                                      cancelled=cancelled, cache=cache)
    except Exception as exc:  # a bug: keep the batch going, and keep the traceback in the log
        bug = _bug(members[0][0], exc)
        return [outcomes.get(i) or bug for i in range(len(members))]
    return [outcomes[i] for i in range(len(members))]
