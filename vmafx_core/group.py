"""Several distorted against one reference: the reference read and decoded once for all of them.

`vmafx run REF DIS1 DIS2 ...` and a job file with `distorted = [...]` come here. The reference is
prepared once, each distorted on its own (one that is missing fails alone, before anything is
read), and the scorer scores the pairs in one pass (its `score_shared`: libvmaf's `score_group`). Every result is
checked as a separate run's is; a pair that fails its checks is scored again alone, so its error is
exactly the one its own run gives, and the others' results are kept. When the whole pass fails (an
input cut off or unreadable makes ffmpeg stop), or the pairs cannot share a pass (a sync search, a
rate conversion, an offset, models at several precisions, a scorer without `score_shared`, an
encode), each pair is
scored on its own: the same results, without the shared read.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from vmafx_core import interrupts, lifecycle
from vmafx_core.cache import ResultCache
from vmafx_core.errors import BadInput, VmafxError
from vmafx_core.executor import run_job
from vmafx_core.job import Job, Labels
from vmafx_core.lifecycle import ProgressFn, ResultOrError
from vmafx_core.plugins import Plugins
from vmafx_core.types import CannotShare, InputRequest, PrepareContext, PreparedInput, StorageBackend

log = logging.getLogger(__name__)


def run_group(jobs: Sequence[Job], options: Any, plugins: Plugins, *, ffmpeg: str | None = None,
              progress: ProgressFn | None = None, cancelled: Callable[[], bool] | None = None,
              cache: ResultCache | None = None) -> list[ResultOrError]:
    """Score jobs that share their reference; one result or error per job, in order.

    `cancelled` and `cache` are `executor.run_job`'s: a cached member is answered before the pass,
    which scores only the others.
    """
    first = jobs[0]
    def shared(job: Job) -> Job:
        return attrs.evolve(job, distorted=None, id=None, labels=Labels({}))

    if any(shared(j) != shared(first) for j in jobs):
        raise BadInput("jobs scored as a group must differ only in their distorted")
    provided = plugins.scorers().get(first.scorer_name)
    if (provided is None or provided.item.score_shared is None or first.encode is not None or first.ladder
            or len(jobs) == 1):
        return _one_by_one(jobs, options, plugins, ffmpeg, progress, cancelled, cache)
    setup = lifecycle.set_up(first, options, plugins, ffmpeg=ffmpeg, cancelled=cancelled, cache=cache)
    score_shared = setup.scorer.score_shared
    assert score_shared is not None
    outcomes: dict[int, ResultOrError] = {}
    ref_request = lifecycle.input_requests(first)[0]
    with contextlib.ExitStack() as stack:
        context = setup.prepare_context()
        ref_backend = lifecycle.choose_storage(setup, first, [ref_request])
        chosen: dict[int, tuple[InputRequest, Sequence[StorageBackend]]] = {}
        for index, job in enumerate(jobs):
            request = lifecycle.input_requests(job)[1]
            try:  # this distorted alone: outside the roots, no backend, ...
                chosen[index] = (request, lifecycle.choose_storage(setup, job, [request]))
            except VmafxError as exc:
                outcomes[index] = exc
        reference, distorted = _prepare_group(stack, ref_request, ref_backend, chosen, context,
                                              first.limits.prepare_retries)
        ready: dict[int, PreparedInput] = {}
        for index, got in distorted.items():
            try:  # this distorted alone: missing, unreadable, empty, the wrong size for its raw geometry
                if isinstance(got, VmafxError):
                    raise got
                lifecycle.check_size(reference, ref_request.raw)
                lifecycle.check_size(got, chosen[index][0].raw)
            except VmafxError as exc:
                outcomes[index] = exc
                continue
            ready[index] = got
        keys = _cache_keys(setup, jobs, reference, ready)
        pending: list[int] = []
        for index in ready:
            hit = lifecycle.cached(setup, keys.get(index), jobs[index])
            if hit is not None:
                outcomes[index] = hit
            else:
                pending.append(index)
        interrupts.check()
        requests = [setup.score_request(reference, ready[i], ref_request.raw, chosen[i][0].raw, progress)
                    for i in pending]
        prepared_at = time.monotonic()
        alone: list[int] = []
        if len(requests) > 1:
            try:
                scored = score_shared(requests)
            except CannotShare as why:
                log.info("scoring the %d distorted one by one: %s", len(requests), why)
                alone = list(pending)
            except VmafxError as exc:
                if interrupts.ends_the_run(exc):
                    raise
                log.info("the shared pass failed (%s); scoring each distorted alone", exc)
                alone = list(pending)
            else:
                scored_at = time.monotonic()
                for index, output in zip(pending, scored, strict=True):
                    if isinstance(output, Exception):
                        alone.append(index)
                        continue
                    try:
                        outcomes[index] = lifecycle.build_result(setup, lifecycle.Scoring(
                            job=jobs[index], output=output, reference=reference, distorted=ready[index],
                            storage=(ref_backend[0].name, chosen[index][1][0].name), prepared_at=prepared_at,
                            scored_at=scored_at, key=keys.get(index)))
                    except VmafxError:
                        alone.append(index)
        else:
            alone = list(pending)
    for index in alone:  # scored again on its own: its result, or exactly its own run's error
        outcomes[index] = _one_by_one([jobs[index]], options, plugins, ffmpeg, progress, cancelled, cache)[0]
    return [outcomes[i] for i in range(len(jobs))]


def _prepare_group(stack: contextlib.ExitStack, ref_request: InputRequest, ref_backend: Sequence[StorageBackend],
                   chosen: dict[int, tuple[InputRequest, Sequence[StorageBackend]]], context: PrepareContext,
                   retries: int) -> tuple[PreparedInput, dict[int, PreparedInput | VmafxError]]:
    """The reference and each distorted prepared: all in one preparation (one rclone server for a
    bucket, as a pair's two inputs share one) when they go to one backend and none fails; else the
    reference alone (its failure fails the group) and each distorted alone, so that one that is
    missing gets its own error and the others are still scored."""
    if chosen and all(b[0].name == ref_backend[0].name for _, b in chosen.values()):
        attempt = contextlib.ExitStack()
        try:
            got = lifecycle.prepare_inputs(attempt, [ref_request, *(r for r, _ in chosen.values())],
                                           [ref_backend[0]] * (len(chosen) + 1), context, 0)
        except VmafxError as exc:
            attempt.close()
            if interrupts.ends_the_run(exc):
                raise
            log.info("preparing the group's inputs together failed (%s); preparing each alone", exc)
        else:
            stack.enter_context(attempt)
            return got[0], dict(zip(chosen, got[1:], strict=True))
    reference = lifecycle.prepare_inputs(stack, [ref_request], ref_backend, context, retries)[0]
    distorted: dict[int, PreparedInput | VmafxError] = {}
    for index, (request, backend) in chosen.items():
        try:
            distorted[index] = lifecycle.prepare_inputs(stack, [request], backend, context, retries)[0]
        except VmafxError as exc:
            if interrupts.ends_the_run(exc):
                raise
            distorted[index] = exc
    return reference, distorted


def _cache_keys(setup: lifecycle.Setup, jobs: Sequence[Job], reference: PreparedInput,
                ready: dict[int, PreparedInput]) -> dict[int, str | None]:
    """Each job's cache key; the identities (an `rclone lsjson` each for an object) looked up at
    once, the reference's once for all."""
    if setup.cache is None or not ready:
        return {}
    from concurrent.futures import ThreadPoolExecutor

    inputs = [reference, *ready.values()]
    with ThreadPoolExecutor(max_workers=min(8, len(inputs)), thread_name_prefix="vmafx-identity") as pool:
        identities = list(pool.map(lifecycle.identity, inputs))
    return {index: lifecycle.cache_key(setup, jobs[index], [identities[0], identity])
            for index, identity in zip(ready, identities[1:], strict=True)}


def _one_by_one(jobs: Sequence[Job], options: Any, plugins: Plugins, ffmpeg: str | None,
                progress: ProgressFn | None, cancelled: Callable[[], bool] | None = None,
                cache: ResultCache | None = None) -> list[ResultOrError]:
    return lifecycle.one_by_one(jobs, lambda job: run_job(job, options, plugins, ffmpeg=ffmpeg, progress=progress,
                                                          cancelled=cancelled, cache=cache))
