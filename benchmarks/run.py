"""Run every benchmark of issue 6 against the integration tests' S3 server; print and save the results.

    .venv/bin/python -m benchmarks [--quick] [--rounds N] [--out FILE.json]

One S3 server container (testkit/s3server.py) serves the whole run and is always
removed; so are every rclone, mount and temp file the run makes, on success, failure, Ctrl-C and
SIGTERM. Timed comparisons are interleaved round by round (A, B, A, B, ...), with the order rotated
each round, and reported as the median of per-round ratios with their min and max.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from vmafx_rclone_common.binary import find_rclone, rclone_version

from benchmarks import procs, report, startup
from benchmarks.procs import CommandFailed, Interrupted, Sample
from testkit import media
from testkit.procs import descendants, mounts_under
from testkit.s3server import RunningServer, S3Server, docker_problem
from vmafx_core.ffmpeg import find_ffmpeg
from vmafx_core.plugins import Plugins

BUCKET = "vmafx-bench"
GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024
#: share of the CPU other processes may use before a timed round waits for them
QUIET_BUSY = 0.25
#: share of the CPU other processes may use during a timed run before its round is repeated
DISTURBED = 0.15


class Profile:
    """How much to run: the default (< 10 min on 2 cores) or --quick (a smoke run of every item)."""

    def __init__(self, name: str, clip_seconds: float, rounds: int, startup_samples: int, sizes: Sequence[int],
                 materialise_size: int | None, materialise_rounds: int, throughput_rounds: int,
                 threads: Sequence[int], extra_rounds: int) -> None:
        self.name = name
        self.clip_seconds = clip_seconds
        self.rounds = rounds
        self.startup_samples = startup_samples
        self.sizes = list(sizes)
        self.materialise_size = materialise_size
        self.materialise_rounds = materialise_rounds
        self.throughput_rounds = throughput_rounds
        self.threads = list(threads)
        self.extra_rounds = extra_rounds

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


PROFILES = {
    "quick": Profile("quick", clip_seconds=2, rounds=2, startup_samples=5, sizes=[16 * MIB, 64 * MIB],
                     materialise_size=64 * MIB, materialise_rounds=1, throughput_rounds=1, threads=[1, 2],
                     extra_rounds=1),
    "default": Profile("default", clip_seconds=10, rounds=5, startup_samples=15, sizes=[100 * MIB, GIB, 4 * GIB],
                       materialise_size=GIB, materialise_rounds=3, throughput_rounds=3, threads=[1, 2, 4],
                       extra_rounds=3),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


class Bench:
    """The state of one benchmark run: tools, the S3 server, the work folder and the results."""

    def __init__(self, profile: Profile, server: S3Server, work: Path, s3_pid: int | None = None,
                 wait_budget: float = 0.0) -> None:
        self.profile = profile
        self.server = server
        self.work = work
        self.s3_pid = s3_pid
        self.wait_budget = wait_budget
        self.ffmpeg = find_ffmpeg(None)
        self.rclone = find_rclone()
        vmafx = Path(sys.executable).with_name("vmafx")
        self.vmafx = [str(vmafx)] if vmafx.is_file() else [sys.executable, "-m", "vmafx_core"]
        self.env = {k: v for k, v in os.environ.items() if k not in ("VMAFX_RCLONE_CONFIG", "VMAFX_PLUGINS")}
        self.env.update(server.rclone_env())
        self.env["RCLONE_CONFIG"] = os.devnull
        self.backends = {name: p.item for name, p in Plugins().storage_backends().items()}
        self.data: dict[str, Any] = {"runs": {}, "skipped": {}, "growth": {}, "vmaf": {}}
        self.clip: media.Clip | None = None

    # --- helpers ---------------------------------------------------------------------------------------

    def quiet(self, before: str) -> None:
        """Wait, within the run's waiting budget, until other processes leave the CPU mostly idle.

        The machine is shared: a test suite running next to the benchmark skews wall times far
        more than anything measured here. Every wait and the load seen are kept in the JSON.
        """
        started = time.monotonic()
        while True:
            busy = procs.busy_fraction(0.5, self.s3_pid)
            if busy < QUIET_BUSY or self.wait_budget <= 0:
                break
            self.wait_budget -= 0.5
        waited = time.monotonic() - started
        self.data.setdefault("quiet_waits", []).append({"before": before, "waited_s": round(waited, 1),
                                                        "busy_after": round(busy, 3)})
        if waited > 1:
            log(f"waited {waited:.0f}s for other processes to leave the CPU (busy {busy * 100:.0f} % now)")

    def usable(self, backend: str) -> str | None:
        """None when the storage backend works here, else why not."""
        if backend not in self.backends:
            return f"plugin {backend} is not installed"
        availability = self.backends[backend].availability()
        return None if availability.usable else availability.reason

    def vmafx_run(self, ref: str, dis: str, *extra: str, watch: bool = False) -> tuple[Sample, dict[str, Any]]:
        """`vmafx run REF DIS --json EXTRA...`, measured; the parsed result.

        A failed job is run once more (and the failure kept as a warning): on a shared machine
        another test suite's cleanup may kill or unmount what this run started.
        """
        argv = [*self.vmafx, "run", ref, dis, "--json", "--no-progress", *extra]
        try:
            sample = procs.run(argv, env=self.env, watch=watch, s3_pid=self.s3_pid)
        except CommandFailed as exc:
            log(f"retrying once: {exc}")
            self.data.setdefault("warnings", []).append(f"a job failed and was run again: {exc}")
            sample = procs.run(argv, env=self.env, watch=watch, s3_pid=self.s3_pid)
        result = json.loads(sample.stdout)
        t = result["timings"]
        sample.timings = {"vmafx_total_s": t["total_s"], "prepare_s": t["prepare_s"], "score_s": t["score_s"],
                          "ffmpeg_s": result["provenance"].get("score_seconds", 0.0)}
        return sample, result

    def s3(self, key: str) -> str:
        return f"s3://{BUCKET}/{key}"

    def materialise(self, keys: Sequence[str], *extra: str, watch: bool = False) -> tuple[Sample, dict[str, Any]]:
        """`rclone copy` the objects to a local temp folder, then score the copies; both measured as one."""
        folder = Path(tempfile.mkdtemp(prefix="copy-", dir=self.work))
        try:
            prefix = os.path.dirname(keys[0])
            copy = procs.run([self.rclone, "copy", f"s3:{BUCKET}/{prefix}", str(folder),
                              *[a for k in keys for a in ("--include", "/" + os.path.basename(k))]], env=self.env,
                             s3_pid=self.s3_pid)
            paths = [str(folder / os.path.basename(k)) for k in keys]
            sample, result = self.vmafx_run(paths[0], paths[-1], *extra, watch=watch)
            sample.timings["copy_s"] = copy.wall_s
            sample.wall_s += copy.wall_s
            sample.cpu_s += copy.cpu_s
            sample.s3_cpu_s += copy.s3_cpu_s
            sample.other_cpu_s += copy.other_cpu_s
            sample.written_bytes += copy.written_bytes
            return sample, result
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def record_vmaf(self, name: str, result: dict[str, Any], frames: int) -> None:
        if result["frames_scored"] != frames:
            raise RuntimeError(f"{name}: scored {result['frames_scored']} frames, expected {frames}")
        self.data["vmaf"].setdefault(name, round(result["metrics"]["vmaf"]["mean"], 6))

    # --- items 1, 2, 3a: one 1080p clip, every way of reading it, interleaved ---------------------------

    def clip_rounds(self) -> None:
        clip_dir = self.work / "clip"
        clip_dir.mkdir()
        clip = self.clip = media.make_clip(self.ffmpeg, clip_dir, self.profile.clip_seconds)
        self.data["clip"] = {"size": clip.size, "distorted_size": clip.dis_size, "frames": clip.frames,
                             "fps": media.FPS, "codec": "h264 (x264 veryfast; reference crf 18, distorted crf 32)",
                             "bytes": {"reference": clip.ref.stat().st_size, "distorted": clip.dis.stat().st_size}}
        self.server.make_bucket(BUCKET)
        self.server.put_file(BUCKET, "clip/ref.mp4", clip.ref)
        self.server.put_file(BUCKET, "clip/dis.mp4", clip.dis)
        log(f"clip: {clip.size} {clip.frames} frames, {clip.ref.stat().st_size / MIB:.1f} MiB reference, uploaded")

        sample, result = self.vmafx_run(str(clip.ref), str(clip.dis))  # warm-up; gives the filter graph
        graph = result["provenance"]["filter_graph"].replace("<log>", str(self.work / "bare-vmaf.json"))
        ffmpeg = result["provenance"].get("ffmpeg_path", self.ffmpeg)
        self.data["filter_graph"] = result["provenance"]["filter_graph"]
        self.data.setdefault("versions", {}).update(ffmpeg=result["provenance"].get("ffmpeg"),
                                                    libvmaf=result["provenance"].get("libvmaf"))
        bare_argv = [ffmpeg, "-hide_banner", "-nostdin", "-i", str(clip.ref), "-i", str(clip.dis),
                     "-filter_complex", graph, "-f", "null", "-"]
        self.data["bare_command"] = [*bare_argv[:-5], "-filter_complex", result["provenance"]["filter_graph"],
                                     "-f", "null", "-"]

        modes: dict[str, Callable[[], Sample]] = {}

        def bare() -> Sample:
            s = procs.run(bare_argv, env=self.env, s3_pid=self.s3_pid)
            pooled = json.loads((self.work / "bare-vmaf.json").read_text())["pooled_metrics"]["vmaf"]["mean"]
            self.data["vmaf"].setdefault("bare ffmpeg", round(pooled, 6))
            return s

        def vmafx(name: str, ref: str, dis: str, *extra: str) -> Callable[[], Sample]:
            def go() -> Sample:
                s, r = self.vmafx_run(ref, dis, *extra)
                self.record_vmaf(name, r, clip.frames)
                return s
            return go

        def materialise() -> Sample:
            s, r = self.materialise(["clip/ref.mp4", "clip/dis.mp4"])
            self.record_vmaf("materialise", r, clip.frames)
            return s

        modes["bare"] = bare
        modes["local"] = vmafx("local", str(clip.ref), str(clip.dis))
        ref_uri, dis_uri = self.s3("clip/ref.mp4"), self.s3("clip/dis.mp4")
        for key, backend in (("http", "rclone-http"), ("mount", "rclone-mount")):
            why = self.usable(backend)
            if why:
                self.data["skipped"][key] = why
                log(f"{backend} skipped: {why}")
            else:
                modes[key] = vmafx(key, ref_uri, dis_uri, "--storage", backend)
        if "http" in modes:
            modes["materialise"] = materialise
        for name, go in modes.items():  # one warm-up each: page cache, binaries, server
            if name not in ("bare", "local"):
                go()
        bare()
        self.data["runs"] = self.rounds(modes, self.profile.rounds, self.profile.extra_rounds, "round")
        if len({v for k, v in self.data["vmaf"].items() if not k.startswith("raw")}) > 1:
            self.data.setdefault("warnings", []).append(f"VMAF differs between modes: {self.data['vmaf']}")

    def rounds(self, modes: dict[str, Callable[[], Sample]], wanted: int, extra: int,
               label: str) -> dict[str, list[dict[str, Any]]]:
        """`wanted` undisturbed interleaved rounds of every mode (order rotated each round).

        A round during which other processes used more than DISTURBED of the CPU in any of its
        runs is kept in the JSON (`rounds`) but repeated, at most `extra` times, so one burst of
        someone else's load does not decide a ratio. Too few undisturbed rounds: all are used.
        """
        names = list(modes)
        nproc = os.cpu_count() or 1
        kept: list[dict[str, dict[str, Any]]] = []
        every: list[dict[str, Any]] = []
        i = 0
        while len(kept) < wanted and i < wanted + extra:
            order = names[i % len(names):] + names[:i % len(names)]
            self.quiet(f"{label} {i + 1}")
            samples = {name: modes[name]().to_json() for name in order}
            worst = max(procs.other_share(v, nproc) for v in samples.values())
            disturbed = worst > DISTURBED
            every.append({"label": label, "disturbed": disturbed, "worst_other_share": round(worst, 3),
                          "load": os.getloadavg()[0], "samples": samples})
            if not disturbed:
                kept.append(samples)
            i += 1
            state = f"disturbed: others used {worst:.0%} of the CPU, repeated" if disturbed else "ok"
            log(f"{label} {i} ({state}): " + ", ".join(f"{n} {samples[n]['wall_s']:.2f}s" for n in names))
        self.data.setdefault("rounds", []).extend(every)
        if len(kept) < min(wanted, 2):
            self.data.setdefault("warnings", []).append(
                f"{label}: only {len(kept)} undisturbed rounds; every round is used")
            kept = [r["samples"] for r in every]
        return {n: [r[n] for r in kept] for n in names}

    # --- item 4: start-up --------------------------------------------------------------------------------

    def startup(self) -> None:
        from vmafx_core.types import InputRequest

        assert self.clip is not None
        modes: dict[str, list[InputRequest]] = {}
        remote = [InputRequest("reference", self.s3("clip/ref.mp4")),
                  InputRequest("distorted", self.s3("clip/dis.mp4"))]
        for backend in ("rclone-http", "rclone-mount"):
            why = self.usable(backend)
            if why:
                self.data["skipped"][f"startup-{backend}"] = why
            else:
                modes[backend] = remote
        modes["local"] = [InputRequest("reference", str(self.clip.ref)), InputRequest("distorted", str(self.clip.dis))]
        self.quiet("start-up")
        with _environ({k: v for k, v in self.env.items() if k.startswith("RCLONE_")}):
            self.data["startup"] = startup.measure(modes, self.profile.startup_samples, log=log)

    # --- item 6: throughput ------------------------------------------------------------------------------

    def throughput(self) -> None:
        assert self.clip is not None
        clip = self.clip

        def at(threads: int) -> Callable[[], Sample]:
            def go() -> Sample:
                sample, result = self.vmafx_run(str(clip.ref), str(clip.dis), "--n-threads", str(threads))
                sample.timings["fps"] = result["frames_scored"] / result["provenance"]["score_seconds"]
                return sample
            return go

        runs = self.rounds({str(t): at(t) for t in self.profile.threads}, self.profile.throughput_rounds,
                           self.profile.extra_rounds - 1, "throughput round")
        self.data["throughput"] = {t: [r["timings"]["fps"] for r in samples] for t, samples in runs.items()}

    # --- item 5 and 3b: raw sources of growing size ------------------------------------------------------

    def growth(self) -> None:
        raw = ["--width", str(media.RAW_WIDTH), "--height", str(media.RAW_HEIGHT), "--pix-fmt", media.RAW_PIX_FMT,
               "--fps", str(media.FPS)]
        modes = [m for m in ("rclone-http", "rclone-mount") if not self.usable(m)]
        growth: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        self.data["growth"] = growth
        self.data["raw"] = {"width": media.RAW_WIDTH, "height": media.RAW_HEIGHT, "pix_fmt": media.RAW_PIX_FMT,
                            "note": "reference and distorted are the same object, read twice"}
        for size in self.profile.sizes:
            frames = media.raw_frames_for(size)
            key = f"raw/{frames}.yuv"
            started = time.perf_counter()
            nbytes = media.upload_raw(self.ffmpeg, self.server, BUCKET, key, frames)
            log(f"raw {nbytes / MIB:.0f} MiB ({frames} frames) generated and uploaded in "
                f"{time.perf_counter() - started:.1f}s")
            try:
                for mode in modes:
                    sample, result = self.vmafx_run(self.s3(key), self.s3(key), *raw, "--storage", mode, watch=True)
                    self.record_vmaf(f"raw {mode} {frames}", result, frames)
                    growth[mode].append({"size_bytes": nbytes, "frames": frames, "sample": sample.to_json(),
                                         "fps": result["timings"]["fps"]})
                    log(f"{mode} {nbytes / MIB:.0f} MiB: {sample.wall_s:.1f}s, peak RSS "
                        + ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in sample.peak_rss_kib.items())
                        + f", wrote {sample.written_bytes} B")
                if size == self.profile.materialise_size and "rclone-http" in modes:
                    twin = f"raw/{frames}-distorted.yuv"
                    media.upload_raw(self.ffmpeg, self.server, BUCKET, twin, frames)
                    try:
                        self.materialise_raw(key, twin, nbytes, frames, raw)
                    finally:
                        self.server.client().remove_object(BUCKET, twin)
            finally:
                self.server.client().remove_object(BUCKET, key)

    def materialise_raw(self, ref: str, dis: str, nbytes: int, frames: int, raw: Sequence[str]) -> None:
        """Item 3b: copy-then-score vs stream for a pair of large raw objects, in interleaved rounds."""

        def stream() -> Sample:
            return self.vmafx_run(self.s3(ref), self.s3(dis), *raw, "--storage", "rclone-http")[0]

        def materialise() -> Sample:
            sample, result = self.materialise([ref, dis], *raw)
            self.record_vmaf(f"raw materialise {frames}", result, frames)
            return sample

        runs = self.rounds({"stream": stream, "materialise": materialise}, self.profile.materialise_rounds,
                           self.profile.extra_rounds - 1, "raw materialise round")
        self.data["materialise_raw"] = {"size_bytes": nbytes, "frames": frames, **runs}


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables of this process for the block (in-process backends read them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _container_pid(running: RunningServer) -> int | None:
    """The S3 server's main process as this machine sees it (to tell its CPU use apart)."""
    try:
        assert running.container is not None
        wrapped = running.container.get_wrapped_container()
        wrapped.reload()
        return int(wrapped.attrs["State"]["Pid"]) or None
    except Exception:  # only used to label CPU time
        return None


def leftovers(work: Path) -> list[str]:
    """Processes of ours still running and mounts under the work folder; each is removed."""
    found = []
    for pid in descendants(os.getpid()):
        found.append(f"process {pid}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for point in mounts_under(str(work)):
        found.append(f"mount {point}")
        subprocess.run(["fusermount3", "-uz", point], capture_output=True, check=False)
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of every item (short clip, small sizes)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds for items 1-3 (default 5)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latest.json"),
                        help="where to write the JSON with every raw sample (default %(default)s)")
    parser.add_argument("--max-wait", type=float, default=None,
                        help="seconds in all the run may wait for other processes to leave the CPU before a timed "
                             "round (default 60, --quick 15)")
    parser.add_argument("--table-from", type=Path, metavar="FILE.json",
                        help="only print the table of an earlier run's JSON (no server, nothing measured)")
    parser.add_argument("--skip", action="append", default=[], choices=["clip", "startup", "throughput", "growth"],
                        help="leave out a part (repeatable)")
    return parser.parse_args(argv)


def precompile() -> None:
    """Byte-compile vmafx's own modules, as `pip install` of a wheel does.

    An editable install compiles them on first import and keeps the .pyc files, unless
    PYTHONDONTWRITEBYTECODE is set (it is on some machines, this one included): then every timed
    `vmafx run` would recompile them (~25 ms), which no installed vmafx does.
    """
    root = Path(__file__).resolve().parent.parent
    for folder in [root / "vmafx_core", *sorted((root / "plugins").glob("*/src"))]:
        compileall.compile_dir(str(folder), quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table_from:
        saved = json.loads(args.table_from.read_text())
        print(f"vmafx benchmarks, {saved['date'][:10]} ({saved['profile']['name']} profile, "
              f"{saved.get('total_seconds', 0):.0f} s); {report.machine_note(saved)}\n")
        print(report.table(report.rows(saved)))
        return 0
    if "clip" in args.skip:
        print("benchmarks: --skip clip: the other parts need the clip", file=sys.stderr)
        return 2
    profile = PROFILES["quick" if args.quick else "default"]
    if args.rounds:
        profile.rounds = args.rounds
    if args.max_wait is None:
        args.max_wait = 15.0 if args.quick else 60.0
    problem = docker_problem()
    if problem:
        print(f"benchmarks: {problem}; the benchmarks need the integration tests' S3 server container",
              file=sys.stderr)
        return 3
    precompile()
    began = time.monotonic()
    started_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    old_term = signal.signal(signal.SIGTERM, _raise_interrupted)
    old_int = signal.getsignal(signal.SIGINT)
    work = Path(tempfile.mkdtemp(prefix="vmafx-bench-")).resolve()
    tmp = work / "tmp"  # every temp folder vmafx and its plugins make, kept apart from other runs'
    tmp.mkdir()
    saved_tmpdir = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = None
    running: RunningServer | None = None
    data: dict[str, Any] = {"schema": "vmafx.benchmark", "schema_version": 1, "date": started_at.isoformat(),
                            "profile": profile.to_json(), "machine": report.machine()}
    code = 0
    try:
        running = RunningServer()
        server = running.start()
        s3_pid = _container_pid(running)
        bench = Bench(profile, server, work, s3_pid=s3_pid, wait_budget=args.max_wait)
        bench.data.update(data)
        data = bench.data
        data["versions"] = {"rclone": rclone_version(bench.rclone).split()[0], "s3_server": server.kind}
        log(f"S3 server {server.kind} on {server.endpoint}; work folder {work}")
        parts = [("clip", bench.clip_rounds), ("startup", bench.startup), ("throughput", bench.throughput),
                 ("growth", bench.growth)]
        for name, part in parts:
            if name in args.skip:
                continue
            t = time.monotonic()
            data.setdefault("load", []).append(os.getloadavg()[0])
            part()
            data.setdefault("part_seconds", {})[name] = round(time.monotonic() - t, 1)
    except (KeyboardInterrupt, Interrupted):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log("interrupted: cleaning up")
        data["error"] = "interrupted"
        code = 130
    except Exception as exc:  # report what was measured so far, after cleaning up
        if not isinstance(exc, CommandFailed | RuntimeError | OSError):
            traceback.print_exc()
        log(f"failed: {exc}")
        data["error"] = f"{type(exc).__name__}: {exc}"
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if running is not None:
            running.stop()
        left = leftovers(work)
        if left:
            log("removed leftovers: " + ", ".join(left))
            data.setdefault("warnings", []).append("leftovers removed: " + ", ".join(left))
        shutil.rmtree(work, ignore_errors=True)
        if saved_tmpdir is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_tmpdir
        tempfile.tempdir = None
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
    data.setdefault("load", []).append(os.getloadavg()[0])
    data["total_seconds"] = round(time.monotonic() - began, 1)
    try:
        rows = report.rows(data)
    except Exception as exc:  # a partial run may lack what a row needs: keep the raw samples anyway
        rows = []
        data.setdefault("warnings", []).append(f"no table: {type(exc).__name__}: {exc}")
        code = code or 1
    data["rows"] = report.rows_json(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"\nvmafx benchmarks, {started_at:%Y-%m-%d} ({profile.name} profile, {data['total_seconds']:.0f} s); "
          f"{report.machine_note(data)}\n")
    print(report.table(rows))
    if data.get("error"):
        print(f"\nincomplete run: {data['error']}")
    if profile.name == "quick":
        print("\nquick profile: a smoke run of every item; the targets apply to the default run")
    for warning in data.get("warnings", []):
        print(f"\nwarning: {warning}")
    print(f"\nraw samples: {args.out}")
    return code
