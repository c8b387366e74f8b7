"""The descriptors that plugins hand to vmafx.

Hooks return these small frozen objects and the core decides what to do with them, so a plugin
never needs to know how the CLI, the executor or other plugins work.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import attrs

from vmafx_core.errors import VmafxError


@attrs.frozen
class Availability:
    """Whether a backend can work on this machine, and why not when it cannot."""

    usable: bool
    reason: str = ""


@attrs.frozen
class RawVideo:
    """How to read a headerless YUV file: ffmpeg cannot guess any of this."""

    width: int
    height: int
    pix_fmt: str
    fps: float

    @property
    def frame_bytes(self) -> int:
        from vmafx_core.pixfmt import frame_bytes

        return frame_bytes(self.pix_fmt, self.width, self.height)


@attrs.frozen
class InputRequest:
    """One input of a job as the storage backend receives it."""

    role: str  #: "reference" or "distorted"
    uri: str  #: as the user wrote it
    raw: RawVideo | None = None


@attrs.frozen
class ContainerFacts:
    """What a container's header says about its length, for inputs ffmpeg cannot be asked directly.

    An input whose URL carries a credential reaches ffmpeg wrapped in an ffconcat script, which
    hides the file's duration; the backend that made the URL can read the header itself and say.
    """

    duration: float | None  #: seconds, the whole file
    video_duration: float | None  #: seconds, the video stream's own (Matroska writes one)
    streams: int  #: how many streams the file has (with audio, the file's duration is the longer)
    estimated: bool = False  #: the duration was guessed (from the bitrate), not read from a header


@attrs.frozen
class PreparedInput:
    """What ffmpeg should open for one input, produced by a storage backend.

    `url` is handed to ffmpeg. When `url_has_secret` is true the URL carries a credential: vmafx
    then passes it to ffmpeg on an inherited pipe, never in argv, and never logs it. `display` is
    what users see in messages and results: the original URI without any secret.
    """

    role: str
    url: str
    display: str
    size: int | None = None
    url_has_secret: bool = False
    #: ffmpeg input options placed before this input's `-i` (e.g. ("-rw_timeout", "30000000"))
    input_options: tuple[str, ...] = ()
    #: strings to scrub from any child's stderr before it is shown or kept
    secrets: tuple[str, ...] = ()
    #: None while the storage behind this input works, else why not (e.g. its server died): a
    #: string (the job fails, exit 1) or an error whose class gives the exit code and whose message
    #: says what broke (e.g. `Unreachable`: the store stopped answering, exit 3); polled while
    #: scoring, and once more when ffmpeg fails, so the job names the storage's cause at once
    #: instead of a stall or ffmpeg's "Input/output error"
    health: Callable[[], VmafxError | str | None] | None = attrs.field(default=None, eq=False)
    #: asked when no frame was scored for the stall bound, with the `time.monotonic()` the last
    #: frame came at: the storage's own account of what went wrong since (e.g. `Unreachable`:
    #: rclone kept retrying reads of a store that went silent), or None; the job then fails with
    #: that error's class and cause instead of only "stalled"
    stall_cause: Callable[[float], VmafxError | None] | None = attrs.field(default=None, eq=False)
    #: a file descriptor ffmpeg reads this input from as its stdin (then `url` is "pipe:0"):
    #: how an encode streams into the scorer without touching disk
    stdin_fd: int | None = None
    #: the video's geometry when known in advance (an input on a pipe cannot be probed first)
    stream_hint: RawVideo | None = None
    #: for a URL with a secret, optional: the container's duration facts, or None when it cannot say.
    #: Without it vmafx reads the header itself, in this process, through `url` and `input_options`
    #: (the ffconcat wrapper that keeps a secret out of argv hides the duration from `ffmpeg -i`)
    container_facts: Callable[[], ContainerFacts | None] | None = attrs.field(default=None, eq=False)
    #: called once after scoring, before the result is accepted: None when what was served is what
    #: was stored, else one line saying what the storage found wrong (a size or checksum mismatch,
    #: a member failing its archive's CRC). A line fails the job with `errors.Corrupt` (exit 4) and
    #: no score is reported. None (no callable): the backend cannot tell
    integrity: Callable[[], str | None] | None = attrs.field(default=None, eq=False)
    #: what tells this very content apart from any other version of it, as the storage reports it
    #: (a local file: path, size, mtime, ctime, inode; an object: remote path, size, modification
    #: time, ETag/hash), for the result cache, which calls it only when it is in use; returning None,
    #: or no callable at all, means unknown: the job is never cached
    identity: Callable[[], str | None] | None = attrs.field(default=None, eq=False)


@attrs.frozen
class PrepareContext:
    """Settings every backend may read while preparing a job's inputs.

    `options` holds storage settings given on the command line or in the job file (for the rclone
    backends: `rclone_config`, `rclone_binary`, `remote_map`, ...), checked against the backends'
    `options_type` before the job runs. A backend ignores keys other backends declare.
    """

    options: Mapping[str, Any] = attrs.field(factory=dict)
    #: seconds a backend may wait for its servers or mounts to become ready
    ready_timeout: float = 30.0
    #: time.monotonic() by which the whole preparation (every attempt) must be over, or None. A
    #: backend bounds each of its waits by `seconds_left()`.
    deadline: float | None = None

    def seconds_left(self, wait: float | None = None) -> float:
        """`wait` (default `ready_timeout`), cut to what is left before `deadline` (never below 0)."""
        wait = self.ready_timeout if wait is None else wait
        if self.deadline is None:
            return wait
        return max(0.0, min(wait, self.deadline - time.monotonic()))


PrepareFn = Callable[
    [Sequence[InputRequest], PrepareContext],
    contextlib.AbstractContextManager[Sequence[PreparedInput]],
]

#: `write(destination, context)`: see `StorageBackend.write`
WriteFn = Callable[[str, PrepareContext], contextlib.AbstractContextManager[IO[bytes]]]


ListFn = Callable[[str, Mapping[str, Any]], Sequence[str]]


@attrs.frozen
class StorageBackend:
    """A way of making inputs readable by ffmpeg.

    `prepare(inputs, context)` returns a context manager that yields one `PreparedInput` per
    request, in order, and releases everything (servers, mounts, temp folders) on exit, whether
    the job succeeded, failed or was interrupted. It receives ALL the job's inputs that this
    backend handles at once, so it can share one server between them.
    """

    name: str
    description: str
    #: whether this backend can read a URI: cheap, no I/O, never raises. It may take the job's
    #: storage options as a second argument (`def handles(uri, options=None)`) when an option changes
    #: the answer (rclone's `remote_map`); `--allow-root` checks call it with the URI alone
    handles: Callable[..., bool]
    prepare: PrepareFn
    #: whether it can run here, and why not. It may take one argument, the job's storage options
    #: (`def availability(options=None)`), when an option such as `rclone_binary` changes the answer;
    #: `vmafx doctor` calls it with None.
    availability: Callable[..., Availability] = attrs.field(default=lambda: Availability(True))
    #: priority when `--storage auto` chooses (higher wins); None: chosen only by name. Built-in
    #: backends: local 100, rclone-http 20, rclone-mount 10 (vmafx-zip: 5)
    auto_priority: int | None = None
    #: URL schemes this backend owns ("zip" for zip://...): under `--storage auto` a URI with one of
    #: them goes only to the backends that own it, whatever the other backends' priorities
    schemes: tuple[str, ...] = ()
    #: the URI in one canonical form ("remote:bucket/key", a real path, ...), used to check it
    #: against `--allow-root`; may raise BadInput for a URI it cannot read. None: URI as given
    canonical: Callable[[str], str] | None = None
    #: removes what runs of this backend that died left behind (mounts, folders) and returns what it
    #: removed; every vmafx run and `vmafx doctor` call it, whichever backend their job uses. It
    #: must be cheap when there is nothing to clean, and never raise. None: nothing to clean
    clean_stale: Callable[[], Sequence[str]] | None = None
    #: writes one stream (`--save-encode`) to `destination`, a URI this backend `handles`. It
    #: returns a context manager that first checks the destination, before anything is encoded
    #: (BadInput for a user's mistake: an unknown remote, a folder, a missing or unwritable parent
    #: folder; `Unreachable` for storage that does not answer), then yields a binary file object
    #: the caller writes to. On a clean exit it commits (the file or object appears whole, under
    #: its name); on an exception it removes whatever was partly written. A failure while writing
    #: or committing raises JobFailed. None: this backend cannot write. Example::
    #:
    #:     @contextlib.contextmanager
    #:     def write(destination, context):
    #:         path = destination.removeprefix("demo:")
    #:         if os.path.isdir(path):
    #:             raise BadInput(f"{destination}: is a folder; give a file name")
    #:         try:
    #:             out = open(path + ".part", "wb")
    #:         except OSError as exc:
    #:             raise BadInput(f"{destination}: cannot be written ({exc.strerror})") from None
    #:         try:
    #:             with out:
    #:                 yield out
    #:         except BaseException:
    #:             os.unlink(path + ".part")
    #:             raise
    #:         os.replace(path + ".part", path)
    write: WriteFn | None = None
    #: lists every file under a folder URI this backend `handles`, recursively, in one listing of
    #: the storage (not one request per file): each file's path relative to that folder, with "/"
    #: between folders. It takes the folder and the storage options; a folder that does not exist
    #: or cannot be listed is BadInput/Unreachable with one line. `vmafx jobs` pairs the files it
    #: lists into jobs. None: this backend cannot list. Example::
    #:
    #:     def list_files(folder, options):
    #:         root = folder.removeprefix("demo:")
    #:         return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())
    list: ListFn | None = None
    #: the storage options this backend reads: an attrs class whose field names are keys of the
    #: job's `storage_options`, each with a default. vmafx structures the job's options into it
    #: with its converter before anything runs, so a key that no installed backend declares, or
    #: a value of the wrong type, is one line with its path (`job.storage_options.KEY: ...`).
    #: Backends sharing an option (the rclone ones: `rclone_config`) each declare it. The backend
    #: still reads `context.options`, now checked. None: it reads no option. Example::
    #:
    #:     @attrs.frozen
    #:     class DemoOptions:
    #:         demo_root: str = "/srv/videos"
    #:
    #:     StorageBackend(name="demo", ..., options_type=DemoOptions)
    options_type: type | None = None
    #: what to install for storage this package does not provide: other backend names mapped to
    #: one line saying which package provides them, used when a job names a backend that is not
    #: installed, e.g. {"rclone-mount": "install vmafx-rclone-mount (pip install vmafx-rclone-mount)"}
    suggests: Mapping[str, str] = attrs.field(factory=dict)
    #: for a URI no installed backend handles: one line saying what to install to read it, or None
    #: when this backend has no idea, e.g. the local backend, asked about `s3://b/k`, says
    #: "for remote storage install vmafx-rclone-http (pip install vmafx-rclone-http)"
    install_hint: Callable[[str], str | None] | None = None

    def handles_for(self, uri: str, options: Mapping[str, Any] | None) -> bool:
        """`handles`, given the job's storage options when it takes them."""
        return bool(self.handles(uri, options) if _takes(self.handles, 2) else self.handles(uri))

    def availability_for(self, options: Mapping[str, Any] | None) -> Availability:
        """`availability`, given the job's storage options when it takes them."""
        try:
            takes_options = bool(inspect.signature(self.availability).parameters)
        except (TypeError, ValueError):  # a builtin or C callable: call it as documented first
            takes_options = False
        return self.availability(options) if takes_options else self.availability()


def _takes(fn: Callable[..., Any], count: int) -> bool:
    """Whether `fn` accepts `count` positional arguments (a builtin whose signature is hidden: no)."""
    try:
        inspect.signature(fn).bind(*range(count))
    except (TypeError, ValueError):
        return False
    return True


@attrs.frozen
class ScoreRequest:
    """Everything a scorer needs to score one pair."""

    reference: PreparedInput
    distorted: PreparedInput
    reference_raw: RawVideo | None
    distorted_raw: RawVideo | None
    options: Any  #: an instance of the scorer's `options_type`
    alignment: Any  #: `vmafx_core.job.Alignment`
    ffmpeg: str  #: path of the ffmpeg binary
    #: called with (frames_done, frames_total or None, fps) as scoring advances
    progress: Callable[[int, int | None, float], None] | None = None
    #: fail when no frame was scored for this many seconds (a stalled read never hangs the job)
    stall_timeout: float = 60.0
    #: time.monotonic() by which scoring must end, or None for no limit
    deadline: float | None = None
    #: polled while scoring; once it returns True the scorer stops its processes and raises
    #: `vmafx_core.errors.Interrupted` (a cluster batch cancelled by its client). Optional to honour.
    cancelled: Callable[[], bool] | None = attrs.field(default=None, eq=False)
    #: score the pair in this many segments at once ("auto": by its length and the cores; 1: whole),
    #: pooled exactly as one run (`vmafx_core.segments`); a scorer that cannot splits nothing
    segments: int | str = 1


@attrs.frozen
class DeclaredFrames:
    """The frame count an input's container declares, at the rate it declares it."""

    count: int
    fps: float | None


@attrs.frozen
class ScoreOutput:
    """Per-frame values and how they were produced."""

    frames: Sequence[Mapping[str, float]]  #: one mapping metric -> value per scored frame
    reference_frames: int  #: frames decoded from the reference
    distorted_frames: int  #: frames decoded from the distorted
    provenance: Mapping[str, Any] = attrs.field(factory=dict)
    notes: Sequence[str] = ()
    #: frames of each input that reached the comparison, when alignment (a rate conversion, an
    #: offset, a frame limit) makes them differ from the frames decoded; None: the decoded counts
    compared_frames: tuple[int, int] | None = None
    #: the scorer's number of each scored frame (libvmaf's frameNum: 0, 3, 6, ... under
    #: n_subsample 3); empty: 0, 1, 2, ...
    frame_numbers: Sequence[int] = ()
    #: the rate frames were paired at: a frame's time is its number over this
    frame_rate: float | None = None
    #: the frames each input's container declares (reference, distorted), None where it declares
    #: none or where reading is expected to stop early (a frame limit): fewer decoded than declared
    #: means the input was cut short (`vmafx_core.supervise.declared_frames` fills it from probes)
    declared_frames: tuple[DeclaredFrames | None, DeclaredFrames | None] = (None, None)
    #: the scorer scores every nth paired frame (libvmaf's n_subsample): 0, n, 2n, ...
    subsample: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    #: pooled values the scorer computed itself at full precision, metric -> {"mean": ..., "min": ...};
    #: they are used over vmafx's pooling of the rounded per-frame values
    pooled: Mapping[str, Mapping[str, float]] = attrs.field(factory=dict)
    #: the distorted's video stream as read: (bytes of its packets, seconds they cover), for its
    #: measured bitrate; None when the scorer cannot say (the result then has no bitrate)
    distorted_video: tuple[int, float] | None = None


class CannotShare(Exception):
    """Raised by `Scorer.score_shared`, before anything is read, when these pairs cannot share one
    pass (a sync search, a chain that changes frame counts, ...): the core scores them one by one."""


#: `score_shared(requests, shared=None, reference_info=None)`: see `Scorer.score_shared`
ScoreSharedFn = Callable[..., Sequence["ScoreOutput | Exception"]]


@attrs.frozen
class Scorer:
    """A quality scorer.

    `options_type` is an attrs class; the job's `scorer` table (less its `name`) is structured into
    it, so a wrong option is reported like any other bad field. `score(request)` runs the scoring
    and returns a `ScoreOutput`, or raises a `vmafx_core.errors.VmafxError`.

    The optional fields are what the scorer can do beyond one pair per pass, and what the core must
    know about its options; the core never looks at a scorer's name or its options' fields itself.
    When each callable is called, how often and in which thread is written in
    `vmafx_core.hookspecs.vmafx_scorers`.
    """

    name: str
    description: str
    metrics: tuple[str, ...]
    options_type: type
    score: Callable[[ScoreRequest], ScoreOutput]
    availability: Callable[[], Availability] = attrs.field(default=lambda: Availability(True))
    #: `check(options, ffmpeg)`: refuse, with a `VmafxError`, options this ffmpeg binary cannot
    #: honour (a model it lacks), before any input is read. None: nothing to check
    check: Callable[[Any, str], None] | None = None
    #: `score_shared(requests, shared=None, reference_info=None)`: several pairs that share their
    #: reference scored in one pass, the reference read and decoded once; one `ScoreOutput` (or
    #: the pair's own exception) per request, in order, each equal to what `score` gives that pair.
    #: `shared` (an encode ladder) is one piped input holding the reference's decoded frames as
    #: stream 0 and request i's distorted as stream i+1; `reference_info` is the reference's probe
    #: when the caller made one. It raises `CannotShare` before reading anything when these pairs
    #: (or a `shared` input) cannot share a pass, and a `VmafxError` when the whole pass failed:
    #: the core then scores each pair with `score`. None: one pair per pass
    score_shared: ScoreSharedFn | None = None
    #: `cache_facts(options)`: what the result cache's key needs beyond the options' structured
    #: values, as plain data that replaces or adds option keys (a model file's digest; "all cores"
    #: as the count it means here). None returned: cannot be pinned down, the job is not cached.
    #: None: the options' values are all the key needs
    cache_facts: Callable[[Any], Mapping[str, Any] | None] | None = None
    #: the option that sets how many threads one job uses, where 0 means all cores: `vmafx batch
    #: --threads-per-job` sets it on jobs that leave it unset or 0, so jobs running side by side do
    #: not each take every core. None: the scorer has no such option
    threads_option: str | None = None
    #: which metric names the one-line summary of `vmafx run` shows (a scorer that also reports
    #: its internal features shows the headline ones). None: all of them
    summary_metric: Callable[[str], bool] | None = None


@attrs.frozen
class CommandOption:
    """A command-line option a plugin adds to `vmafx run` (`vmafx_command_options`).

    The core turns it into a click option and writes its value into the job before the job is
    parsed, so the value is checked like the same setting in a job file: into the scorer table
    (`target="scorer"`, only when the job's scorer is `scorer`, else the flag is refused naming
    its scorer) or into `storage_options` (`target="storage"`). Several plugins may offer one flag
    only with equal descriptors (the rclone backends' shared `--rclone-config`). Example::

        CommandOption(flag="--model", key="model", target="scorer", scorer="libvmaf", multiple=True,
                      help="libvmaf model (repeatable) ...")
    """

    flag: str  #: "--model": two dashes, lower case
    key: str  #: the scorer option or storage option it sets
    target: str = attrs.field(validator=attrs.validators.in_(("scorer", "storage")))
    help: str = ""
    #: for a scorer option: the scorer whose option it is
    scorer: str | None = None
    #: repeatable: the value is the list of every one given
    multiple: bool = False
    #: the value's type: str, int, float, or "path" (a file path, given to the job as text)
    value_type: Any = str
    metavar: str | None = None

    @property
    def name(self) -> str:
        return self.flag
