"""Running one job: choose storage, prepare inputs, score, check, pool.

Everything a job starts lives inside one ExitStack, so servers, mounts and temp folders are
released in reverse order whatever happens: success, an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

import attrs

from vmafx_core import __version__, encode, interrupts
from vmafx_core.cache import ResultCache, make_key, process_default
from vmafx_core.errors import BadInput, Interrupted, JobFailed, Unreachable, VmafxError
from vmafx_core.ffmpeg import find_ffmpeg, probe
from vmafx_core.job import Job
from vmafx_core.plugins import Plugins
from vmafx_core.result import InputReport, Result, Timings, pool
from vmafx_core.types import (
    InputRequest,
    PrepareContext,
    PreparedInput,
    RawVideo,
    ScoreOutput,
    ScoreRequest,
    StorageBackend,
)

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int | None, float], None]


def run_job(job: Job, options: Any, plugins: Plugins, *, ffmpeg: str | None = None,
            progress: ProgressFn | None = None, save_encode: str | None = None,
            cancelled: Callable[[], bool] | None = None,
            cache: ResultCache | None = None) -> tuple[Result, Sequence[dict[str, float]]]:
    """Score one job; return the result and its per-frame values.

    `cancelled`, when given, is polled while scoring: True stops the job with `Interrupted`.
    `cache` (default: the process's, which `vmafx batch` sets) answers a job whose inputs and
    settings are unchanged from its stored result, and keeps the results it scores.
    """
    cache = cache if cache is not None else process_default()
    started = time.monotonic()
    should_stop = _cancel_check(cancelled)
    _clean_stale_once(plugins)
    scorer = plugins.scorer(job.scorer_name)
    release = plugins.scorer_release(scorer.name)  # results and cache keys name it
    availability = scorer.availability()
    if not availability.usable:
        from vmafx_core.errors import EnvironmentMissing
        raise EnvironmentMissing(f"scorer {scorer.name!r} is not usable here: {availability.reason}")
    ffmpeg_path = find_ffmpeg(ffmpeg)
    if callable(getattr(options, "check", None)):
        options.check(ffmpeg_path)  # e.g. a model this ffmpeg lacks: before any input is read
    raws = {"reference": job.reference.raw.to_raw() if job.reference.raw else None,
            "distorted": job.distorted.raw.to_raw() if job.distorted and job.distorted.raw else None}
    requests = [InputRequest("reference", job.reference.uri, raws["reference"])]
    if job.distorted is not None:
        requests.append(InputRequest("distorted", job.distorted.uri, raws["distorted"]))
    if job.encode is not None:
        encode.check_encoder(ffmpeg_path, job.encode)
    backends = plugins.choose_storage([r.uri for r in requests], job.storage, dict(job.storage_options))
    if job.allow_roots:
        check_allowed(requests, backends, job.allow_roots, plugins)
    limits = job.limits
    deadline = started + limits.timeout if limits.timeout else None
    context = PrepareContext(options=dict(job.storage_options), ready_timeout=limits.prepare_timeout,
                             deadline=time.monotonic() + limits.prepare_timeout)

    saver = plugins.choose_writer(save_encode, job.storage, dict(job.storage_options)) \
        if save_encode is not None and job.encode is not None else None

    encoding: encode.EncodeRun | None = None
    with contextlib.ExitStack() as stack:
        sink = _open_save(stack, saver, save_encode, context) if saver is not None and save_encode else None
        prepared = _prepare(stack, requests, backends, context, limits.prepare_retries)
        if job.encode is not None:
            ref_info = probe(ffmpeg_path, prepared["reference"], raws["reference"], timeout=limits.stall_timeout)
            encoding = stack.enter_context(encode.start(
                ffmpeg_path, prepared["reference"], raws["reference"], ref_info, job.encode, save_encode, sink))
            prepared["distorted"] = encoding.prepared
        prepared_at = time.monotonic()
        for p in prepared.values():
            if p.size == 0:
                raise BadInput(f"{p.role} {p.display}: is empty (0 bytes)")
            raw = raws[p.role]
            if raw is not None and p.size is not None:
                _check_raw_size(p, raw)
        if should_stop():
            raise Interrupted("the job was cancelled before scoring started; no score is reported")
        key = None
        if cache is not None:
            key = make_key(job, options, [_identity(prepared[r.role]) for r in requests], ffmpeg_path,
                           release, scorer.score.__module__)
            hit = _cached(cache, key, job, started) if key is not None else None
            if hit is not None:
                return hit
        output = scorer.score(ScoreRequest(
            reference=prepared["reference"], distorted=prepared["distorted"],
            reference_raw=raws["reference"], distorted_raw=raws["distorted"],
            options=options, alignment=job.alignment, ffmpeg=ffmpeg_path, progress=progress,
            stall_timeout=limits.stall_timeout, deadline=deadline, cancelled=should_stop,
            segments=job.segments))
        scored_at = time.monotonic()

    return _build_result(job, scorer.name, release, output, prepared,
                         [b.name for b in backends], raws, started, prepared_at, scored_at, encoding, cache, key)


def _identity(prepared: PreparedInput) -> str | None:
    try:
        return prepared.identity() if prepared.identity is not None else None
    except Exception as exc:  # a backend's bug or a failed look-up: not cached, never wrong
        log.warning("%s %s: its identity could not be read (%s); not using the result cache",
                    prepared.role, prepared.display, exc)
        return None


def _cached(cache: ResultCache, key: str, job: Job, started: float) -> tuple[Result, list[dict[str, Any]]] | None:
    """The stored result under `key` as this job's (its id, this run's timings), or None."""
    from vmafx_core.job import converter

    found = cache.lookup(key)
    if found is None:
        return None
    data, frames = found
    try:
        stored: Result = converter.structure({k: v for k, v in data.items() if k != "cache"}, Result)
    except Exception as exc:  # an entry from another layout: scored again
        log.warning("result cache entry %s does not hold a result (%s); scoring again", cache.path(key), exc)
        return None
    total = round(time.monotonic() - started, 4)
    kept = data["cache"] if isinstance(data.get("cache"), dict) else {}
    result = attrs.evolve(stored, job_id=job.id, timings=Timings(prepare_s=total, score_s=0.0, total_s=total, fps=0.0),
                          cache={"hit": True, "key": key, "stored_at": kept.get("stored_at"),
                                 "scored_timings": data.get("timings")})
    return result, frames


def _build_result(job: Job, scorer_name: str, scorer_release: str, output: ScoreOutput,
                  prepared: dict[str, PreparedInput], backend_names: Sequence[str],
                  raws: dict[str, RawVideo | None], started: float, prepared_at: float, scored_at: float,
                  encoding: encode.EncodeRun | None, cache: ResultCache | None,
                  key: str | None) -> tuple[Result, Sequence[dict[str, float]]]:
    """A scorer's output checked (frame counts, partial scores) and pooled into the job's result."""
    frames = [dict(f) for f in output.frames]
    ref_n, dis_n = output.reference_frames, output.distorted_frames
    notes = [*_check_declared(job, output, prepared), *output.notes]
    for role, n in (("reference", ref_n), ("distorted", dis_n)):
        raw = raws[role]
        size = prepared[role].size
        if raw is not None and size is not None and n >= 0 and n != size // raw.frame_bytes:
            raise JobFailed(f"{role} {prepared[role].display}: read {n} frames but the file holds "
                            f"{size // raw.frame_bytes}; the stream was cut short")
    # after alignment (a rate conversion, an offset) the counts to compare are those paired
    cmp_ref, cmp_dis = output.compared_frames or (ref_n, dis_n)
    aligned = "" if (cmp_ref, cmp_dis) == (ref_n, dis_n) else " after alignment"
    if cmp_ref != cmp_dis:
        if not job.alignment.allow_frame_mismatch:
            raise BadInput(f"frame counts differ{aligned}: reference has {cmp_ref} frames, distorted {cmp_dis}; "
                           "pass --allow-frame-mismatch to score only the frames both have (checked to be "
                           "the same pictures), --vfr always if frames were dropped, or align them (README: "
                           "Alignment)")
        notes.append(f"frame counts differ{aligned} (reference {cmp_ref}, distorted {cmp_dis}); scored the overlap, "
                     "checked to pair the same pictures")
    expected = min(cmp_ref, cmp_dis)
    if not frames:
        raise JobFailed("the scorer produced no frames")
    subsample = output.subsample
    expected_scored = -(-expected // subsample)  # libvmaf scores frames 0, n, 2n, ...
    if not job.alignment.allow_frame_mismatch and len(frames) != expected_scored:
        raise JobFailed(f"scored {len(frames)} frames but both inputs have {expected}"
                        f"{f' (every {subsample}th: {expected_scored})' if subsample > 1 else ''}; "
                        "refusing a partial score")

    names = list(dict.fromkeys(k for f in frames for k in f))
    metrics = {name: pool([f[name] for f in frames if name in f], output.pooled.get(name)) for name in names}
    score_s = scored_at - prepared_at
    numbers = list(output.frame_numbers) or list(range(len(frames)))
    rate = output.frame_rate
    frames = [{"frame": n, **values, **({"time_s": round(n / rate, 6)} if rate else {})}
              for n, values in zip(numbers, frames, strict=True)]
    provenance = {
        "vmafx": __version__,
        "scorer": scorer_name,
        "scorer_package": scorer_release,
        "storage": {"reference": backend_names[0],
                    "distorted": backend_names[1] if len(backend_names) > 1 else "encode"},
        **output.provenance,
    }
    result = Result(
        job_id=job.id,
        scorer=scorer_name,
        frames_scored=len(frames),
        metrics=metrics,
        reference=_report(prepared["reference"], backend_names[0], ref_n, raws["reference"]),
        distorted=_report(prepared["distorted"], backend_names[1] if len(backend_names) > 1 else "encode", dis_n,
                          raws["distorted"]),
        provenance=provenance,
        timings=Timings(prepare_s=round(prepared_at - started, 4), score_s=round(score_s, 4),
                        total_s=round(time.monotonic() - started, 4),
                        fps=round(len(frames) / score_s, 2) if score_s > 0 else 0.0),
        notes=notes,
        encode=encoding.report(len(frames), _fps(output.provenance)) if encoding is not None else None,
        cache={"hit": False, "key": key} if cache is not None else None,
    )
    if cache is not None and key is not None:
        cache.store(key, result.to_dict(), frames)
    return result, frames


def _check_declared(job: Job, output: ScoreOutput, prepared: dict[str, PreparedInput]) -> list[str]:
    """Fail an input that decoded fewer frames than its container declares: it was cut short.

    A Matroska file cut in the middle, or one whose transfer ended early, decodes without a single
    error; only the count tells. A small slack allows for rounded durations. Under
    --allow-frame-mismatch the shorter input is expected to stop early: a note, not an error.
    """
    notes: list[str] = []
    counts = (output.reference_frames, output.distorted_frames)
    for index, (role, declared) in enumerate(zip(("reference", "distorted"), output.declared_frames, strict=True)):
        got = counts[index]
        if declared is None or got < 0 or got >= declared.count - max(2, declared.count // 200):
            continue
        rate = f" ({declared.fps:g} fps)" if declared.fps else ""
        problem = (f"{role} {prepared[role].display}: decoded {got} frames but its container declares "
                   f"{declared.count}{rate}; the input was cut short, or its header is wrong")
        if job.alignment.allow_frame_mismatch:
            if got <= counts[1 - index]:  # the shorter one: scoring stopped with it
                notes.append(problem)
            continue
        raise JobFailed(problem + "; no score is reported (--allow-frame-mismatch scores what could be read)")
    return notes


_swept = threading.Event()


def _clean_stale_once(plugins: Plugins) -> None:
    """What killed runs left (dead mounts, temp folders), removed once per process: a batch or a
    Dask worker pays it once, not per job."""
    if not _swept.is_set():
        _swept.set()
        plugins.clean_stale()


def _cancel_check(cancelled: Callable[[], bool] | None) -> Callable[[], bool]:
    """The job's own cancellation (a Dask task's), or Ctrl-C/SIGTERM received by this process, even
    when its exception was swallowed on the way: scoring stops either way."""
    def check() -> bool:
        return interrupts.pending() is not None or (cancelled is not None and cancelled())

    return check


def _fps(provenance: Any) -> float | None:
    stream = provenance.get("reference_stream") or {}
    fps = stream.get("fps")
    return float(fps) if fps else None


def ladder_rungs(job: Job) -> list[Job]:
    """The jobs of a ladder's rungs: one encode each, with ids `<id>/<index>`."""
    return [attrs.evolve(job, encode=rung, ladder=(), id=f"{job.id or 'ladder'}/{index}")
            for index, rung in enumerate(job.ladder)]


def ladder_result(job: Job, rungs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The result of a ladder: one `vmafx.result` per rung."""
    return {"schema": "vmafx.ladder", "schema_version": 1, "job_id": job.id, "rungs": list(rungs)}


def _open_save(stack: contextlib.ExitStack, backend: StorageBackend, destination: str,
               context: PrepareContext) -> IO[bytes]:
    """Open the `--save-encode` destination through its backend, which checks it first: a
    destination that cannot take the encode fails before anything is read or encoded. Whatever the
    job does next, the stack commits the file (clean exit) or removes what was written."""
    sink: IO[bytes] = stack.enter_context(_saving(backend, destination, context))
    return sink


@contextlib.contextmanager
def _saving(backend: StorageBackend, destination: str, context: PrepareContext) -> Iterator[IO[bytes]]:
    """`backend.write`, its own errors (checking, committing) naming the flag; the job's pass as they are."""
    assert backend.write is not None, "choose_writer gives only backends that write"
    from_job: BaseException | None = None
    try:
        with backend.write(destination, context) as stream:
            try:
                yield stream
            except BaseException as exc:
                from_job = exc
                raise
    except VmafxError as exc:
        if exc is not from_job and not exc.message.startswith("--save-encode"):
            exc.message = f"--save-encode {exc.message}"
            exc.args = (exc.message,)
        raise


def _prepare(stack: contextlib.ExitStack, requests: Sequence[InputRequest], backends: Sequence[StorageBackend],
             context: PrepareContext, retries: int) -> dict[str, PreparedInput]:
    """Hand each backend all the inputs it serves, at once; keep the results by role (`prepare_all`)."""
    return {r.role: p for r, p in zip(requests, prepare_all(stack, requests, backends, context, retries), strict=True)}


def prepare_all(stack: contextlib.ExitStack, requests: Sequence[InputRequest], backends: Sequence[StorageBackend],
                context: PrepareContext, retries: int) -> list[PreparedInput]:
    """Hand each backend all the inputs it serves, at once; the prepared inputs in the requests' order.

    A `JobFailed` or `Unreachable` while preparing (a server that did not come up, a store that did
    not answer) may be passing, so it is retried `retries` times with a growing pause, as long as
    the preparation's deadline (`limits.prepare_timeout`, all attempts together) leaves time for
    another attempt; a user's mistake (`BadInput`) or a missing tool (`EnvironmentMissing`) is not.
    """
    groups: dict[str, tuple[StorageBackend, list[InputRequest], list[int]]] = {}
    for index, (request, backend) in enumerate(zip(requests, backends, strict=True)):
        entry = groups.setdefault(backend.name, (backend, [], []))
        entry[1].append(request)
        entry[2].append(index)
    prepared: dict[int, PreparedInput] = {}  # by position: roles repeat when several distorted share a pass
    for backend, group, positions in groups.values():
        log.debug("storage %s prepares %s", backend.name, ", ".join(r.uri for r in group))
        for attempt in range(retries + 1):
            interrupts.check()
            if context.seconds_left() <= 0:
                raise Unreachable(f"storage {backend.name!r} was not ready within {context.ready_timeout:g}s "
                                  "(--prepare-timeout, limits.prepare_timeout in a job file)")
            try:
                results = stack.enter_context(backend.prepare(group, context))
                break
            except (JobFailed, Unreachable) as exc:
                pause = 0.5 * 2 ** attempt
                final = isinstance(exc, Unreachable) and not exc.retryable
                if final or attempt == retries or context.seconds_left() < pause + 0.5:
                    raise
                log.warning("storage %s failed to prepare (%s); retrying in %.1fs (attempt %d of %d)",
                            backend.name, exc, pause, attempt + 2, retries + 1)
                time.sleep(pause)
        if len(results) != len(group):
            raise JobFailed(f"storage {backend.name!r} prepared {len(results)} inputs for {len(group)} requests")
        prepared.update(zip(positions, results, strict=True))
    return [prepared[i] for i in range(len(requests))]


def check_allowed(requests: Sequence[InputRequest], backends: Sequence[StorageBackend], roots: Sequence[str],
                  plugins: Plugins) -> None:
    """Refuse any input outside the allowed roots, before anything starts.

    Each input and each root is put in its backend's canonical form (a real path with `..` and
    symlinks resolved for local files; `remote:path` for rclone), so `..`, symlinks or another
    spelling of the same bucket cannot escape. A root matches whole path segments only.
    """
    all_backends = [p.item for p in plugins.storage_backends().values()]
    canonical_roots: list[str] = []
    for root in roots:
        owners = [b for b in all_backends if b.handles(root)]
        if not owners:
            raise BadInput(f"--allow-root {root!r}: no installed storage backend understands it")
        for backend in owners:
            canonical_roots.append(_canonical(backend, root))
    for request, backend in zip(requests, backends, strict=True):
        where = _canonical(backend, request.uri)
        if not any(_under(where, root) for root in canonical_roots):
            raise BadInput(f"{request.role} {request.uri}: outside the allowed roots "
                           f"({', '.join(roots)}); refused before reading anything")


def _canonical(backend: StorageBackend, uri: str) -> str:
    return backend.canonical(uri) if backend.canonical is not None else uri


def _under(path: str, root: str) -> bool:
    if path == root:
        return True
    prefix = root if root.endswith(("/", ":")) else root + "/"
    return path.startswith(prefix)


def _check_raw_size(prepared: PreparedInput, raw: RawVideo) -> None:
    assert prepared.size is not None
    if prepared.size == 0:
        raise BadInput(f"{prepared.role} {prepared.display}: the file is empty")
    if prepared.size % raw.frame_bytes:
        raise BadInput(f"{prepared.role} {prepared.display}: {prepared.size} bytes is not a whole number of "
                       f"{raw.width}x{raw.height} {raw.pix_fmt} frames ({raw.frame_bytes} bytes each); "
                       "check width, height and pixel format")


def _report(prepared: PreparedInput, storage: str, frames: int, raw: RawVideo | None) -> InputReport:
    return InputReport(role=prepared.role, uri=prepared.display, storage=storage, size=prepared.size,
                       frames=frames, raw=None if raw is None else
                       {"width": raw.width, "height": raw.height, "pix_fmt": raw.pix_fmt, "fps": raw.fps})
