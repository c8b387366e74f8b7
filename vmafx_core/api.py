"""The Python API: what `vmafx run`, `vmafx batch`, `vmafx jobs` and `vmafx report` do, from Python.

`import vmafx` gives these names (README: Python API). Each function builds the job data the job
file holds, parses it with the one parser (`job.parse_job`) and calls what the command calls
(`executor.run_job`, `group.run_group`, `ladder.run_ladder`, `batch.command.run_batch`,
`jobs_cli.pair_jobs`, `report.command.write`): one implementation, two faces. Results are typed
(`Scored`: the `result.Result` and its frames); failures are the exceptions of `vmafx_core.errors`,
each with the `exit_code` the command would exit with. Every child process (ffmpeg, rclone
servers and mounts) is stopped and every temp folder removed when a call fails or is interrupted
(KeyboardInterrupt in a notebook), as the command line does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from vmafx_core.errors import VmafxError

if TYPE_CHECKING:
    import pandas

    from vmafx_core.listing import Pairing
    from vmafx_core.plugins import Plugins
    from vmafx_core.result import Pooled, Result

#: progress as the command line's bar gets it: frames done, frames expected (None: unknown), fps
Progress = Callable[[int, int | None, float], None]
JobData = Mapping[str, Any]

#: keyword shortcuts that go into the job's `scorer` table
_SCORER_KEYS = ("model", "features", "n_threads", "n_subsample")


@attrs.frozen
class Scored:
    """One scored pair: its result (pooled values, inputs, provenance, alignment) and its frames."""

    result: Result
    #: per-frame values, one record per scored frame: {"frame": n, metric: value, ..., "time_s": t}
    frames: Sequence[Mapping[str, float]] = ()

    @property
    def metrics(self) -> Mapping[str, Pooled]:
        """Pooled values per metric: mean, harmonic_mean, min, max, p1, p5, p50, stdev."""
        return self.result.metrics

    @property
    def vmaf(self) -> float | None:
        """The VMAF mean (None when no `vmaf` metric was scored, e.g. several models)."""
        pooled = self.result.metrics.get("vmaf")
        return pooled.mean if pooled is not None else None

    @property
    def labels(self) -> Mapping[str, Any]:
        return self.result.labels

    @property
    def provenance(self) -> Mapping[str, Any]:
        return self.result.provenance

    @property
    def alignment(self) -> Mapping[str, Any]:
        """Every frame decision made for this pair (README: Alignment)."""
        return self.result.provenance.get("alignment") or {}

    @property
    def colour(self) -> Mapping[str, Any]:
        """Each input's colour description (stated or assumed) and every conversion, tone mapping or
        HDR policy applied before scoring (README: Colour and HDR)."""
        return self.alignment.get("colour") or {}

    @property
    def bitrate_bps(self) -> float | None:
        """The distorted's video bitrate: an encode's own, or a file's as measured while scoring."""
        if self.result.encode and self.result.encode.get("bitrate_bps"):
            return float(self.result.encode["bitrate_bps"])
        return self.result.distorted.bitrate_bps

    def to_dict(self) -> dict[str, Any]:
        """The result as `vmafx run --json` prints it."""
        return self.result.to_dict()

    def to_pandas(self) -> pandas.DataFrame:
        """The per-frame values as a DataFrame indexed by frame (needs pandas: pip install 'vmafx[pandas]')."""
        try:
            import pandas
        except ImportError:
            from vmafx_core.errors import EnvironmentMissing
            raise EnvironmentMissing("to_pandas needs pandas: pip install 'vmafx[pandas]'") from None
        return pandas.DataFrame.from_records(list(self.frames)).set_index("frame")


@attrs.frozen
class Failed:
    """A pair (of several distorted, a ladder's rung, a batch's job) that was not scored."""

    job_id: str | None
    error: VmafxError


@attrs.frozen
class BatchResult:
    """What a batch left in its results file: every job's result (with its frames when kept), failures."""

    exit_code: int
    scored: list[Scored]
    failed: list[tuple[str, str, int]]  #: (job id, error, exit code)
    results_file: Path


# ---- building jobs ----------------------------------------------------------------------------


def load_job(path: str | Path) -> dict[str, Any]:
    """A JSON or TOML job file as plain data, to pass as `job=` (and change in Python first)."""
    from vmafx_core.job import load_job_file

    return load_job_file(Path(path))


def make_job(reference: str | Mapping[str, Any] | None = None, distorted: str | Mapping[str, Any] | None = None,
             *, job: JobData | None = None, **settings: Any) -> dict[str, Any]:
    """The job data the job file holds, from Python: sources as URIs (or `{uri, raw}` tables) and any
    job file key (`scorer`, `alignment`, `limits`, `storage`, `storage_options`, `allow_roots`,
    `labels`, `id`, `encode`, `ladder`), with `model`, `features`, `n_threads`, `n_subsample` as
    shortcuts into `scorer`. `job=` starts from a loaded job file."""
    data: dict[str, Any] = json.loads(json.dumps(dict(job or {})))  # a deep copy: the caller's stays as it was
    if reference is not None:
        data["reference"] = {"uri": reference} if isinstance(reference, str) else dict(reference)
    if distorted is not None:
        data["distorted"] = {"uri": distorted} if isinstance(distorted, str) else dict(distorted)
    scorer = {k: settings.pop(k) for k in _SCORER_KEYS if settings.get(k) is not None}
    for key in _SCORER_KEYS:
        settings.pop(key, None)
    if scorer:
        from vmafx_core.job import DEFAULT_SCORER

        data["scorer"] = {"name": DEFAULT_SCORER, **data.get("scorer", {}), **scorer}
    data.update({k: v for k, v in settings.items() if v is not None})
    return data


def _parsed(data: JobData, origin: str) -> tuple[Any, Any, Plugins]:
    from vmafx_core.plugins import for_job

    plugins = for_job(data)
    parsed, options = plugins.parse_job(data, origin)
    return parsed, options, plugins


@contextlib.contextmanager
def _owned() -> Iterator[None]:
    """Whatever ends a call early (an error, KeyboardInterrupt in a notebook): every child vmafx
    started is stopped and every temp folder it made removed before the exception goes on."""
    try:
        yield
    except BaseException:
        from vmafx_core import tempdirs
        from vmafx_core.process import stop_all

        stop_all(timeout=2.0)
        tempdirs.remove_own()
        raise


def _progress(progress: Progress | bool | None) -> tuple[Progress | None, Callable[[], None]]:
    """A callback as given, or a tqdm bar for `progress=True` (pip install 'vmafx[progress]')."""
    if progress is not True:
        return (progress or None), lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        from vmafx_core.errors import EnvironmentMissing
        raise EnvironmentMissing("progress=True needs tqdm: pip install 'vmafx[progress]'") from None
    bar = tqdm(unit="frame")

    def update(done: int, total: int | None, fps: float) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(max(done - bar.n, 0))

    return update, bar.close


# ---- scoring ----------------------------------------------------------------------------------


def score(reference: str | Mapping[str, Any] | None = None, distorted: str | Mapping[str, Any] | None = None, *,
          job: JobData | None = None, progress: Progress | bool | None = None, ffmpeg: str | None = None,
          **settings: Any) -> Scored:
    """Score one pair, as `vmafx run REF DIS` does; raises a `VmafxError` with the run's exit code.

    `vmafx.score("ref.mp4", "dis.mp4", features=["psnr"], labels={"crf": 28})`, or
    `vmafx.score(job=vmafx.load_job("job.toml"))`. A job with `encode` scores that encode.
    """
    from vmafx_core.executor import run_job

    data = make_job(reference, distorted, job=job, **settings)
    parsed, options, plugins = _parsed(data, "job")
    if parsed.ladder:
        from vmafx_core.errors import BadInput
        raise BadInput("a ladder job gives one result per rung: use vmafx.score_ladder")
    callback, close = _progress(progress)
    with _owned():
        try:
            result, frames = run_job(parsed, options, plugins, ffmpeg=ffmpeg, progress=callback)
        finally:
            close()
    return Scored(result, list(frames))


def score_many(reference: str | Mapping[str, Any], distorted: Sequence[str | Mapping[str, Any]], *,
               job: JobData | None = None, progress: Progress | bool | None = None, ffmpeg: str | None = None,
               **settings: Any) -> list[Scored | Failed]:
    """Score several distorted against one reference read once, as `vmafx run REF D1 D2 ...` does:
    one `Scored` (or `Failed`, with its error) per distorted, in order."""
    from vmafx_core.group import run_group

    base = make_job(reference, None, job=job, **settings)
    parsed = []
    options = None
    plugins = None
    for i, item in enumerate(distorted):
        one = {**base, "distorted": {"uri": item} if isinstance(item, str) else dict(item)}
        if "id" in base:
            one["id"] = f"{base['id']}/{i}"
        p, options, plugins = _parsed(one, f"distorted {i}")
        parsed.append(p)
    if not parsed:
        from vmafx_core.errors import BadInput
        raise BadInput("give at least one distorted")
    assert plugins is not None
    callback, close = _progress(progress)
    with _owned():
        try:
            outcomes = run_group(parsed, options, plugins, ffmpeg=ffmpeg, progress=callback)
        finally:
            close()
    return [Failed(p.id, o) if isinstance(o, VmafxError) else Scored(o[0], list(o[1]))
            for p, o in zip(parsed, outcomes, strict=True)]


def score_ladder(reference: str | Mapping[str, Any], rungs: Sequence[Mapping[str, Any]], *,
                 job: JobData | None = None, progress: Progress | bool | None = None, ffmpeg: str | None = None,
                 save_encode: str | None = None, **settings: Any) -> list[Scored | Failed]:
    """Encode the reference at every rung (`{"encoder": "libx264", "crf": 23, "size": "1280x720"}`)
    and score each, the reference read once, as `vmafx run --job LADDER` does; one per rung."""
    from vmafx_core.ladder import run_ladder

    data = {**make_job(reference, None, job=job, **settings), "ladder": [dict(r) for r in rungs]}
    parsed, options, plugins = _parsed(data, "ladder")
    callback, close = _progress(progress)
    with _owned():
        try:
            outcomes = run_ladder(parsed, options, plugins, ffmpeg=ffmpeg, progress=callback, save_encode=save_encode)
        finally:
            close()
    return [Failed(f"rung {i}", o) if isinstance(o, VmafxError) else Scored(o[0], list(o[1]))
            for i, o in enumerate(outcomes)]


def run_batch(jobs: str | Path | Sequence[JobData], out: str | Path, *, cluster: str | None = None,
              parallel: int | None = None, threads_per_job: int | None = None, group_size: int | None = None,
              skip_failed: bool = False, cache: bool = True, frames: bool = True, summary: str | Path | None = None,
              ffmpeg: str | None = None) -> BatchResult:
    """Run a batch as `vmafx batch JOBS --out OUT` does (resumable; a local pool, or a Dask
    scheduler at `cluster="tcp://HOST:PORT"`), then read its results back, frames included.

    `jobs` is a jobs file, or job data (`vmafx.make_job(...)`, `vmafx.jobs_from_listing(...).jobs`),
    which is written to `OUT.jobs.jsonl` first so that a second call resumes the same batch.
    """
    from vmafx_core import cache as result_cache
    from vmafx_core.batch.command import run_batch as run
    from vmafx_core.files import write_atomically

    out = Path(out)
    if isinstance(jobs, (str, Path)):
        jobs_file = Path(jobs)
    else:
        jobs_file = out.with_name(out.stem + ".jobs.jsonl")
        write_atomically(jobs_file, "".join(json.dumps(dict(j), ensure_ascii=False) + "\n" for j in jobs))
    before = result_cache.process_default()
    result_cache.set_process_default(result_cache.ResultCache(result_cache.default_folder()) if cache else None)
    try:
        with _owned():
            code = run(jobs_file, out, jobs=parallel, threads_per_job=threads_per_job, cluster=cluster,
                       summary=Path(summary) if summary else None, skip_failed=skip_failed, ffmpeg=ffmpeg,
                       group_size=group_size, frames=frames)
    finally:
        result_cache.set_process_default(before)
    return read_batch(out, int(code))


def read_batch(results_file: str | Path, exit_code: int = 0) -> BatchResult:
    """A batch's results file as typed results, each with the frames the batch kept beside it."""
    from vmafx_core.job import converter
    from vmafx_core.report.inputs import LADDER_SCHEMA, _frames_csv
    from vmafx_core.result import Result

    path = Path(results_file)
    scored: list[Scored] = []
    failed: list[tuple[str, str, int]] = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.strip():
            continue
        line = json.loads(text)
        if line.get("status") != "ok":
            failed.append((str(line["id"]), str(line.get("error")), int(line.get("exit_code", 1))))
            continue
        for record in line["rungs"] if line.get("schema") == LADDER_SCHEMA else [line]:
            if record.get("schema") != "vmafx.result":
                continue
            fields = {f.name for f in attrs.fields(Result)}
            result = converter.structure({k: v for k, v in record.items() if k in fields}, Result)
            kept = record.get("frames_file")
            frames: list[dict[str, float]] = []
            if isinstance(kept, str) and (path.parent / kept).exists():
                raw = _frames_csv((path.parent / kept).read_text(encoding="utf-8"), path.parent / kept)
                frames = [{"frame": n, **values} for n, values in zip(_frame_numbers(path.parent / kept), raw,
                                                                       strict=True)]
            scored.append(Scored(result, frames))
    return BatchResult(exit_code, scored, failed, path)


def _frame_numbers(path: Path) -> list[int]:
    import csv

    with path.open(encoding="utf-8") as fh:
        return [int(row["frame"]) for row in csv.DictReader(fh)]


# ---- jobs from a listing, and reports ------------------------------------------------------------


def jobs_from_listing(reference: str, distorted: str, *, job: JobData | None = None,
                      storage_options: Mapping[str, Any] | None = None) -> Pairing:
    """Pair a dataset's files through name templates, as `vmafx jobs` does: `.jobs` are batch job
    data; `.orphans`, `.unused`, `.ambiguous` and `.problems()` say what did not pair."""
    from vmafx_core.jobs_cli import pair_jobs

    with _owned():
        return pair_jobs(reference, distorted, base=dict(job or {}), storage_options=dict(storage_options or {}))


def report(sources: Sequence[str | Path | Scored], output: str | Path, *, curve_by: Sequence[str] = (),
           title: str = "vmafx report") -> Path:
    """Write the HTML report (as `vmafx report`) of result files, batch results files and `Scored`s."""
    from vmafx_core.report import inputs as report_inputs
    from vmafx_core.report.command import write

    loaded = report_inputs.Inputs()
    files = [Path(s) for s in sources if not isinstance(s, Scored)]
    if files:
        loaded = report_inputs.load(files)
    for index, one in enumerate(s for s in sources if isinstance(s, Scored)):
        data = one.to_dict()
        loaded.pairs.append(report_inputs.Pair(
            label=report_inputs.result_label(data, f"result {index}"), source="python", result=data,
            frames=[{k: v for k, v in f.items() if k not in ("frame", "time_s")} for f in one.frames] or None,
            frames_source="python" if one.frames else None))
    report_inputs.unique_labels(loaded.pairs)
    write(loaded, Path(output), curve_by=curve_by, title=title)
    return Path(output)
