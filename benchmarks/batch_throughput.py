"""Jobs per hour of `vmafx batch` with 1 and 2 workers on the same batch (issue 8).

A "worker" is one job at a time: locally, `--jobs 1` or `--jobs 2` of the thread pool; on Dask
(when `distributed` is installed), a cluster of 1 or 2 worker processes with one task slot each, on
this machine. Both sizes share the machine's cores among their jobs (--threads-per-job = cores /
workers), so the table shows what running jobs side by side buys over giving one job every core.

    .venv/bin/python -m benchmarks.batch_throughput [--jobs-in-batch 8] [--repeat 3] [--no-dask]

Each configuration runs the whole batch into a fresh results file, `--repeat` times, interleaved
with the others so that drift of the machine hits all of them alike; the table gives the median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from testkit.media import make_clip
from vmafx_core.ffmpeg import find_ffmpeg
from vmafx_core.process import Child


@dataclass
class Config:
    mode: str  #: "local" or "dask"
    workers: int
    threads_per_job: int
    seconds: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.mode} x{self.workers}"


def make_pair(folder: Path, seconds: float) -> tuple[Path, Path]:
    """A 720p reference and a 360p low-bitrate encode of it, like one rung of a ladder."""
    clip = make_clip(find_ffmpeg(), folder, seconds, size="1280x720", dis_size="640x360")
    return clip.ref, clip.dis


@contextmanager
def dask_cluster(folder: Path, workers: int) -> Iterator[str]:
    """A scheduler and `workers` single-slot worker processes on loopback; always stopped."""
    import distributed

    scheduler_file = folder / f"scheduler-{workers}.json"
    children = [Child([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                       "--no-dashboard", "--scheduler-file", str(scheduler_file)], name="dask-scheduler")]
    try:
        deadline = time.monotonic() + 60
        address = ""
        while not address:
            if time.monotonic() > deadline:
                raise RuntimeError("the Dask scheduler did not start: " + children[0].tail())
            try:
                address = json.loads(scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        for i in range(workers):
            children.append(Child([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                                   "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--memory-limit", "0",
                                   "--local-directory", str(folder / f"w{workers}-{i}")], name=f"dask-worker-{i}"))
        with distributed.Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        for child in reversed(children):
            child.stop(timeout=10)


def run_batch(jobs_file: Path, out: Path, config: Config, address: str | None) -> float:
    """Wall seconds of one `vmafx batch` over the whole batch; every job must end ok."""
    argv = [sys.executable, "-m", "vmafx_core", "batch", str(jobs_file), "--out", str(out), "--no-progress",
            "--no-cache",  # throughput of scoring, not of the result cache
            "--group-size", "1",  # one job per pass: the batch's jobs are one pair repeated
            "--threads-per-job", str(config.threads_per_job)]
    argv += ["--cluster", address] if address else ["--jobs", str(config.workers)]
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{config.label}: vmafx batch exited {proc.returncode}:\n{proc.stderr}")
    return elapsed


def table(configs: Sequence[Config], jobs: int) -> str:
    rows = ["| mode | workers | libvmaf threads/job | batch wall s (median) | jobs per hour | vs 1 worker |",
            "|---|---:|---:|---:|---:|---:|"]
    base: dict[str, float] = {}
    for c in configs:
        median = statistics.median(c.seconds)
        per_hour = jobs / median * 3600
        base.setdefault(c.mode, per_hour)
        spread = f" ({min(c.seconds):.1f}-{max(c.seconds):.1f})" if len(c.seconds) > 1 else ""
        rows.append(f"| {c.mode} | {c.workers} | {c.threads_per_job} | {median:.2f}{spread} | {per_hour:,.0f} | "
                    f"{per_hour / base[c.mode]:.2f}x |")
    return "\n".join(rows)


@contextmanager
def clusters_for(mode: str, folder: Path, group: Sequence[Config]) -> Iterator[dict[int, str]]:
    """For Dask, one cluster per worker count, all up while their runs interleave."""
    if mode != "dask":
        yield {}
        return
    with ExitStack() as stack:
        yield {c.workers: stack.enter_context(dask_cluster(folder, c.workers)) for c in group}



def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs-in-batch", type=int, default=8, help="jobs in the batch (default 8)")
    parser.add_argument("--clip-seconds", type=float, default=4.0, help="length of the 720p clip (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (default 3)")
    parser.add_argument("--no-dask", action="store_true", help="only the local thread pool")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0))
    configs = [Config("local", 1, cores), Config("local", 2, max(1, cores // 2))]
    if not args.no_dask:
        try:
            import distributed  # noqa: F401
        except ImportError:
            print("distributed is not installed: local pool only (pip install 'vmafx[dask]')", file=sys.stderr)
        else:
            configs += [Config("dask", 1, cores), Config("dask", 2, max(1, cores // 2))]

    with tempfile.TemporaryDirectory(prefix="vmafx-bench-batch-") as tmp:
        folder = Path(tmp)
        ref, dis = make_pair(folder, args.clip_seconds)
        jobs_file = folder / "jobs.jsonl"
        jobs_file.write_text("".join(json.dumps({"id": f"job-{i}", "reference": {"uri": str(ref)},
                                                 "distorted": {"uri": str(dis)}}) + "\n"
                                     for i in range(args.jobs_in_batch)))
        run = 0
        for mode in ("local", "dask"):
            group = [c for c in configs if c.mode == mode]
            if not group:
                continue
            with clusters_for(mode, folder, group) as addresses:
                for _ in range(args.repeat):
                    for c in group:
                        run += 1
                        c.seconds.append(run_batch(jobs_file, folder / f"out-{run}.jsonl", c, addresses.get(c.workers)))
                        print(f"  {c.label}: {c.seconds[-1]:.2f}s", file=sys.stderr)

    print(f"vmafx batch throughput: {args.jobs_in_batch} jobs of a 720p/360p pair, {args.clip_seconds:g} s "
          f"({round(args.clip_seconds * 25)} frames) each, {cores} cores, median of {args.repeat}\n")
    print(table(configs, args.jobs_in_batch))
    if args.json:
        args.json.write_text(json.dumps({"cores": cores, "jobs": args.jobs_in_batch,
                                         "configs": [asdict(c) for c in configs]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
