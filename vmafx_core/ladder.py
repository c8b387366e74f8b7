"""An encode ladder: the reference read and decoded once for every rung's encoder and scorer.

One encoder ffmpeg reads the reference, splits the decoded frames to one encoder per rung and
muxes the raw frames (stream 0) and every rung's encode (stream i+1) into one NUT on a pipe
(`encode.start_ladder`); one scorer ffmpeg reads that pipe and scores every rung against stream 0
with its own scorer instance (the scorer's `score_shared(shared=...)`, libvmaf's `score_group`).
Nothing is written to disk. Each
rung's plan and graph are those of its separate run, so every value equals that run's.

When the rungs cannot share a pass (one rung, a scorer without `score_shared`, a sync search, frame-mismatch
scoring, an interlaced reference, options that cannot be given per stream, `VMAFX_LADDER=per-rung`)
or the shared pass fails (a rung's encoder refuses its options, a stream ends early), each rung
is encoded and scored on its own, as before: its result, or exactly its own run's error. The
result says which way each rung ran (`provenance.ladder`, `notes`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

import attrs

from vmafx_core import encode, executor, interrupts, lifecycle
from vmafx_core.errors import BadInput, JobFailed, VmafxError
from vmafx_core.ffmpeg import probe
from vmafx_core.job import Job
from vmafx_core.lifecycle import ProgressFn, ResultOrError
from vmafx_core.plugins import Plugins
from vmafx_core.types import CannotShare

log = logging.getLogger(__name__)

#: `shared` (default): one read of the reference for all rungs; `per-rung`: each rung on its own
ENV_MODE = "VMAFX_LADDER"
MODES = ("shared", "per-rung")

def mode() -> str:
    value = os.environ.get(ENV_MODE, "shared").strip().lower() or "shared"
    if value not in MODES:
        raise BadInput(f"{ENV_MODE}={value!r}: use one of {', '.join(MODES)}")
    return value


def save_destinations(save_encode: str | None, count: int) -> list[str | None]:
    """`--save-encode` for a ladder: one destination per rung, from `{rung}` in the given one."""
    if save_encode is None:
        return [None] * count
    if "{rung}" not in save_encode:
        raise BadInput(f"--save-encode {save_encode}: a ladder saves one encode per rung; put {{rung}} in the "
                       "name for the rung's index, e.g. enc/src-{rung}.nut")
    return [save_encode.replace("{rung}", str(i)) for i in range(count)]


def run_ladder(job: Job, options: Any, plugins: Plugins, *, ffmpeg: str | None = None,
               progress: ProgressFn | None = None, cancelled: Callable[[], bool] | None = None,
               save_encode: str | None = None) -> list[ResultOrError]:
    """Encode and score every rung of `job.ladder`; one result or error per rung, in order."""
    rungs = executor.ladder_rungs(job)
    saves = save_destinations(save_encode, len(rungs))
    why = _not_shared(job, options, plugins)
    if why is None:
        try:
            return _shared(job, rungs, options, plugins, ffmpeg, progress, cancelled, saves)
        except _PerRung as fallback:
            why = str(fallback)
    log.info("ladder: each rung encoded and scored on its own: %s", why)
    return _one_by_one(rungs, options, plugins, ffmpeg, progress, cancelled, saves, why)


class _PerRung(Exception):
    """The shared pass cannot run or failed as a whole: the reason, for each rung's notes."""


def _not_shared(job: Job, options: Any, plugins: Plugins) -> str | None:
    """Why the rungs cannot share one pass, known before anything runs; None when they can."""
    if mode() == "per-rung":
        return f"{ENV_MODE}=per-rung"
    if len(job.ladder) == 1:
        return "a ladder of one rung"
    provided = plugins.scorers().get(job.scorer_name)
    if provided is None or provided.item.score_shared is None:
        return f"the scorer {job.scorer_name!r} scores one pair per pass"
    settings = job.alignment
    if settings.sync == "auto" or settings.allow_frame_mismatch or settings.interlace_check == "deinterlace":
        return "sync, frame-mismatch scoring or deinterlacing on idet's word need each rung on its own"
    for index, spec in enumerate(job.ladder):
        try:
            encode.rung_args(spec, index + 1)
        except encode.NotShareable as exc:
            return f"rung {index}: {exc}"
    return None


def _shared(job: Job, rungs: Sequence[Job], options: Any, plugins: Plugins, ffmpeg: str | None,
            progress: ProgressFn | None, cancelled: Callable[[], bool] | None,
            saves: Sequence[str | None]) -> list[ResultOrError]:
    # a ladder's rungs are encodes: never cached
    setup = attrs.evolve(lifecycle.set_up(job, options, plugins, ffmpeg=ffmpeg, cancelled=cancelled), cache=None)
    score_shared = setup.scorer.score_shared
    assert score_shared is not None
    outcomes: dict[int, ResultOrError] = {}
    alone: list[int] = []
    names = encode.video_encoders(setup.ffmpeg)
    for index, spec in enumerate(job.ladder):
        if spec.encoder not in names:  # its own run says so, before anything is read
            alone.append(index)
    shared = [i for i in range(len(rungs)) if i not in alone]
    if len(shared) < 2:
        raise _PerRung("fewer than two rungs with a known encoder")
    request = lifecycle.input_requests(job)[0]
    raw = request.raw
    backends = lifecycle.choose_storage(setup, job, [request])
    context = setup.prepare_context()
    savers = [plugins.choose_writer(save, job.storage, dict(job.storage_options)) if save is not None else None
              for save in saves]
    with contextlib.ExitStack() as stack:
        sink_stacks = [stack.enter_context(contextlib.ExitStack()) for _ in rungs]
        sinks: list[IO[bytes] | None] = [
            lifecycle.open_save(sink_stacks[i], savers[i], saves[i], context)  # type: ignore[arg-type]
            if savers[i] is not None and saves[i] is not None and i in shared else None for i in range(len(rungs))]
        reference = lifecycle.prepare_inputs(stack, [request], backends, context, job.limits.prepare_retries)[0]
        lifecycle.check_size(reference, raw)
        ref_info = probe(setup.ffmpeg, reference, raw, timeout=job.limits.stall_timeout)
        if ref_info.field_order not in (None, "progressive"):
            raise _PerRung(f"the reference is interlaced ({ref_info.field_order}): its field flags do not travel "
                           "with its raw frames")
        lifecycle.check_not_cancelled(setup)
        specs = [job.ladder[i] for i in shared]
        try:
            with encode.start_ladder(setup.ffmpeg, reference, raw, ref_info, specs, [saves[i] for i in shared],
                                     [sinks[i] for i in shared]) as running:
                prepared_at = time.monotonic()
                requests = [setup.score_request(reference, rung.prepared, raw, None, progress)
                            for rung in running.rungs]
                scored = score_shared(requests, shared=running.prepared, reference_info=ref_info)
        except CannotShare as why:
            raise _PerRung(str(why)) from None
        except VmafxError as exc:
            if interrupts.ends_the_run(exc) or setup.should_stop():
                raise
            # the encoder failed (`SharedEncoderFailed`: which rung is not known), an input broke, a
            # stall: each rung runs on its own, and gets its own result or exactly its own run's error
            raise _PerRung(f"the shared pass failed: {exc.message}") from None
        scored_at = time.monotonic()
        note = (f"the reference was read and decoded once for the {len(shared)} rungs of this ladder: one encoder "
                "ffmpeg encoded every rung and one scorer ffmpeg scored them all, streamed (no encode on disk)")
        for position, output in enumerate(scored):
            index, rung_run = shared[position], running.rungs[position]
            problem: VmafxError | None = running.failed.get(position)
            if problem is None and not isinstance(output, Exception):
                try:
                    result, frames = lifecycle.build_result(setup, lifecycle.Scoring(
                        job=rungs[index], output=output, reference=reference, distorted=rung_run.prepared,
                        storage=(backends[0].name, "encode"), prepared_at=prepared_at, scored_at=scored_at,
                        encoding=rung_run))
                except VmafxError as exc:
                    problem = exc
                else:
                    assert result.encode is not None
                    outcomes[index] = (attrs.evolve(
                        result, notes=[*result.notes, note], encode={**result.encode, "shared_encode": True},
                        provenance={**result.provenance, "ladder": {
                            "mode": "shared", "rungs": len(rungs), "index": index, "shared_by": len(shared),
                            "reference_decoded_once": True}}), frames)
                    continue
            if position in running.failed:  # its --save-encode copy failed: that is its error
                outcomes[index] = running.failed[position]
            else:  # its checks failed: scored again on its own, for exactly its own run's error
                alone.append(index)
            failure = problem or JobFailed("scored again on its own")
            sink_stacks[index].__exit__(type(failure), failure, None)  # nothing half-saved is kept
    for index in sorted(alone):
        outcomes[index] = _one_by_one([rungs[index]], options, plugins, ffmpeg, progress, cancelled,
                                      [saves[index]], "its encoder or its checks failed in the shared pass"
                                      if index in shared else "its encoder is not in this ffmpeg")[0]
    return [outcomes[i] for i in range(len(rungs))]


def _one_by_one(rungs: Sequence[Job], options: Any, plugins: Plugins, ffmpeg: str | None,
                progress: ProgressFn | None, cancelled: Callable[[], bool] | None,
                saves: Sequence[str | None], why: str) -> list[ResultOrError]:
    """Each rung encoded and scored by its own pair of ffmpeg runs (the reference read twice each)."""
    save_of = dict(zip((r.id for r in rungs), saves, strict=True))
    outcomes = lifecycle.one_by_one(rungs, lambda rung: executor.run_job(
        rung, options, plugins, ffmpeg=ffmpeg, progress=progress, save_encode=save_of[rung.id], cancelled=cancelled))
    marked: list[ResultOrError] = []
    for rung, outcome in zip(rungs, outcomes, strict=True):
        if isinstance(outcome, VmafxError):
            marked.append(outcome)
            continue
        result, frames = outcome
        index = int(str(rung.id).rsplit("/", 1)[-1]) if rung.id and "/" in rung.id else None
        marked.append((attrs.evolve(result, notes=[*result.notes, f"encoded and scored on its own ({why})"],
                                    provenance={**result.provenance,
                                                "ladder": {"mode": "per-rung", "index": index, "reason": why}}),
                       frames))
    return marked


def ladder_rows(job: Job, outcomes: Sequence[ResultOrError]) -> tuple[list[dict[str, Any]], VmafxError | None]:
    """The rungs of a `vmafx.ladder` result: a `vmafx.result` each, or a `vmafx.error` for a rung
    that failed; and the first failure, whose exit code the ladder's is."""
    rows: list[dict[str, Any]] = []
    first: VmafxError | None = None
    for rung, outcome in zip(executor.ladder_rungs(job), outcomes, strict=True):
        if isinstance(outcome, VmafxError):
            assert rung.encode is not None
            rows.append({"schema": "vmafx.error", "job_id": rung.id, "encode": attrs.asdict(rung.encode),
                         "distorted": encode.describe(rung.encode), "error": outcome.message,
                         "exit_code": int(outcome.exit_code)})
            first = first or outcome
        else:
            rows.append(outcome[0].to_dict())
    return rows, first
