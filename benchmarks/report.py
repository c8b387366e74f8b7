"""Turning the raw samples into rows against the targets, a markdown table, and the machine note."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.stats import paired_ratios, spread, summary

#: the targets of issue 6
OVERHEAD_MAX = 1.03
HTTP_MAX = 1.10
STARTUP_MAX_MS = 100.0
FLAT_MAX_GROWTH = 0.10  #: peak RSS at the largest size at most 10 % above the smallest
#: upper bound of libvmaf's score log on disk (measured: ~40 KiB + ~650 B per frame, in 4 KiB pages)
LOG_FIXED = 64 * 1024
LOG_PER_FRAME = 1024

MIB = 1024 * 1024


@dataclass
class Row:
    """One line of the table."""

    item: str
    what: str
    result: str
    target: str
    status: str  #: "PASS", "MISS ...", "info" or "skipped: why"
    value: float | None = None


def machine() -> dict[str, Any]:
    """nproc, RAM, CPU model and kernel of this machine."""
    info: dict[str, Any] = {"nproc": os.cpu_count(), "kernel": platform.release(),
                            "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / MIB, 1)
    except OSError:
        pass
    return info


def machine_note(data: dict[str, Any]) -> str:
    m, v = data["machine"], data.get("versions", {})
    load = data.get("load") or [0.0]
    nproc = m.get("nproc") or 1
    shares = [r.get("other_cpu_s", 0.0) / (r["wall_s"] * nproc) for runs in data.get("runs", {}).values()
              for r in runs if r.get("wall_s")]
    other = summary(shares)
    repeated = sum(1 for r in data.get("rounds", []) if r.get("disturbed"))
    noise = (f"; other processes used {other['median'] * 100:.0f} % of the CPU during the timed runs kept "
             f"(median, max {other['max'] * 100:.0f} %); {repeated} disturbed rounds repeated") if other["n"] else ""
    return (f"{m.get('nproc')} cores ({m.get('cpu', '?')}), {m.get('ram_gib', '?')} GiB RAM, "
            f"Linux {m.get('kernel')}; ffmpeg {v.get('ffmpeg', '?')}, libvmaf {v.get('libvmaf', '?')}, "
            f"rclone {v.get('rclone', '?')}; S3 server {v.get('s3_server', '?')} in a container on loopback; "
            f"1-min load average during the run {min(load):.1f}–{max(load):.1f}{noise}")


def _miss(value: float, limit: float, unit: str = "", fmt: str = "{:.3f}") -> str:
    """'MISS by <over><unit> (<over in % of the limit>)'."""
    over = value - limit
    return f"MISS by {fmt.format(over)}{unit} ({over / limit * 100:.0f} % over)"


def _walls(runs: Sequence[dict[str, Any]]) -> list[float]:
    return [r["wall_s"] for r in runs]


def _size(n: float) -> str:
    if n >= 1024 * MIB:
        return f"{n / 1024 / MIB:.1f} GiB"
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n:.0f} B"


def rows(data: dict[str, Any]) -> list[Row]:
    """Every row of the table, computed from the raw samples in `data`."""
    out: list[Row] = []
    clip = data.get("clip", {})
    label = f"{clip.get('size', '1080p')}, {clip.get('frames', '?')} frames"
    runs = data.get("runs", {})
    local = runs.get("local", [])

    # 1. framework overhead
    if runs.get("bare") and local:
        ratio = summary(paired_ratios(_walls(local), _walls(runs["bare"])))
        extra = summary([a - b for a, b in zip(_walls(local), _walls(runs["bare"]), strict=True)])
        cpu = summary(paired_ratios([r["cpu_s"] for r in local], [r["cpu_s"] for r in runs["bare"]]))
        med = ratio["median"]
        out.append(Row("1", f"framework overhead: `vmafx run` / bare ffmpeg libvmaf, local files ({label})",
                       f"{spread(ratio)}×; {extra['median']:+.2f} s per job; CPU time {cpu['median']:.3f}×",
                       f"≤ {OVERHEAD_MAX:.2f}", "PASS" if med <= OVERHEAD_MAX else _miss(med, OVERHEAD_MAX), med))

        out += _overhead_breakdown(runs["bare"], local)

    # 2. streaming overhead
    for key, name in (("http", "rclone-http"), ("mount", "rclone-mount")):
        item = "2a" if key == "http" else "2b"
        if runs.get(key) and local:
            ratio = summary(paired_ratios(_walls(runs[key]), _walls(local)))
            extra = summary([a - b for a, b in zip(_walls(runs[key]), _walls(local), strict=True)])
            cpu = summary(paired_ratios([r["cpu_s"] for r in runs[key]], [r["cpu_s"] for r in local]))
            s3 = summary([r.get("s3_cpu_s", 0.0) for r in runs[key]])
            prep = summary([r["timings"]["prepare_s"] for r in runs[key] if r.get("timings")])
            prep_local = summary([r["timings"]["prepare_s"] for r in local if r.get("timings")])
            prepared = (f"; storage ready in {prep['median']:.3f} s (local {prep_local['median']:.3f} s)"
                        if prep["n"] and prep_local["n"] else "")
            med = ratio["median"]
            status = "PASS" if med <= HTTP_MAX else _miss(med, HTTP_MAX)
            out.append(Row(item, f"streaming overhead: {name} from S3 / local file ({label})",
                           f"{spread(ratio)}×; {extra['median']:+.2f} s per job; CPU time {cpu['median']:.3f}× "
                           f"(+ S3 server {s3['median']:.2f} s){prepared}", f"≤ {HTTP_MAX:.2f}",
                           status if key == "http" else f"info ({status.split(' ')[0]} against {HTTP_MAX:.2f})", med))
        elif key in data.get("skipped", {}):
            out.append(Row(item, f"streaming overhead: {name} / local file", "—", f"≤ {HTTP_MAX:.2f}",
                           f"skipped: {data['skipped'][key]}"))

    # 3. materialise first vs streaming
    if runs.get("materialise") and runs.get("http"):
        ratio = summary(paired_ratios(_walls(runs["materialise"]), _walls(runs["http"])))
        wrote = summary([r["written_bytes"] for r in runs["materialise"]])
        streamed = summary([r["written_bytes"] for r in runs["http"]])
        out.append(Row("3a", f"materialise (`rclone copy` to disk, then score) / stream (rclone-http) ({label})",
                       f"{spread(ratio)}×; written {_size(wrote['median'])} vs {_size(streamed['median'])}",
                       "—", "info", ratio["median"]))
    big = data.get("materialise_raw")
    if big and big.get("materialise") and big.get("stream"):
        ratio = summary(paired_ratios(_walls(big["materialise"]), _walls(big["stream"])))
        wrote = summary([r["written_bytes"] for r in big["materialise"]])
        streamed = summary([r["written_bytes"] for r in big["stream"]])
        cpu_stream = summary([r["cpu_s"] + r.get("s3_cpu_s", 0.0) for r in big["stream"]])
        cpu_copy = summary([r["cpu_s"] + r.get("s3_cpu_s", 0.0) for r in big["materialise"]])
        copy_s = summary([r.get("timings", {}).get("copy_s", 0.0) for r in big["materialise"]])
        out.append(Row("3b", f"materialise / stream (rclone-http), raw 720p reference and distorted objects of "
                             f"{_size(big['size_bytes'])} each ({big['frames']} frames)",
                       f"{spread(ratio)}×; written {_size(wrote['median'])} vs {_size(streamed['median'])}; "
                       f"copy {copy_s['median']:.1f} s; CPU incl. S3 server {cpu_copy['median']:.1f} s vs "
                       f"{cpu_stream['median']:.1f} s", "—", "info", ratio["median"]))

    # 4. start-up
    for mode, values in data.get("startup", {}).items():
        s = summary(values.get("startup_ms", []))
        if not s["n"]:
            continue
        teardown = summary(values.get("teardown_ms", []))
        worst = s["p90"]
        status = "PASS" if worst < STARTUP_MAX_MS else _miss(worst, STARTUP_MAX_MS, " ms", "{:.1f}")
        out.append(Row("4", f"start-up to first byte of both inputs: {mode} (n={s['n']})",
                       f"median {s['median']:.1f} ms, p90 {s['p90']:.1f}, max {s['max']:.1f}; "
                       f"teardown {teardown.get('median', 0):.1f} ms",
                       f"p90 < {STARTUP_MAX_MS:.0f} ms", status, s["median"]))
    for mode, why in data.get("skipped", {}).items():
        if mode.startswith("startup-"):
            out.append(Row("4", f"start-up: {mode[8:]}", "—", f"p90 < {STARTUP_MAX_MS:.0f} ms", f"skipped: {why}"))

    # 5. growth with size
    growth = data.get("growth", {})
    for mode, entries in growth.items():
        if not entries:
            continue
        peaks = [(e["size_bytes"], sum(e["sample"]["peak_rss_kib"].values()) * 1024) for e in entries]
        smallest, largest = peaks[0][1], peaks[-1][1]
        grew = (largest - smallest) / smallest if smallest else 0.0
        sizes = " / ".join(_size(s) for s, _ in peaks)
        parts = {name: " → ".join(_size(e["sample"]["peak_rss_kib"].get(name, 0) * 1024) for e in entries)
                 for name in ("rclone", "ffmpeg")}
        limit = f"limit +{FLAT_MAX_GROWTH * 100:.0f} %"
        status = "PASS" if grew <= FLAT_MAX_GROWTH else f"MISS: {grew * 100:+.1f} % ({limit})"
        out.append(Row("5", f"peak RSS rclone + ffmpeg, {mode}, raw 720p {sizes}",
                       f"{' → '.join(_size(p) for _, p in peaks)} ({grew * 100:+.1f} %): rclone {parts['rclone']}; "
                       f"ffmpeg {parts['ffmpeg']}", f"flat (≤ +{FLAT_MAX_GROWTH * 100:.0f} %)", status, grew))
    out += _zero_writes(data)

    # 6. throughput
    tp = data.get("throughput", {})
    if tp:
        cells = []
        for threads, values in sorted(tp.items(), key=lambda kv: int(kv[0])):
            s = summary(values)
            cells.append(f"n_threads={threads}: {spread(s, '{:.1f}')} fps")
        best = max(tp.items(), key=lambda kv: summary(kv[1])["median"])
        out.append(Row("6", f"scoring throughput, local files ({label})", "; ".join(cells), "—",
                       f"info (best: n_threads={best[0]})", summary(best[1])["median"]))
    return out


def _overhead_breakdown(bare: Sequence[dict[str, Any]], local: Sequence[dict[str, Any]]) -> list[Row]:
    """Where the seconds `vmafx run` adds over bare ffmpeg go, from vmafx's own timings, round by round.

    wall - vmafx's total: interpreter start, imports, plugin loading, CLI and output; vmafx's
    total - its ffmpeg run: storage prepare, `ffmpeg -version`/`-filters`, header probes, pooling;
    its ffmpeg run - bare ffmpeg: `-loglevel verbose`, `-progress`, stderr parsing, exit polling.
    """
    pairs = [(b, r) for b, r in zip(bare, local, strict=False) if r.get("timings")]
    if not pairs:
        return []
    start = summary([r["wall_s"] - r["timings"]["vmafx_total_s"] for _, r in pairs])
    setup = summary([r["timings"]["vmafx_total_s"] - r["timings"]["ffmpeg_s"] for _, r in pairs])
    run = summary([r["timings"]["ffmpeg_s"] - b["wall_s"] for b, r in pairs])
    return [Row("1b", "where the extra time of `vmafx run` goes (local files)",
                f"process start, imports, plugins {start['median']:.3f} s; job set-up, ffmpeg checks and probes "
                f"{setup['median']:.3f} s; the ffmpeg run itself {run['median']:+.3f} s", "—", "info",
                start["median"] + setup["median"] + run["median"])]


def _zero_writes(data: dict[str, Any]) -> list[Row]:
    """Media bytes written to disk by streaming jobs.

    A job writes one file by design: libvmaf's per-frame score log, in vmafx's temp folder (then
    deleted). Each streaming job is held to the score log's bound, LOG_FIXED + LOG_PER_FRAME x
    frames (a local-file job writes the same log: its bytes are shown beside); anything above it,
    plus whatever rclone (the only part with a cache) wrote, counts as media.
    """
    runs = data.get("runs", {})
    frames = data.get("clip", {}).get("frames", 0)
    checks: list[tuple[str, int, float]] = []  #: (job, bytes written, bytes allowed)
    for key in ("http", "mount"):
        checks += [(f"{key} 1080p", r["written_bytes"], LOG_FIXED + LOG_PER_FRAME * frames) for r in runs.get(key, [])]
    rclone = 0
    for mode, entries in data.get("growth", {}).items():
        for e in entries:
            checks.append((f"{mode} {_size(e['size_bytes'])}", e["sample"]["written_bytes"],
                           LOG_FIXED + LOG_PER_FRAME * e["frames"]))
            rclone = max(rclone, e["sample"].get("written_by", {}).get("rclone", 0))
    if not checks:
        return []
    worst = max(checks, key=lambda c: c[1] - c[2])
    media = max(0.0, worst[1] - worst[2]) + rclone
    status = "PASS" if media == 0 else f"MISS by {_size(media)} (worst: {worst[0]})"
    twin = summary([r["written_bytes"] for r in runs.get("local", [])])
    streamed = summary([c[1] for c in checks if c[0].endswith("1080p")])
    biggest = max(data.get("growth", {}).get("rclone-http", []) or [{}], key=lambda e: e.get("size_bytes", 0))
    note = (f"; {_size(biggest['sample']['written_bytes'])} for {biggest['frames']} frames of "
            f"{_size(biggest['size_bytes'])}" if biggest.get("sample") else "")
    return [Row("5", f"media bytes written to disk by streaming jobs ({len(checks)} http/mount jobs)",
                f"{_size(media)}; rclone wrote {_size(rclone)}; the jobs wrote only libvmaf's score log "
                f"(1080p: {_size(streamed.get('median', 0))}, local files {_size(twin.get('median', 0))}{note})",
                "0", status, media)]


def table(rows_: Sequence[Row]) -> str:
    """The rows as a markdown table."""
    lines = ["| # | measurement | result: median (min–max) | target | status |", "|---|---|---|---|---|"]
    for r in rows_:
        lines.append(f"| {r.item} | {r.what} | {r.result} | {r.target} | {r.status} |")
    return "\n".join(lines)


def rows_json(rows_: Sequence[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows_]
