"""Both ends of throughput: one long pair in segments on two single-core workers, and short clips.

`python -m benchmarks.segments [--seconds S] [--size WxH] [--rounds R] [--skip long|short] [--json FILE]`

Long pair (default 120 s of 1920x1080 at 25 fps; x264 veryfast, keyframe every 50, the distorted
at CRF 32 and 1280x720, scaled back by the alignment chain): served by an HTTP server inside the
benchmark that honours Range requests and counts the bytes it sends, read as an object would be.
In alternating order per round:

- whole: `vmafx run --segments 1 --n-threads 1` pinned to one core (`taskset -c 0`): one
  single-core worker;
- split: `vmafx run --segments 2 --n-threads 2` pinned to two cores (`taskset -c 0,1`): two
  segments, one libvmaf thread each: two single-core workers of the local pool.

Every per-frame value of the split run is checked against the whole run's first (equal, every
metric, every frame). Printed: wall and CPU (the run's whole process tree, `RUSAGE_CHILDREN`)
medians and their paired ratios split / whole, bytes read by each, and a model of the wall time
with K workers from the measured parts: set-up (probes, index), the scoring time per frame, and
each segment's own overhead (ffmpeg start, seek, warm-up and look-ahead frames).

Short clips: `vmafx run` against the bare `ffmpeg -filter_complex <graph> -f null -` with the
graph vmafx ran (from its result), local files, 4 s of 1280x720 and 10 s of 1920x1080, rounds
alternating: wall and CPU ratios.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import stats
from testkit.media import ffmpeg_run
from vmafx_core.ffmpeg import find_ffmpeg


class _Ranged(http.server.SimpleHTTPRequestHandler):
    """A file server that answers `Range: bytes=a-b` (ffmpeg seeks with it) and counts what it sends."""

    sent: dict[str, int] = {}
    lock = threading.Lock()

    def send_head(self) -> Any:  # type: ignore[override]
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        size = path.stat().st_size
        start, end = 0, size - 1
        match = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))
        if match and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else size - 1
            else:
                start = max(0, size - int(match.group(2)))
            if start >= size:
                self.send_error(416)
                return None
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        fh = open(path, "rb")  # noqa: SIM115 - closed by the base class after copyfile
        fh.seek(start)
        self._left = end - start + 1
        return fh

    def copyfile(self, source: Any, outputfile: Any) -> None:  # type: ignore[override]
        total = 0
        left = getattr(self, "_left", None)
        while left is None or left > 0:
            chunk = source.read(1 << 16 if left is None else min(1 << 16, left))
            if not chunk:
                break
            try:
                outputfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            total += len(chunk)
            if left is not None:
                left -= len(chunk)
        with self.lock:
            self.sent[self.path] = self.sent.get(self.path, 0) + total

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str]) -> tuple[float, float, str]:
    """Wall and CPU seconds of one command and everything it started, and its stdout."""
    before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ... failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return wall, _children_cpu() - before, done.stdout


def _vmafx(cores: str, *args: str) -> tuple[float, float, dict[str, Any], list[dict[str, Any]]]:
    with tempfile.NamedTemporaryFile(suffix=".json") as frames:
        wall, cpu, out = _timed(["taskset", "-c", cores, sys.executable, "-m", "vmafx_core", "run", *args,
                                 "--json", "--no-progress", "--frames", frames.name])
        return wall, cpu, json.loads(out), json.loads(Path(frames.name).read_text())


def _make_pair(folder: Path, seconds: float, size: str, name: str, gop: int = 50) -> tuple[Path, Path]:
    width, height = (int(v) for v in size.split("x"))
    ref, dis = folder / f"{name}-ref.mp4", folder / f"{name}-dis.mp4"
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}", "-c:v", "libx264",
               "-preset", "veryfast", "-crf", "18", "-g", str(gop), "-movflags", "+faststart", str(ref))
    ffmpeg_run("-i", str(ref), "-vf", f"scale={width * 2 // 3 // 2 * 2}:{height * 2 // 3 // 2 * 2}", "-c:v",
               "libx264", "-preset", "veryfast", "-crf", "32", "-g", str(gop), str(dis))
    return ref, dis


def long_pair(folder: Path, seconds: float, size: str, rounds: int) -> dict[str, Any]:
    ref, dis = _make_pair(folder, seconds, size, "long")
    handler = functools.partial(_Ranged, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    samples: dict[str, list[dict[str, float]]] = {"whole": [], "split": []}
    kept: dict[str, Any] = {}
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = (f"{base}/{ref.name}", f"{base}/{dis.name}")

        def run(mode: str) -> list[dict[str, Any]]:
            _Ranged.sent.clear()
            if mode == "whole":
                wall, cpu, result, frames = _vmafx("0", *urls, "--segments", "1", "--n-threads", "1")
            else:
                wall, cpu, result, frames = _vmafx("0,1", *urls, "--segments", "2", "--n-threads", "2")
            samples[mode].append({"wall_s": wall, "cpu_s": cpu, "bytes": float(sum(_Ranged.sent.values()))})
            kept[mode] = {**result, "wall_s": wall}
            print(f"  {mode}: {wall:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
            return frames

        for round_ in range(rounds):
            order = ("whole", "split") if round_ % 2 == 0 else ("split", "whole")
            got = {mode: run(mode) for mode in order}
            if got["split"] != got["whole"]:
                raise SystemExit("the split run's per-frame values differ from the whole run's")
            if kept["split"]["provenance"]["segments"]["count"] != 2:
                raise SystemExit(f"the pair was not split: {kept['split']['provenance']['segments']}")
    finally:
        server.shutdown()
        server.server_close()
    sizes = ref.stat().st_size + dis.stat().st_size
    return {"samples": samples, "frames": kept["whole"]["frames_scored"], "object_bytes": sizes,
            "whole": kept["whole"], "split": kept["split"]}


def model(long: dict[str, Any]) -> dict[str, float]:
    """Wall time with K workers, from one split run's parts and the whole run's scoring time."""
    whole, split = long["whole"], long["split"]
    frames = long["frames"]
    per_frame_one = float(whole["provenance"]["score_seconds"]) / frames  # one core, one libvmaf thread
    parts = split["provenance"]["segments"]["parts"]
    overheads = [float(p["score_seconds"]) - (p["frames"][1] - p["frames"][0]) * per_frame_one for p in parts]
    setup = float(split["wall_s"]) - max(float(p["score_seconds"]) for p in parts)  # that run's own
    segment = max(0.0, statistics.fmean(overheads))
    return {"setup_s": setup, "per_frame_s": per_frame_one, "segment_overhead_s": segment,
            **{f"K={k}": setup + segment + frames / k * per_frame_one for k in (1, 2, 4, 8, 16)}}


def short_clips(folder: Path, rounds: int) -> dict[str, Any]:
    ffmpeg = find_ffmpeg()
    out: dict[str, Any] = {}
    for label, seconds, size in (("4 s 1280x720", 4, "1280x720"), ("10 s 1920x1080", 10, "1920x1080")):
        ref, dis = _make_pair(folder, seconds, size, label.split()[0] + "s")
        samples: dict[str, list[dict[str, float]]] = {"vmafx": [], "bare": []}
        log = folder / "bare.json"
        graph: str | None = None
        _vmafx("0,1", str(ref), str(dis))  # warm-up: caches of binary facts and entry points, page cache
        for round_ in range(rounds):
            for mode in (("vmafx", "bare") if round_ % 2 == 0 else ("bare", "vmafx")):
                if mode == "vmafx" or graph is None:
                    wall, cpu, result, _ = _vmafx("0,1", str(ref), str(dis))
                    graph = result["provenance"]["filter_graph"].replace("<log>", str(log))
                    if mode == "bare":
                        continue
                else:
                    wall, cpu, _ = _timed([ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
                                           "-i", str(ref), "-i", str(dis), "-filter_complex", graph,
                                           "-f", "null", "-"])
                samples[mode].append({"wall_s": wall, "cpu_s": cpu})
        n = min(len(samples["vmafx"]), len(samples["bare"]))
        walls = stats.paired_ratios([s["wall_s"] for s in samples["vmafx"][:n]],
                                    [s["wall_s"] for s in samples["bare"][:n]])
        cpus = stats.paired_ratios([s["cpu_s"] for s in samples["vmafx"][:n]],
                                   [s["cpu_s"] for s in samples["bare"][:n]])
        out[label] = {"samples": samples, "wall_ratio": stats.summary(walls), "cpu_ratio": stats.summary(cpus),
                      "extra_s": statistics.median(
                          a["wall_s"] - b["wall_s"] for a, b in zip(samples["vmafx"][:n], samples["bare"][:n],
                                                                    strict=True))}
    return out


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.segments", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120, help="length of the long pair (default 120)")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the long pair (short clips: 3x)")
    parser.add_argument("--skip", choices=("long", "short"), action="append", default=[])
    parser.add_argument("--json", dest="json_file", type=Path)
    args = parser.parse_args(argv)
    # SIGTERM as Ctrl-C: the temp folder, the server and the running child are cleaned up either way
    signal.signal(signal.SIGTERM, _interrupted)
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin the workers to cores")
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="vmafx-bench-segments-") as tmp:
        folder = Path(tmp)
        if "long" not in args.skip:
            print(f"long pair: {args.size}, {args.seconds:g} s at 25 fps, {args.rounds} rounds", file=sys.stderr)
            long = long_pair(folder, args.seconds, args.size, args.rounds)
            m = stats.medians(long["samples"])
            w, s = m["whole"], m["split"]
            modelled = model(long)
            report["long"] = {"samples": long["samples"], "medians": m, "model": modelled,
                              "whole_score_seconds": long["whole"]["provenance"]["score_seconds"],
                              "split_wall_s": long["split"]["wall_s"],
                              "segments": long["split"]["provenance"]["segments"], "object_bytes": long["object_bytes"]}
            print(f"\nlong pair {args.size} {args.seconds:g} s ({long['frames']} frames), {args.rounds} rounds; "
                  "per-frame values of both modes equal")
            print(f"{'':<34} {'wall s':>8} {'CPU s':>8} {'MB read':>9}")
            print(f"{'whole, 1 single-core worker':<34} {w['wall_s']:8.1f} {w['cpu_s']:8.1f} {w['bytes'] / 1e6:9.1f}")
            print(f"{'2 segments, 2 single-core workers':<34} {s['wall_s']:8.1f} {s['cpu_s']:8.1f} "
                  f"{s['bytes'] / 1e6:9.1f}")
            walls = stats.paired_ratios([x["wall_s"] for x in long["samples"]["split"]],
                                        [x["wall_s"] for x in long["samples"]["whole"]])
            cpus = stats.paired_ratios([x["cpu_s"] for x in long["samples"]["split"]],
                                       [x["cpu_s"] for x in long["samples"]["whole"]])
            print(f"{'ratio split / whole':<34} {stats.spread(stats.summary(walls)):>8} "
                  f"{stats.spread(stats.summary(cpus))}  bytes {s['bytes'] / w['bytes']:.3f} "
                  f"(objects {long['object_bytes'] / 1e6:.1f} MB)")
            print(f"model: set-up {modelled['setup_s']:.2f} s, {modelled['per_frame_s'] * 1000:.1f} ms a frame on "
                  f"one core, {modelled['segment_overhead_s']:.2f} s a segment; wall with K workers: "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in modelled.items() if k.startswith("K=")))
        if "short" not in args.skip:
            print("short clips: vmafx run / bare ffmpeg", file=sys.stderr)
            short = short_clips(folder, max(3, 3 * args.rounds))
            report["short"] = short
            print(f"\n{'short clip, local files':<34} {'wall ratio':>22} {'CPU ratio':>22} {'extra s':>8}")
            for label, row in short.items():
                print(f"{label:<34} {stats.spread(row['wall_ratio']):>22} {stats.spread(row['cpu_ratio']):>22} "
                      f"{row['extra_s']:8.3f}")
    if args.json_file is not None:
        args.json_file.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
