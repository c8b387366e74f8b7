"""A job's life, the same on every path: set-up, preparation, checks, scoring, result.

`executor.run_job` (one pair, an encode), `group.run_group` (several distorted against one
reference) and `ladder.run_ladder` (an encode ladder) differ only in how many inputs they prepare
and how many pairs one scorer pass scores. Everything else is here, once, as public steps they call
in this order:

1. `set_up`: the scorer (usable here?), ffmpeg, the scorer's own option checks, the cancel check,
   the result cache; what dead runs left is swept once per process.
2. `input_requests`, `choose_storage` (with `--allow-root`), `Setup.prepare_context`,
   `prepare_inputs`: every input made readable inside the caller's ExitStack.
3. `check_size`: an empty input or a raw one of the wrong size fails before scoring.
4. `cache_key` and `cached`: an unchanged job is answered from its stored result.
5. `Setup.score_request` and the scorer's `score` (or `score_shared` for several pairs).
6. `build_result`: frame counts checked, values pooled, provenance written, the result kept.

A step that fails raises a `VmafxError`; a path that scores several pairs keeps each member's own
error by calling the steps per member (`group`, `ladder`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

import attrs

from vmafx_core import __version__, interrupts
from vmafx_core.cache import ResultCache, make_key, process_default
from vmafx_core.errors import BadInput, Corrupt, EnvironmentMissing, JobFailed, Unreachable, VmafxError
from vmafx_core.ffmpeg import find_ffmpeg
from vmafx_core.job import Job, Source
from vmafx_core.plugins import Plugins
from vmafx_core.result import InputReport, Result, Timings, pool
from vmafx_core.types import (
    InputRequest,
    PrepareContext,
    PreparedInput,
    RawVideo,
    ScoreOutput,
    Scorer,
    ScoreRequest,
    StorageBackend,
)

log = logging.getLogger(__name__)

#: called with (frames_done, frames_total or None, fps) as scoring advances
ProgressFn = Callable[[int, int | None, float], None]
#: a job's result and its per-frame values
Scored = tuple[Result, Sequence[dict[str, Any]]]
#: what a path that scores several jobs gives for each: its result, or exactly its own error
ResultOrError = Scored | VmafxError


@attrs.frozen
class Setup:
    """What every job of one run shares once set up: its scorer, ffmpeg, clock, cache and cancel check."""

    plugins: Plugins
    scorer: Scorer
    #: `package version` of the scorer: results and cache keys name it
    release: str
    options: Any
    ffmpeg: str
    started: float
    should_stop: Callable[[], bool]
    cache: ResultCache | None
    job: Job  #: the job (or a group's first member) whose limits and storage settings apply

    @property
    def deadline(self) -> float | None:
        """time.monotonic() by which scoring must end (`limits.timeout`), or None."""
        timeout = self.job.limits.timeout
        return self.started + timeout if timeout else None

    def prepare_context(self) -> PrepareContext:
        """The storage backends' settings; the preparation's deadline starts now."""
        limits = self.job.limits
        return PrepareContext(options=dict(self.job.storage_options), ready_timeout=limits.prepare_timeout,
                              deadline=time.monotonic() + limits.prepare_timeout)

    def score_request(self, reference: PreparedInput, distorted: PreparedInput, reference_raw: RawVideo | None,
                      distorted_raw: RawVideo | None, progress: ProgressFn | None, *,
                      segments: int | str = 1) -> ScoreRequest:
        """One pair as the scorer receives it (`segments`: a single pair's `Job.segments`)."""
        return ScoreRequest(reference=reference, distorted=distorted, reference_raw=reference_raw,
                            distorted_raw=distorted_raw, options=self.options, alignment=self.job.alignment,
                            ffmpeg=self.ffmpeg, progress=progress, stall_timeout=self.job.limits.stall_timeout,
                            deadline=self.deadline, cancelled=self.should_stop, segments=segments)


def set_up(job: Job, options: Any, plugins: Plugins, *, ffmpeg: str | None = None,
           cancelled: Callable[[], bool] | None = None, cache: ResultCache | None = None) -> Setup:
    """Everything checked before any input is read: the scorer is installed and usable, ffmpeg is
    found, the scorer accepts its options with this ffmpeg (a model it lacks), and what runs that
    died left is swept (once per process).

    `cancelled`, when given, is polled while scoring. `cache` (default: the process's, which
    `vmafx batch` and `vmafx run --cache` set) is the result cache.
    """
    started = time.monotonic()
    clean_stale_once(plugins)
    scorer = plugins.scorer(job.scorer_name)
    release = plugins.scorer_release(scorer.name)
    availability = scorer.availability()
    if not availability.usable:
        raise EnvironmentMissing(f"scorer {scorer.name!r} is not usable here: {availability.reason}")
    ffmpeg_path = find_ffmpeg(ffmpeg)
    if scorer.check is not None:
        scorer.check(options, ffmpeg_path)
    return Setup(plugins=plugins, scorer=scorer, release=release, options=options, ffmpeg=ffmpeg_path,
                 started=started, should_stop=cancel_check(cancelled),
                 cache=cache if cache is not None else process_default(), job=job)


def raw_of(source: Source | None) -> RawVideo | None:
    """A source's raw geometry (a headerless YUV file), or None for a container."""
    return source.raw.to_raw() if source is not None and source.raw else None


def input_requests(job: Job) -> list[InputRequest]:
    """The job's stored inputs as its storage receives them: the reference, then its distorted (an
    encode job has none: its distorted is streamed from the encoder)."""
    requests = [InputRequest("reference", job.reference.uri, raw_of(job.reference))]
    if job.distorted is not None:
        requests.append(InputRequest("distorted", job.distorted.uri, raw_of(job.distorted)))
    return requests


def choose_storage(setup: Setup, job: Job, requests: Sequence[InputRequest]) -> list[StorageBackend]:
    """The backend for each request (`--storage`, or per URI under auto), each input checked against
    the job's allowed roots before anything starts."""
    backends = setup.plugins.choose_storage([r.uri for r in requests], job.storage, dict(job.storage_options))
    if job.allow_roots:
        check_allowed(requests, backends, job.allow_roots, setup.plugins)
    return backends


def prepare_inputs(stack: contextlib.ExitStack, requests: Sequence[InputRequest],
                   backends: Sequence[StorageBackend], context: PrepareContext,
                   retries: int) -> list[PreparedInput]:
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
                final = (isinstance(exc, Unreachable) and not exc.retryable) or isinstance(exc, Corrupt)
                if final or attempt == retries or context.seconds_left() < pause + 0.5:
                    raise
                log.warning("storage %s failed to prepare (%s); retrying in %.1fs (attempt %d of %d)",
                            backend.name, exc, pause, attempt + 2, retries + 1)
                time.sleep(pause)
        if len(results) != len(group):
            raise JobFailed(f"storage {backend.name!r} prepared {len(results)} inputs for {len(group)} requests")
        prepared.update(zip(positions, results, strict=True))
    return [prepared[i] for i in range(len(requests))]


def check_size(prepared: PreparedInput, raw: RawVideo | None) -> None:
    """Refuse an empty input, and a raw one that is not a whole number of its frames, before scoring."""
    if prepared.size == 0:
        raise BadInput(f"{prepared.role} {prepared.display}: is empty (0 bytes)")
    if raw is not None and prepared.size is not None and prepared.size % raw.frame_bytes:
        raise BadInput(f"{prepared.role} {prepared.display}: {prepared.size} bytes is not a whole number of "
                       f"{raw.width}x{raw.height} {raw.pix_fmt} frames ({raw.frame_bytes} bytes each); "
                       "check width, height and pixel format")


def check_not_cancelled(setup: Setup) -> None:
    if setup.should_stop():
        from vmafx_core.errors import Interrupted

        raise Interrupted("the job was cancelled before scoring started; no score is reported")


def identity(prepared: PreparedInput) -> str | None:
    """What the input's storage says tells this content apart (`PreparedInput.identity`), or None."""
    try:
        return prepared.identity() if prepared.identity is not None else None
    except Exception as exc:  # a backend's bug or a failed look-up: not cached, never wrong
        log.warning("%s %s: its identity could not be read (%s); not using the result cache",
                    prepared.role, prepared.display, exc)
        return None


def cache_key(setup: Setup, job: Job, identities: Sequence[str | None]) -> str | None:
    """The job's key in the result cache, or None when it is not cached (no cache in use, an input
    without identity, an encode)."""
    if setup.cache is None:
        return None
    facts = setup.scorer.cache_facts(setup.options) if setup.scorer.cache_facts is not None else {}
    if facts is None:
        return None
    return make_key(job, setup.options, identities, setup.ffmpeg, setup.release, setup.scorer.score.__module__,
                    facts)


def cached(setup: Setup, key: str | None, job: Job) -> Scored | None:
    """The stored result under `key` as this job's (its id, this run's timings), or None."""
    from vmafx_core.job import converter

    if setup.cache is None or key is None:
        return None
    found = setup.cache.lookup(key)
    if found is None:
        return None
    data, frames = found
    try:
        stored: Result = converter.structure({k: v for k, v in data.items() if k != "cache"}, Result)
    except Exception as exc:  # an entry from another layout: scored again
        log.warning("result cache entry %s does not hold a result (%s); scoring again", setup.cache.path(key), exc)
        return None
    total = round(time.monotonic() - setup.started, 4)
    kept = data["cache"] if isinstance(data.get("cache"), dict) else {}
    result = attrs.evolve(stored, job_id=job.id, labels=dict(job.labels),
                          timings=Timings(prepare_s=total, score_s=0.0, total_s=total, fps=0.0),
                          cache={"hit": True, "key": key, "stored_at": kept.get("stored_at"),
                                 "scored_timings": data.get("timings")})
    return result, frames


@attrs.frozen
class Scoring:
    """One pair's scorer output with what its result reports: inputs, storage, clock, encode, key."""

    job: Job
    output: ScoreOutput
    reference: PreparedInput
    distorted: PreparedInput
    #: the storage names of the reference and the distorted ("encode": streamed from the encoder)
    storage: tuple[str, str]
    prepared_at: float
    scored_at: float
    encoding: Any = None  #: `encode.EncodeRun` of an encode job
    key: str | None = None  #: its result cache key, when it is cached
    #: the caller asked the storage's integrity report while the storage was still prepared
    integrity_checked: bool = False


def build_result(setup: Setup, scoring: Scoring) -> Scored:
    """A scorer's output checked (the storage's integrity report unless the caller asked it while
    the storage was prepared, frame counts, partial scores) and pooled into the job's result; kept
    in the cache under its key."""
    job, output = scoring.job, scoring.output
    prepared = {"reference": scoring.reference, "distorted": scoring.distorted}
    raws = {"reference": raw_of(job.reference), "distorted": raw_of(job.distorted)}
    frames = [dict(f) for f in output.frames]
    ref_n, dis_n = output.reference_frames, output.distorted_frames
    if not scoring.integrity_checked:
        check_integrity(prepared)
    notes = [*_check_declared(job, output, prepared, raws), *output.notes]
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
    score_s = scoring.scored_at - scoring.prepared_at
    numbers = list(output.frame_numbers) or list(range(len(frames)))
    rate = output.frame_rate
    frames = [{"frame": n, **values, **({"time_s": round(n / rate, 6)} if rate else {})}
              for n, values in zip(numbers, frames, strict=True)]
    ref_storage, dis_storage = scoring.storage
    provenance = {
        "vmafx": __version__,
        "scorer": setup.scorer.name,
        "scorer_package": setup.release,
        "storage": {"reference": ref_storage, "distorted": dis_storage},
        **output.provenance,
    }
    started = setup.started
    result = Result(
        job_id=job.id,
        scorer=setup.scorer.name,
        frames_scored=len(frames),
        metrics=metrics,
        reference=_report(scoring.reference, ref_storage, ref_n, raws["reference"]),
        distorted=_report(scoring.distorted, dis_storage, dis_n, raws["distorted"],
                          None if job.distorted is None else output.distorted_video),
        provenance=provenance,
        timings=Timings(prepare_s=round(scoring.prepared_at - started, 4), score_s=round(score_s, 4),
                        total_s=round(time.monotonic() - started, 4),
                        fps=round(len(frames) / score_s, 2) if score_s > 0 else 0.0),
        notes=notes,
        encode=scoring.encoding.report(len(frames), _fps(output.provenance)) if scoring.encoding is not None else None,
        cache={"hit": False, "key": scoring.key} if setup.cache is not None else None,
        labels=dict(job.labels),
    )
    if setup.cache is not None and scoring.key is not None:
        setup.cache.store(scoring.key, result.to_dict(), frames)
    return result, frames


def check_integrity(prepared: dict[str, PreparedInput]) -> None:
    """Fail the job when a backend says what it served is not what was stored (`PreparedInput.integrity`).

    ffmpeg decodes a damaged byte without complaint more often than not: only the storage, which
    knows the object's size and checksum, can tell. Asked after scoring, before the result counts.
    """
    for role in ("reference", "distorted"):
        p = prepared.get(role)
        if p is None or p.integrity is None:
            continue
        try:
            problem = p.integrity()
        except VmafxError:
            raise
        except Exception as exc:  # a backend's bug: its promise cannot be checked, so no score
            raise JobFailed(f"{role} {p.display}: its storage could not check what it served "
                            f"({type(exc).__name__}: {exc}); no score is reported") from exc
        if problem:
            raise Corrupt(f"{role} {p.display}: the storage reports that what it served is not what is stored "
                          f"({problem}); no score is reported")


@contextlib.contextmanager
def integrity_explains(prepared: dict[str, PreparedInput]) -> Iterator[None]:
    """A scoring failure (ffmpeg could not decode what it was served) whose cause the storage
    reports, a damaged object, becomes that cause: `Corrupt`, exit 4, not a decoding error."""
    try:
        yield
    except JobFailed as exc:
        if isinstance(exc, Corrupt):
            raise
        try:
            check_integrity(prepared)
        except Corrupt as corrupt:
            raise corrupt from exc
        raise


def _check_declared(job: Job, output: ScoreOutput, prepared: dict[str, PreparedInput],
                    raws: dict[str, RawVideo | None] | None = None) -> list[str]:
    """Fail an input that decoded fewer frames than its container declares: it was cut short.

    A Matroska file cut in the middle, or one whose transfer ended early, decodes without a single
    error; only the count tells. A small slack allows for rounded durations. Under
    --allow-frame-mismatch the shorter input is expected to stop early: a note, not an error. An
    input whose length is unknown (its container declares none that can be trusted, or its header
    could not be read) gets a note: the check could not be made, and the result says so.
    """
    notes: list[str] = []
    counts = (output.reference_frames, output.distorted_frames)
    for index, (role, declared) in enumerate(zip(("reference", "distorted"), output.declared_frames, strict=True)):
        got = counts[index]
        if declared is None and _length_expected(job, prepared.get(role), (raws or {}).get(role)):
            notes.append(f"{role} {prepared[role].display}: its length is unknown (the container declares "
                         "none that can be trusted, or its header could not be read), so a stream cut short "
                         "is caught only by ffmpeg's read errors")
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


def _length_expected(job: Job, prepared: PreparedInput | None, raw: RawVideo | None) -> bool:
    """Whether a declared length was to be compared for this input: a container read to its end
    (not raw video, whose size is checked instead, not an encode on a pipe, not a frame limit)."""
    return (prepared is not None and raw is None and prepared.stdin_fd is None
            and not job.alignment.frames)


def _fps(provenance: Any) -> float | None:
    stream = provenance.get("reference_stream") or {}
    fps = stream.get("fps")
    return float(fps) if fps else None


def _report(prepared: PreparedInput, storage: str, frames: int, raw: RawVideo | None,
            video: tuple[int, float] | None = None) -> InputReport:
    return InputReport(role=prepared.role, uri=prepared.display, storage=storage, size=prepared.size,
                       frames=frames, raw=None if raw is None else
                       {"width": raw.width, "height": raw.height, "pix_fmt": raw.pix_fmt, "fps": raw.fps},
                       video_bytes=video[0] if video else None,
                       bitrate_bps=round(video[0] * 8 / video[1], 1) if video else None)


_swept = threading.Event()


def clean_stale_once(plugins: Plugins) -> None:
    """What killed runs left (dead mounts, temp folders), removed once per process: a batch or a
    Dask worker pays it once, not per job."""
    if not _swept.is_set():
        _swept.set()
        plugins.clean_stale()


def cancel_check(cancelled: Callable[[], bool] | None) -> Callable[[], bool]:
    """The job's own cancellation (a Dask task's), or Ctrl-C/SIGTERM received by this process, even
    when its exception was swallowed on the way: scoring stops either way."""
    def check() -> bool:
        return interrupts.pending() is not None or (cancelled is not None and cancelled())

    return check


def open_save(stack: contextlib.ExitStack, backend: StorageBackend, destination: str,
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


def one_by_one(jobs: Sequence[Job], run: Callable[[Job], Scored]) -> list[ResultOrError]:
    """Each job run on its own by `run`: its result, or exactly its own error; Ctrl-C or a cancel
    ends them all."""
    outcomes: list[ResultOrError] = []
    for job in jobs:
        interrupts.check()
        try:
            outcomes.append(run(job))
        except VmafxError as exc:
            if interrupts.ends_the_run(exc):
                raise
            outcomes.append(exc)
    return outcomes
