"""Peak memory of the scoring ffmpeg per distorted added to one pass (what bounds a batch's groups).

`python -m benchmarks.group_memory [--sizes 1280x720,1920x1080] [--counts 1,2,4,8] [--seconds S]`
makes, per size, a reference (testsrc2, x264) and the largest count of x264 rungs of it at the same
size (the worst case: no rung is smaller than the reference), then runs `vmafx run REF D1..Dn
--n-threads 2` for each count and samples the scoring ffmpeg's VmHWM (peak RSS) from /proc. It
prints the peak per count, and the cost of one more distorted: the least-squares slope of peak
against count, which `vmafx_core.batch.grouping` uses as its default bound.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from testkit.watch import Watcher
from vmafx_core.ffmpeg import find_ffmpeg


def _make(folder: Path, size: str, seconds: float, rungs: int) -> tuple[Path, list[Path]]:
    ffmpeg = find_ffmpeg()
    common = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y"]
    ref = folder / f"ref-{size}.mkv"
    subprocess.run([*common, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
                    "-c:v", "libx264", "-crf", "14", "-preset", "veryfast", str(ref)], check=True)
    out = []
    for i in range(rungs):
        path = folder / f"rung-{size}-{i}.mkv"
        subprocess.run([*common, "-i", str(ref), "-c:v", "libx264", "-crf", str(24 + i), "-preset", "ultrafast",
                        str(path)], check=True)
        out.append(path)
    return ref, out


def peak_ffmpeg_kib(ref: Path, rungs: list[Path], threads: int) -> int:
    """VmHWM of the scoring ffmpeg (the one holding every input) of one `vmafx run REF D1..Dn`."""
    argv = [sys.executable, "-m", "vmafx_core", "run", str(ref), *map(str, rungs), "--json",
            "--n-threads", str(threads)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    watcher = Watcher(proc.pid)
    out, err = proc.communicate()
    watcher.stop()
    if proc.returncode != 0:
        raise SystemExit(f"vmafx run failed ({proc.returncode}): {err.decode().strip()}")
    results = json.loads(out)
    if len(rungs) > 1 and any(r["provenance"].get("group", {}).get("size") != len(rungs) for r in results):
        raise SystemExit("the distorted were not scored in one pass")
    scoring = [pid for pid in watcher.named(b"ffmpeg") if watcher.cmdlines[pid].count(b"-i\0") == len(rungs) + 1
               and b"libvmaf" in watcher.cmdlines[pid]]
    if not scoring:
        raise SystemExit("the scoring ffmpeg was not seen")
    return max(watcher.peak_rss_kib.get(pid, 0) for pid in scoring)


def slope(points: list[tuple[int, float]]) -> float:
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.group_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    parser.add_argument("--counts", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    print(f"peak RSS of the scoring ffmpeg (MiB), --n-threads {args.threads}, x264 rungs at the reference's size")
    print(f"{'size':<10} " + " ".join(f"{'n=' + str(c):>8}" for c in counts) + f" {'per added':>10} {'base':>8}")
    with tempfile.TemporaryDirectory(prefix="vmafx-bench-groupmem-") as tmp:
        for size in args.sizes.split(","):
            ref, rungs = _make(Path(tmp), size, args.seconds, max(counts))
            peaks = [(c, peak_ffmpeg_kib(ref, rungs[:c], args.threads) / 1024) for c in counts]
            per = slope(peaks)
            base = peaks[0][1] - per * peaks[0][0]
            print(f"{size:<10} " + " ".join(f"{p:8.0f}" for _, p in peaks) + f" {per:10.1f} {base:8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
