"""An encode ladder from S3: the reference read once for all rungs against one job per rung (issue 16).

    .venv/bin/python -m benchmarks.ladder [--seconds 3] [--rounds 1] [--json FILE]

A 1080p25 reference (testsrc2, x264 crf 16, faststart) goes into the integration tests' S3 server
(a container, testkit/s3server.py); vmafx reads it through rclone (`rclone serve http`,
the default for remote inputs) and runs a 6-rung ladder (x264 veryfast: 1080p crf 22/28/34, 720p
crf 26/32, 540p crf 30) twice: shared (the default: one encoder ffmpeg and one scorer ffmpeg, the
reference read and decoded once) and per rung (`VMAFX_LADDER=per-rung`: each rung its own encoder
and scorer, the reference read twice per rung, as before). rclone talks to S3 through a TCP relay
in this process that counts the bytes S3 sends: the reference's bytes read from S3 (the only
object read; HTTP headers and listings included). Wall and CPU time (vmafx and every child), and
the peak RSS of the shared encoder ffmpeg, are measured on the same run. Every rung's pooled
scores are checked equal between the two first (1e-6). Rounds alternate the order; the figures are
medians and the ratios shared / per rung.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import stats
from testkit.s3server import RunningServer, docker_problem
from vmafx_core.ffmpeg import find_ffmpeg

BUCKET = "vmafx-bench-ladder"
KEY = "src/ref1080.mp4"
RUNGS = [
    {"encoder": "libx264", "crf": 22, "preset": "veryfast"},
    {"encoder": "libx264", "crf": 28, "preset": "veryfast"},
    {"encoder": "libx264", "crf": 34, "preset": "veryfast"},
    {"encoder": "libx264", "crf": 26, "preset": "veryfast", "size": "1280x720"},
    {"encoder": "libx264", "crf": 32, "preset": "veryfast", "size": "1280x720"},
    {"encoder": "libx264", "crf": 30, "preset": "veryfast", "size": "960x540"},
]


class CountingRelay:
    """A TCP relay on 127.0.0.1 in front of the S3 server that counts the bytes the server sends."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.sent = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        try:
            while chunk := source.recv(1 << 16):
                sink.sendall(chunk)
                if count:
                    with self._lock:
                        self.sent += len(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def take(self) -> int:
        with self._lock:
            sent, self.sent = self.sent, 0
        return sent

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()


def _encoder_peak_rss(pid: int, stop: threading.Event, peaks: dict[str, int]) -> None:
    """Peak RSS (VmHWM, KiB) of the shared encoder ffmpeg (its argv has `-f tee`) and of the scorer."""
    from benchmarks.procs import descendants

    while not stop.is_set():
        for child in descendants(pid):
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                status = Path(f"/proc/{child}/status").read_text()
            except OSError:
                continue
            if not argv or not os.path.basename(argv[0]).startswith(b"ffmpeg"):
                continue
            role = "encoder" if b"tee" in argv or b"-c:v" in argv else "scorer" if b"-filter_complex" in argv \
                else None
            if role is None:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks[role] = max(peaks.get(role, 0), int(line.split()[1]))
        stop.wait(0.1)


def _run(job: Path, env: dict[str, str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", "--job", str(job), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    stop, peaks = threading.Event(), {}  # type: ignore[var-annotated]
    watcher = threading.Thread(target=_encoder_peak_rss, args=(proc.pid, stop, peaks), daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate(timeout=1800)
    wall = time.perf_counter() - started
    stop.set()
    watcher.join(5)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"vmafx run failed ({proc.returncode}): {stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "encoder_peak_rss_kib": peaks.get("encoder", 0),
            "scorer_peak_rss_kib": peaks.get("scorer", 0), "result": json.loads(stdout)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ladder", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", dest="json_file", type=Path)
    args = parser.parse_args(argv)
    problem = docker_problem()
    if problem:
        raise SystemExit(f"benchmarks.ladder needs the S3 container: {problem}")
    running = RunningServer()
    relay: CountingRelay | None = None
    samples: dict[str, list[dict[str, Any]]] = {"shared": [], "per-rung": []}
    try:
        server = running.start()
        relay = CountingRelay(server.port)
        with tempfile.TemporaryDirectory(prefix="vmafx-bench-ladder-") as tmp:
            folder = Path(tmp)
            ref = folder / "ref.mp4"
            frames = round(args.seconds * 25)
            subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                            "testsrc2=size=1920x1080:rate=25", "-frames:v", str(frames), "-c:v", "libx264",
                            "-preset", "veryfast", "-crf", "16", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                            str(ref)], check=True)
            server.make_bucket(BUCKET)
            server.put_file(BUCKET, KEY, ref)
            job = folder / "ladder.toml"
            text = f'id = "bench"\n[reference]\nuri = "s3://{BUCKET}/{KEY}"\n'
            for rung in RUNGS:
                text += "[[ladder]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in rung.items())
            job.write_text(text)
            env = {**os.environ, **server.rclone_env(), "RCLONE_CONFIG_S3_ENDPOINT": f"http://127.0.0.1:{relay.port}",
                   "VMAFX_RESULT_CACHE": "off"}
            for round_ in range(args.rounds):
                order = ("shared", "per-rung") if round_ % 2 == 0 else ("per-rung", "shared")
                got = {}
                for mode in order:
                    relay.take()
                    sample = _run(job, {**env, "VMAFX_LADDER": mode})
                    sample["s3_bytes_sent"] = relay.take()
                    got[mode] = sample.pop("result")
                    samples[mode].append(sample)
                for s, p in zip(got["shared"]["rungs"], got["per-rung"]["rungs"], strict=True):
                    if s["provenance"]["ladder"]["mode"] != "shared":
                        raise SystemExit(f"rung {s['job_id']} did not run in the shared pass")
                    difference = stats.first_difference(s, p)
                    if difference:
                        raise SystemExit(f"rung {s['job_id']} {difference}")
            ref_size = ref.stat().st_size
        server.remove_bucket(BUCKET)
    finally:
        if relay is not None:
            relay.close()
        running.stop()
    medians = stats.medians(samples)
    print(f"6-rung x264 ladder of a 1080p25 {args.seconds:g}s reference ({ref_size / 1e6:.1f} MB) from S3 "
          f"through rclone, {args.rounds} round(s), {os.cpu_count()} cores; scores equal to 1e-6")
    print(f"{'':<10} {'wall s':>8} {'CPU s':>8} {'S3 MB sent':>11} {'encoder RSS MiB':>16} {'scorer RSS MiB':>15}")
    for mode, m in medians.items():
        print(f"{mode:<10} {m['wall_s']:8.2f} {m['cpu_s']:8.2f} {m['s3_bytes_sent'] / 1e6:11.2f} "
              f"{m['encoder_peak_rss_kib'] / 1024:16.0f} {m['scorer_peak_rss_kib'] / 1024:15.0f}")
    s, p = medians["shared"], medians["per-rung"]
    print(f"{'ratio':<10} {s['wall_s'] / p['wall_s']:8.3f} {s['cpu_s'] / p['cpu_s']:8.3f} "
          f"{s['s3_bytes_sent'] / p['s3_bytes_sent']:11.3f}")
    if args.json_file is not None:
        args.json_file.write_text(json.dumps({"args": {**vars(args), "json_file": str(args.json_file)},
                                              "rungs": RUNGS, "samples": samples, "medians": medians}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
