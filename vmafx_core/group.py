"""Several distorted against one reference: the reference read and decoded once for all of them.

`vmafx run REF DIS1 DIS2 ...` and a job file with `distorted = [...]` come here. The reference is
prepared once, each distorted on its own (one that is missing fails alone, before anything is
read), and the libvmaf scorer scores the pairs in one ffmpeg pass (`score_group`). Every result is
checked as a separate run's is; a pair that fails its checks is scored again alone, so its error is
exactly the one its own run gives, and the others' results are kept. When the whole pass fails (an
input cut off or unreadable makes ffmpeg stop), or the pairs cannot share a pass (a sync search, a
rate conversion, an offset, models at several precisions, another scorer, an encode), each pair is
scored on its own: the same results, without the shared read.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from vmafx_core import executor, interrupts
from vmafx_core.cache import ResultCache, make_key, process_default
from vmafx_core.errors import BadInput, VmafxError
from vmafx_core.ffmpeg import find_ffmpeg
from vmafx_core.job import Job, Labels
from vmafx_core.plugins import Plugins
from vmafx_core.result import Result
from vmafx_core.types import InputRequest, PrepareContext, PreparedInput, ScoreRequest, StorageBackend

log = logging.getLogger(__name__)

Outcome = tuple[Result, Sequence[dict[str, float]]] | VmafxError


def run_group(jobs: Sequence[Job], options: Any, plugins: Plugins, *, ffmpeg: str | None = None,
              progress: executor.ProgressFn | None = None, cancelled: Callable[[], bool] | None = None,
              cache: ResultCache | None = None) -> list[Outcome]:
    """Score jobs that share their reference; one result or error per job, in order.

    `cancelled` and `cache` are `executor.run_job`'s: a cached member is answered before the pass,
    which scores only the others.
    """
    first = jobs[0]
    def shared(job: Job) -> Job:
        return attrs.evolve(job, distorted=None, id=None, labels=Labels({}))

    if any(shared(j) != shared(first) for j in jobs):
        raise BadInput("jobs scored as a group must differ only in their distorted")
    if first.scorer_name != "libvmaf" or first.encode is not None or first.ladder or len(jobs) == 1:
        return _one_by_one(jobs, options, plugins, ffmpeg, progress, cancelled, cache)
    from vmafx_core.scorers.libvmaf import NotGroupable, score_group

    started = time.monotonic()
    ffmpeg_path = find_ffmpeg(ffmpeg)
    if callable(getattr(options, "check", None)):
        options.check(ffmpeg_path)
    outcomes: dict[int, Outcome] = {}
    raws = {"reference": first.reference.raw.to_raw() if first.reference.raw else None}
    ref_request = InputRequest("reference", first.reference.uri, raws["reference"])
    limits = first.limits
    deadline = started + limits.timeout if limits.timeout else None
    cache = cache if cache is not None else process_default()
    should_stop = executor._cancel_check(cancelled)
    with contextlib.ExitStack() as stack:
        context = PrepareContext(options=dict(first.storage_options), ready_timeout=limits.prepare_timeout,
                                 deadline=time.monotonic() + limits.prepare_timeout)
        ref_backend = plugins.choose_storage([ref_request.uri], first.storage, dict(first.storage_options))
        if first.allow_roots:
            executor.check_allowed([ref_request], ref_backend, first.allow_roots, plugins)
        chosen: dict[int, tuple[InputRequest, Any, Sequence[StorageBackend]]] = {}
        for index, job in enumerate(jobs):
            assert job.distorted is not None
            dis_raw = job.distorted.raw.to_raw() if job.distorted.raw else None
            request = InputRequest("distorted", job.distorted.uri, dis_raw)
            try:
                backend = plugins.choose_storage([request.uri], job.storage, dict(job.storage_options))
                if job.allow_roots:
                    executor.check_allowed([request], backend, job.allow_roots, plugins)
            except VmafxError as exc:  # this distorted alone: outside the roots, no backend, ...
                outcomes[index] = exc
                continue
            chosen[index] = (request, dis_raw, backend)
        reference, distorted = _prepare_group(stack, ref_request, ref_backend, chosen, context, limits.prepare_retries)
        for index, got in list(distorted.items()):
            if isinstance(got, VmafxError):  # this distorted alone: missing, unreadable, ...
                outcomes[index] = got
                del distorted[index]
        ready: dict[int, PreparedInput] = {}
        for index, prepared in distorted.items():
            assert isinstance(prepared, PreparedInput)
            try:
                for p, raw in ((reference, raws["reference"]), (prepared, chosen[index][1])):
                    if p.size == 0:
                        raise BadInput(f"{p.role} {p.display}: is empty (0 bytes)")
                    if raw is not None and p.size is not None:
                        executor._check_raw_size(p, raw)
            except VmafxError as exc:  # this distorted alone: empty, the wrong size for its raw geometry
                outcomes[index] = exc
                continue
            ready[index] = prepared
        release = plugins.scorer_release(first.scorer_name)  # results and cache keys name it
        keys = _cache_keys(cache, jobs, options, reference, ready, ffmpeg_path, plugins, release)
        pending: list[tuple[int, Job, PreparedInput, str, Any, str | None]] = []
        for index, prepared in ready.items():
            key = keys.get(index)
            hit = executor._cached(cache, key, jobs[index], started) if cache is not None and key else None
            if hit is not None:
                outcomes[index] = hit
                continue
            pending.append((index, jobs[index], prepared, chosen[index][2][0].name, chosen[index][1], key))
        interrupts.check()
        requests = [ScoreRequest(reference=reference, distorted=prepared, reference_raw=raws["reference"],
                                 distorted_raw=dis_raw, options=options, alignment=first.alignment, ffmpeg=ffmpeg_path,
                                 progress=progress, stall_timeout=limits.stall_timeout, deadline=deadline,
                                 cancelled=should_stop)
                     for _, _, prepared, _, dis_raw, _ in pending]
        prepared_at = time.monotonic()
        alone: list[int] = []
        if len(requests) > 1:
            try:
                scored = score_group(requests)
            except NotGroupable as why:
                log.info("scoring the %d distorted one by one: %s", len(requests), why)
                alone = [p[0] for p in pending]
            except VmafxError as exc:
                if interrupts.ends_the_run(exc):
                    raise
                log.info("the shared pass failed (%s); scoring each distorted alone", exc)
                alone = [p[0] for p in pending]
            else:
                scored_at = time.monotonic()
                for (index, job, prepared, name, dis_raw, key), output in zip(pending, scored, strict=True):
                    if isinstance(output, Exception):
                        alone.append(index)
                        continue
                    try:
                        outcomes[index] = executor._build_result(
                            job, "libvmaf", release, output,
                            {"reference": reference, "distorted": prepared},
                            [ref_backend[0].name, name], {**raws, "distorted": dis_raw}, started, prepared_at,
                            scored_at, None, cache, key)
                    except VmafxError:
                        alone.append(index)
        else:
            alone = [p[0] for p in pending]
    for index in alone:  # scored again on its own: its result, or exactly its own run's error
        outcomes[index] = _one_by_one([jobs[index]], options, plugins, ffmpeg, progress, cancelled, cache)[0]
    return [outcomes[i] for i in range(len(jobs))]


def _prepare_group(stack: contextlib.ExitStack, ref_request: InputRequest, ref_backend: Sequence[StorageBackend],
                   chosen: dict[int, tuple[InputRequest, Any, Sequence[StorageBackend]]], context: PrepareContext,
                   retries: int) -> tuple[PreparedInput, dict[int, PreparedInput | VmafxError]]:
    """The reference and each distorted prepared: all in one preparation (one rclone server for a
    bucket, as a pair's two inputs share one) when they go to one backend and none fails; else the
    reference alone (its failure fails the group) and each distorted alone, so that one that is
    missing gets its own error and the others are still scored."""
    if chosen and all(b[0].name == ref_backend[0].name for _, _, b in chosen.values()):
        attempt = contextlib.ExitStack()
        try:
            got = executor.prepare_all(attempt, [ref_request, *(r for r, _, _ in chosen.values())],
                                       [ref_backend[0]] * (len(chosen) + 1), context, 0)
        except VmafxError as exc:
            attempt.close()
            if interrupts.ends_the_run(exc):
                raise
            log.info("preparing the group's inputs together failed (%s); preparing each alone", exc)
        else:
            stack.enter_context(attempt)
            return got[0], dict(zip(chosen, got[1:], strict=True))
    reference = executor.prepare_all(stack, [ref_request], ref_backend, context, retries)[0]
    distorted: dict[int, PreparedInput | VmafxError] = {}
    for index, (request, _, backend) in chosen.items():
        try:
            distorted[index] = executor.prepare_all(stack, [request], backend, context, retries)[0]
        except VmafxError as exc:
            if interrupts.ends_the_run(exc):
                raise
            distorted[index] = exc
    return reference, distorted


def _cache_keys(cache: ResultCache | None, jobs: Sequence[Job], options: Any, reference: PreparedInput,
                ready: dict[int, PreparedInput], ffmpeg: str, plugins: Plugins,
                release: str) -> dict[int, str | None]:
    """Each job's cache key; the identities (an `rclone lsjson` each for an object) looked up at
    once, the reference's once for all."""
    if cache is None or not ready:
        return {}
    from concurrent.futures import ThreadPoolExecutor

    inputs = [reference, *ready.values()]
    with ThreadPoolExecutor(max_workers=min(8, len(inputs)), thread_name_prefix="vmafx-identity") as pool:
        identities = list(pool.map(executor._identity, inputs))
    module = plugins.scorer(jobs[0].scorer_name).score.__module__
    return {index: make_key(jobs[index], options, [identities[0], identity], ffmpeg, release, module)
            for index, identity in zip(ready, identities[1:], strict=True)}


def _one_by_one(jobs: Sequence[Job], options: Any, plugins: Plugins, ffmpeg: str | None,
                progress: executor.ProgressFn | None, cancelled: Callable[[], bool] | None = None,
                cache: ResultCache | None = None) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for job in jobs:
        interrupts.check()
        try:
            outcomes.append(executor.run_job(job, options, plugins, ffmpeg=ffmpeg, progress=progress,
                                             cancelled=cancelled, cache=cache))
        except VmafxError as exc:
            if interrupts.ends_the_run(exc):
                raise
            outcomes.append(exc)
    return outcomes


def run_many(data: dict[str, Any], origin: str, plugins: Plugins, ffmpeg: str | None, as_json: bool,
             output: Any, no_progress: bool, unsupported: Sequence[str], report_file: Any = None) -> int:
    """`vmafx run REF DIS1 DIS2 ...` (or `distorted = [...]`): one result per distorted; the exit code.

    stdout gets a JSON list with `--json` (one `vmafx.result` per distorted, in order; a failed one
    is `{"schema": "vmafx.error", "distorted": URI, "error": ..., "exit_code": N}`), else one line
    per distorted. The exit code is 0 when all were scored, else the first failure's. `report_file`:
    also the HTML report of every pair scored, with its per-frame values.
    """
    import json

    import click

    from vmafx_core.job import parse_job
    from vmafx_core.result import write_atomically

    if unsupported:
        raise BadInput(f"{', '.join(unsupported)} take one distorted: score several without them, or one by one")
    if report_file is not None:  # before anything runs
        from vmafx_core.report.command import require_extra
        require_extra()
    items = data["distorted"]
    if not items:
        raise BadInput(f"{origin}: distorted is an empty list")
    jobs: list[Job] = []
    options = None
    for i, item in enumerate(items):
        one = {**data, "distorted": {"uri": item} if isinstance(item, str) else item}
        if "id" in data:
            one["id"] = f"{data['id']}/{i}"
        job, options = parse_job(one, f"{origin} (distorted {i})", lambda n: _options_type(plugins, n))
        jobs.append(job)
    outcomes = run_group(jobs, options, plugins, ffmpeg=ffmpeg)
    interrupts.check()
    rows: list[dict[str, Any]] = []
    frames: list[Sequence[dict[str, float]] | None] = []
    code = 0
    for job, outcome in zip(jobs, outcomes, strict=True):
        assert job.distorted is not None
        if isinstance(outcome, VmafxError):
            rows.append({"schema": "vmafx.error", "job_id": job.id, "distorted": job.distorted.uri,
                         "error": outcome.message, "exit_code": int(outcome.exit_code)})
            where = "" if job.distorted.uri in outcome.message else f"distorted {job.distorted.uri}: "
            click.echo(f"vmafx: error: {where}{outcome.message}", err=True)
            code = code or int(outcome.exit_code)
            frames.append(None)
            continue
        rows.append(outcome[0].to_dict())
        frames.append(outcome[1])
        if not as_json:
            vmaf = rows[-1]["metrics"].get("vmaf")
            click.echo(f"{job.distorted.uri}  VMAF {vmaf['mean']:.6f}" if vmaf else job.distorted.uri)
    text = json.dumps(rows, indent=2) + "\n"
    if output is not None:
        write_atomically(output, text)
    if report_file is not None:
        from vmafx_core.report.command import for_many
        for_many(rows, frames, report_file)
    if as_json:
        click.echo(text, nl=False)
    return code


def _options_type(plugins: Plugins, name: str) -> type | None:
    provided = plugins.scorers().get(name)
    return provided.item.options_type if provided else None
