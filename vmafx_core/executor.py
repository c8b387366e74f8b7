"""Running one job: one pair, or one encode scored as it streams (the steps in `lifecycle`).

Everything a job starts lives inside one ExitStack, so servers, mounts and temp folders are
released in reverse order whatever happens: success, an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from vmafx_core import encode, lifecycle
from vmafx_core.cache import ResultCache
from vmafx_core.ffmpeg import probe
from vmafx_core.job import Job
from vmafx_core.lifecycle import ProgressFn, Scored, prepare_inputs
from vmafx_core.plugins import Plugins

__all__ = ["ProgressFn", "ladder_result", "ladder_rungs", "run_job"]


def run_job(job: Job, options: Any, plugins: Plugins, *, ffmpeg: str | None = None,
            progress: ProgressFn | None = None, save_encode: str | None = None,
            cancelled: Callable[[], bool] | None = None,
            cache: ResultCache | None = None) -> Scored:
    """Score one job; return the result and its per-frame values.

    `cancelled`, when given, is polled while scoring: True stops the job with `Interrupted`.
    `cache` (default: the process's, which `vmafx batch` sets) answers a job whose inputs and
    settings are unchanged from its stored result, and keeps the results it scores.
    """
    setup = lifecycle.set_up(job, options, plugins, ffmpeg=ffmpeg, cancelled=cancelled, cache=cache)
    requests = lifecycle.input_requests(job)
    raws = {r.role: r.raw for r in requests}
    if job.encode is not None:
        encode.check_encoder(setup.ffmpeg, job.encode)
    backends = lifecycle.choose_storage(setup, job, requests)
    context = setup.prepare_context()
    saver = plugins.choose_writer(save_encode, job.storage, dict(job.storage_options)) \
        if save_encode is not None and job.encode is not None else None

    encoding: encode.EncodeRun | None = None
    with contextlib.ExitStack() as stack:
        sink = lifecycle.open_save(stack, saver, save_encode, context) \
            if saver is not None and save_encode else None
        prepared = dict(zip((r.role for r in requests),
                            prepare_inputs(stack, requests, backends, context, job.limits.prepare_retries),
                            strict=True))
        if job.encode is not None:
            ref_info = probe(setup.ffmpeg, prepared["reference"], raws["reference"],
                             timeout=job.limits.stall_timeout)
            encoding = stack.enter_context(encode.start(
                setup.ffmpeg, prepared["reference"], raws["reference"], ref_info, job.encode, save_encode, sink))
            prepared["distorted"] = encoding.prepared
        prepared_at = time.monotonic()
        for p in prepared.values():
            lifecycle.check_size(p, raws.get(p.role))
        lifecycle.check_not_cancelled(setup)
        # identities cost a request each (an `rclone lsjson` per object): asked only for the cache
        key = (lifecycle.cache_key(setup, job, [lifecycle.identity(prepared[r.role]) for r in requests])
               if setup.cache is not None else None)
        hit = lifecycle.cached(setup, key, job)
        if hit is not None:
            return hit
        with lifecycle.integrity_explains(prepared):
            output = setup.scorer.score(setup.score_request(prepared["reference"], prepared["distorted"],
                                                            raws["reference"], raws.get("distorted"), progress,
                                                            segments=job.segments))
        lifecycle.check_integrity(prepared)  # while the storage is still prepared: the check may read its source
        scored_at = time.monotonic()

    storage = (backends[0].name, backends[1].name if len(backends) > 1 else "encode")
    return lifecycle.build_result(setup, lifecycle.Scoring(
        job=job, output=output, reference=prepared["reference"], distorted=prepared["distorted"],
        storage=storage, prepared_at=prepared_at, scored_at=scored_at, encoding=encoding, key=key,
        integrity_checked=True))


def ladder_rungs(job: Job) -> list[Job]:
    """The jobs of a ladder's rungs: one encode each, with ids `<id>/<index>`."""
    return [attrs.evolve(job, encode=rung, ladder=(), id=f"{job.id or 'ladder'}/{index}")
            for index, rung in enumerate(job.ladder)]


def ladder_result(job: Job, rungs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The result of a ladder: one `vmafx.result` per rung."""
    return {"schema": "vmafx.ladder", "schema_version": 1, "job_id": job.id, "rungs": list(rungs)}
