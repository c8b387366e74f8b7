"""Several distorted, one reference read: `vmafx run REF D1..Dn` against n separate `vmafx run REF Di`.

`python -m benchmarks.grouped [--seconds S] [--size WxH] [--rungs N] [--rounds R]` makes a
reference (testsrc2, x264 at CRF 12) and N x264 rungs of it (CRF 23 to 38, the last one at half
size), serves the reference over HTTP from a server in this process that counts the bytes it sends
(ffmpeg reads it as it would an object), and times, in alternating order, one grouped run and the
N separate runs: wall time, CPU time of the children (vmafx and its ffmpeg), and the reference's
bytes sent. Every grouped score is checked against its separate run first (1e-6), then the medians
and the ratios grouped / separate are printed, and the samples written as JSON with `--json FILE`.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import stats
from testkit.media import ffmpeg_run


class _Counting(http.server.SimpleHTTPRequestHandler):
    sent: dict[str, int] = {}
    lock = threading.Lock()

    def copyfile(self, source: Any, outputfile: Any) -> None:  # type: ignore[override]
        total = 0
        while chunk := source.read(1 << 16):
            try:
                outputfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            total += len(chunk)
        with self.lock:
            self.sent[self.path] = self.sent.get(self.path, 0) + total

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def _make(folder: Path, seconds: float, size: str, rungs: int) -> tuple[Path, list[Path]]:
    width, height = (int(v) for v in size.split("x"))
    ref = folder / "ref.mkv"
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}", "-c:v", "libx264",
            "-crf", "12", "-preset", "veryfast", str(ref))
    out = []
    for i in range(rungs):
        crf = 23 + round(15 * i / max(rungs - 1, 1))
        path = folder / f"rung{i}.mkv"
        scale = ["-vf", f"scale={width // 2}:{height // 2}"] if i == rungs - 1 and rungs > 1 else []
        ffmpeg_run("-i", str(ref), *scale, "-c:v", "libx264", "-crf", str(crf), "-preset", "veryfast", str(path))
        out.append(path)
    return ref, out


def _vmafx(*args: str) -> tuple[float, float, Any]:
    """Wall and CPU seconds (the child and its children) of one `vmafx run`, and its JSON."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vmafx_core", "run", *args, "--json", "--n-threads", "2"],
                          capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"vmafx run failed ({done.returncode}): {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grouped", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--rungs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", dest="json_file", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vmafx-bench-grouped-") as tmp:
        folder = Path(tmp)
        ref, rungs = _make(folder, args.seconds, args.size, args.rungs)
        handler = functools.partial(_Counting, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            ref_url = f"http://127.0.0.1:{server.server_address[1]}/{ref.name}"
            samples: dict[str, list[dict[str, float]]] = {"grouped": [], "separate": []}

            def grouped() -> list[dict[str, Any]]:
                _Counting.sent.clear()
                wall, cpu, results = _vmafx(ref_url, *map(str, rungs))
                samples["grouped"].append({"wall_s": wall, "cpu_s": cpu,
                                           "ref_bytes": _Counting.sent.get("/ref.mkv", 0)})
                return list(results)

            def separate() -> list[dict[str, Any]]:
                _Counting.sent.clear()
                wall = cpu = 0.0
                results = []
                for rung in rungs:
                    w, c, result = _vmafx(ref_url, str(rung))
                    wall, cpu = wall + w, cpu + c
                    results.append(result)
                samples["separate"].append({"wall_s": wall, "cpu_s": cpu,
                                            "ref_bytes": _Counting.sent.get("/ref.mkv", 0)})
                return results

            for round_ in range(args.rounds):
                order = (grouped, separate) if round_ % 2 == 0 else (separate, grouped)
                got = {f.__name__: f() for f in order}
                for g, s in zip(got["grouped"], got["separate"], strict=True):
                    difference = stats.first_difference(g, s)
                    if difference:
                        raise SystemExit(f"grouped {g['distorted']['uri']} {difference}")
                    if g["provenance"].get("group", {}).get("size") != len(rungs):
                        raise SystemExit("the grouped run did not score the rungs in one pass")
        finally:
            server.shutdown()
            server.server_close()
    medians = stats.medians(samples)
    print(f"{len(rungs)} rungs of a {args.size} {args.seconds:g}s reference, {args.rounds} rounds, "
          f"{os.cpu_count()} cores; median of each; scores equal to 1e-6")
    print(f"{'':<10} {'wall s':>8} {'CPU s':>8} {'ref MB read':>12}")
    for mode, m in medians.items():
        print(f"{mode:<10} {m['wall_s']:8.2f} {m['cpu_s']:8.2f} {m['ref_bytes'] / 1e6:12.2f}")
    g, s = medians["grouped"], medians["separate"]
    print(f"{'ratio':<10} {g['wall_s'] / s['wall_s']:8.3f} {g['cpu_s'] / s['cpu_s']:8.3f} "
          f"{g['ref_bytes'] / s['ref_bytes']:12.3f}")
    if args.json_file is not None:
        args.json_file.write_text(json.dumps({"args": vars(args) | {"json_file": str(args.json_file)},
                                              "samples": samples, "medians": medians}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
