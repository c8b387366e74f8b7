"""A batch of 24 jobs over 4 references from S3: grouped by reference vs one job per pass, and a cached rerun.

    .venv/bin/python -m benchmarks.batch_grouped [--size 1280x720] [--seconds 3] [--rounds 2]

Four references (testsrc2, mandelbrot, smptehdbars, rgbtestsrc; x264 CRF 12) and six x264 rungs
of each (CRF 22 to 42, the last two at half size) go into a bucket of the integration tests' S3
container. vmafx reads them through rclone (`rclone serve http`, as any remote job), with rclone's
S3 endpoint set to a proxy in this process that forwards every request to the container and
counts the bytes of each object it sends: the bytes read of the references. Per round, in
alternating order: `vmafx batch` with `--group-size 1` (ungrouped) and with the default
(grouped), both `--no-cache`; then a grouped run that fills an empty result cache (the first run)
and the same batch again from that cache (the cached rerun). Every grouped and cached result is
checked against the ungrouped one first (pooled values equal). Printed: medians of wall time,
CPU time (vmafx and all its children: ffmpeg, rclone) and reference bytes, and the ratios.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from benchmarks import stats
from testkit.media import ffmpeg_run as _ffmpeg
from testkit.s3server import RunningServer, docker_problem

PATTERNS = ("testsrc2", "mandelbrot", "smptehdbars", "rgbtestsrc")


class CountingProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to the S3 server unchanged (its signature included) and counts the
    body bytes it sends back per object key."""

    daemon_threads = True

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream
        self.sent: dict[str, int] = {}
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A reader that went away (ffmpeg done, rclone closing a range) is no error here."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def count(self, key: str, n: int) -> None:
        with self.lock:
            self.sent[key] = self.sent.get(key, 0) + n


class _Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CountingProxy

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            reply = upstream.getresponse()
            chunked = reply.getheader("Transfer-Encoding", "").lower() == "chunked"
            data = reply.read() if chunked else None
            self.send_response_only(reply.status, reply.reason)
            for name, value in reply.getheaders():
                if name.lower() not in ("transfer-encoding", "connection") and not (
                        chunked and name.lower() == "content-length"):
                    self.send_header(name, value)
            if data is not None:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            key = unquote(urlsplit(self.path).path).rsplit("/", 1)[-1]
            if data is not None:
                self.wfile.write(data)
                return
            while chunk := reply.read(1 << 16):
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                if self.command == "GET":
                    self.server.count(key, len(chunk))
        finally:
            upstream.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def make_media(folder: Path, size: str, seconds: float, rungs: int) -> dict[str, list[Path]]:
    width, height = (int(v) for v in size.split("x"))
    out: dict[str, list[Path]] = {}
    for i, pattern in enumerate(PATTERNS):
        ref = folder / f"ref{i}.mkv"
        _ffmpeg("-f", "lavfi", "-i", f"{pattern}=size={size}:rate=25", "-t", str(seconds), "-pix_fmt", "yuv420p",
                "-c:v", "libx264", "-crf", "12", "-preset", "veryfast", str(ref))
        out[ref.name] = []
        for r in range(rungs):
            dis = folder / f"ref{i}-rung{r}.mkv"
            scale = ["-vf", f"scale={width // 2}:{height // 2}"] if r >= rungs - 2 else []
            _ffmpeg("-i", str(ref), *scale, "-c:v", "libx264", "-crf", str(22 + 4 * r), "-preset", "veryfast",
                    str(dis))
            out[ref.name].append(dis)
    return out


def run_batch(jobs: Path, out: Path, env: dict[str, str], *args: str) -> tuple[float, float]:
    """Wall and CPU seconds (vmafx and its children) of one `vmafx batch`; every job must end ok."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vmafx_core", "batch", str(jobs), "--out", str(out), "--no-progress",
                           *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"vmafx batch {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def results(path: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_grouped", description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rungs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", dest="json_file", type=Path)
    args = parser.parse_args(argv)
    problem = docker_problem()
    if problem:
        raise SystemExit(f"needs the S3 container: {problem}")
    work = Path(tempfile.mkdtemp(prefix="vmafx-bench-batchgrouped-"))
    running = RunningServer()
    proxy: CountingProxy | None = None
    samples: dict[str, list[dict[str, float]]] = {"ungrouped": [], "grouped": [], "first run": [], "cached rerun": []}
    try:
        media = make_media(work, args.size, args.seconds, args.rungs)
        server = running.start()
        bucket = server.make_bucket("bench-" + secrets.token_hex(4))
        for ref, rungs in media.items():
            server.put_file(bucket, ref, work / ref)
            for dis in rungs:
                server.put_file(bucket, dis.name, dis)
        proxy = CountingProxy(("127.0.0.1", server.port))
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        env = {**os.environ, **server.rclone_env(), "RCLONE_CONFIG_S3_ENDPOINT": f"http://127.0.0.1:{proxy.server_port}"}
        env.pop("VMAFX_RESULT_CACHE", None)
        jobs = work / "jobs.jsonl"
        jobs.write_text("".join(json.dumps({"id": dis.stem, "reference": {"uri": f"s3://{bucket}/{ref}"},
                                            "distorted": {"uri": f"s3://{bucket}/{dis.name}"}}) + "\n"
                                for ref, rungs in media.items() for dis in rungs))
        n_jobs = sum(len(r) for r in media.values())
        ref_names = set(media)
        run = 0

        def measure(mode: str, *flags: str) -> dict[str, dict[str, Any]]:
            nonlocal run
            run += 1
            proxy_sent = proxy.sent if proxy is not None else {}
            proxy_sent.clear()
            out = work / f"out-{run}.jsonl"
            wall, cpu = run_batch(jobs, out, env, *flags)
            ref_bytes = sum(n for key, n in proxy_sent.items() if key in ref_names)
            samples[mode].append({"wall_s": wall, "cpu_s": cpu, "ref_bytes": ref_bytes})
            print(f"  {mode}: {wall:.2f} s wall, {cpu:.2f} s CPU, references {ref_bytes / 1e6:.2f} MB read",
                  file=sys.stderr)
            return results(out)

        for round_ in range(args.rounds):
            cache = work / f"cache-{round_}"
            order = [("ungrouped", "--group-size", "1", "--no-cache"), ("grouped", "--no-cache")]
            got = {mode: measure(mode, *flags) for mode, *flags in (order if round_ % 2 == 0 else order[::-1])}
            got["first run"] = measure("first run", "--cache-dir", str(cache))
            got["cached rerun"] = measure("cached rerun", "--cache-dir", str(cache))
            base = got["ungrouped"]
            for mode in ("grouped", "first run", "cached rerun"):
                for job_id, one in base.items():
                    if got[mode][job_id]["metrics"] != one["metrics"]:
                        raise SystemExit(f"{mode} {job_id}: its values differ from the ungrouped run")
            if not all(r["provenance"].get("group", {}).get("size") == args.rungs for r in got["grouped"].values()):
                raise SystemExit("the grouped run did not score each reference's rungs in one pass")
            if not all(r["cache"]["hit"] for r in got["cached rerun"].values()):
                raise SystemExit("the cached rerun scored a job again")
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        if proxy is not None:
            proxy.shutdown()
            proxy.server_close()
        running.stop()
        shutil.rmtree(work, ignore_errors=True)
    medians = stats.medians(samples)
    print(f"vmafx batch, {n_jobs} jobs over {len(PATTERNS)} references ({args.size}, {args.seconds:g} s, "
          f"{round(args.seconds * 25)} frames) from S3 through rclone-http, {os.cpu_count()} cores, "
          f"median of {args.rounds} rounds; values equal in every mode")
    print(f"{'':<14} {'wall s':>8} {'CPU s':>8} {'ref MB read':>12}")
    for mode, m in medians.items():
        print(f"{mode:<14} {m['wall_s']:8.2f} {m['cpu_s']:8.2f} {m['ref_bytes'] / 1e6:12.2f}")
    g, u = medians["grouped"], medians["ungrouped"]
    print(f"{'grouped/ungr.':<14} {g['wall_s'] / u['wall_s']:8.3f} {g['cpu_s'] / u['cpu_s']:8.3f} "
          f"{g['ref_bytes'] / u['ref_bytes']:12.3f}")
    c, f = medians["cached rerun"], medians["first run"]
    print(f"{'cached/first':<14} {c['wall_s'] / f['wall_s']:8.3f} {c['cpu_s'] / f['cpu_s']:8.3f} "
          f"{(c['ref_bytes'] / f['ref_bytes']) if f['ref_bytes'] else 0:12.3f}")
    if args.json_file is not None:
        args.json_file.write_text(json.dumps({"args": {**vars(args), "json_file": str(args.json_file)},
                                              "samples": samples, "medians": medians}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
