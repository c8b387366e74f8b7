"""Running one measured command: wall time, CPU time, bytes written and peak memory of its tree.

Bytes written and CPU time come from `wait4()`'s rusage, which the kernel accumulates over every
descendant that was reaped: `ru_oublock` is the tree's `write_bytes` of /proc/PID/io in 512-byte
units, exact, including what a child wrote just before it exited (sampling /proc would miss that).
Peak memory per program comes from sampling the children's VmHWM (testkit/watch.py).

If the benchmark is interrupted, the running command is stopped (vmafx then stops its own servers
and mounts and exits 130); whatever of its tree outlives a grace period is killed by pid, and any
rclone FUSE mount it left is detached.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testkit.procs import descendants, mount_point
from testkit.watch import Watcher

CLK_TCK = os.sysconf("SC_CLK_TCK")


def system_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields)
    return total - idle, total


def process_cpu_s(pid: int | None) -> float:
    """User + system seconds of one process (all its threads); 0 when it is gone or unknown."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def other_share(sample: dict[str, Any], nproc: int) -> float:
    """Share of the machine's CPU capacity that other processes used while `sample` ran."""
    wall = float(sample.get("wall_s") or 0.0)
    return float(sample.get("other_cpu_s", 0.0)) / (wall * nproc) if wall > 0 else 0.0


def busy_fraction(seconds: float, exclude_pid: int | None = None) -> float:
    """Share of the machine's CPU capacity in use over `seconds`, less what `exclude_pid` used."""
    busy0, total0 = system_cpu()
    own0 = process_cpu_s(exclude_pid)
    time.sleep(seconds)
    busy1, total1 = system_cpu()
    own1 = process_cpu_s(exclude_pid)
    if total1 <= total0:
        return 0.0
    return max(0.0, (busy1 - busy0) / CLK_TCK - (own1 - own0)) / ((total1 - total0) / CLK_TCK)


class Interrupted(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C so every cleanup runs."""


class CommandFailed(RuntimeError):
    """A measured command exited non-zero."""


@dataclass
class Sample:
    """One measured run of a command."""

    wall_s: float
    cpu_s: float  #: user + system time of the whole tree
    written_bytes: int  #: write_bytes of the whole tree (exact)
    returncode: int
    #: CPU seconds the S3 server container used meanwhile (it shares this machine's cores)
    s3_cpu_s: float = 0.0
    #: CPU seconds used by everything else on the machine meanwhile: other users' load, noise
    other_cpu_s: float = 0.0
    stdout: str = field(repr=False, default="")
    stderr: str = field(repr=False, default="")
    #: peak RSS (VmHWM) in KiB per child program, when watched: rclone summed over its
    #: processes, ffmpeg the largest of its processes (probes run before the scorer, not with it)
    peak_rss_kib: dict[str, int] = field(default_factory=dict)
    #: bytes written per child program while it ran, sampled (misses a child's last ~20 ms)
    written_by: dict[str, int] = field(default_factory=dict)
    #: every watched child: program, subcommand, peak RSS and bytes written
    processes: list[dict[str, Any]] = field(default_factory=list)
    #: vmafx's own timings of the job (from its result), when the command was `vmafx run`
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"wall_s": round(self.wall_s, 4), "cpu_s": round(self.cpu_s, 4), "written_bytes": self.written_bytes,
                "s3_cpu_s": round(self.s3_cpu_s, 3), "other_cpu_s": round(self.other_cpu_s, 3),
                "peak_rss_kib": self.peak_rss_kib, "written_by": self.written_by, "processes": self.processes,
                "timings": self.timings}


def stop_tree(proc: subprocess.Popen[bytes], signalled: bool = False, grace: float = 20.0) -> None:
    """Stop `proc` and everything it started; kill by pid whatever outlives `grace` seconds.

    `signalled`: a Ctrl-C at the terminal already reached `proc` (same process group), so it gets
    3 s to stop on its own before SIGTERM: a second signal could cut vmafx's own cleanup short.
    vmafx stops its servers and mounts on SIGTERM as on Ctrl-C; a mount left anyway is detached.
    """
    tree = descendants(proc.pid)
    mounts = [m for m in (mount_point(p) for p in tree) if m]
    try:
        if signalled:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(3.0)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(grace)
    except subprocess.TimeoutExpired:
        tree = descendants(proc.pid) or tree
        proc.kill()
        proc.wait()
    except (ProcessLookupError, ChildProcessError):
        pass
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for mount in mounts:
        if os.path.ismount(mount):
            subprocess.run(["fusermount3", "-uz", mount], capture_output=True, check=False)


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, watch: bool = False,
        timeout: float = 900.0, check: bool = True, s3_pid: int | None = None) -> Sample:
    """Run `argv` to the end and measure it; CommandFailed on a non-zero exit when `check`.

    `s3_pid` is the S3 server's process: its CPU use is recorded apart from other processes'.
    """
    busy0, _ = system_cpu()
    s3_0 = process_cpu_s(s3_pid)
    started = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(env) if env is not None else None)
    watcher = Watcher(proc.pid) if watch else None
    out: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda n=name, s=stream: out.__setitem__(n, s.read()), daemon=True)
               for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for reader in readers:
        reader.start()
    try:
        _, status, usage = _wait4(proc, started + timeout)
    except BaseException as exc:
        stop_tree(proc, signalled=isinstance(exc, KeyboardInterrupt))
        raise
    finally:
        if watcher is not None:
            watcher.stop()
    wall = time.perf_counter() - started
    busy1, _ = system_cpu()
    s3_cpu = process_cpu_s(s3_pid) - s3_0
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join(5)
    sample = Sample(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime, written_bytes=usage.ru_oublock * 512,
                    returncode=proc.returncode, s3_cpu_s=s3_cpu,
                    other_cpu_s=max(0.0, (busy1 - busy0) / CLK_TCK - usage.ru_utime - usage.ru_stime - s3_cpu),
                    stdout=out.get("stdout", b"").decode(errors="replace"),
                    stderr=out.get("stderr", b"").decode(errors="replace"))
    if watcher is not None:
        _attribute(sample, watcher)
    if check and proc.returncode != 0:
        tail = "\n".join(sample.stderr.strip().splitlines()[-8:])
        raise CommandFailed(f"{' '.join(argv[:3])} ... exited {proc.returncode}:\n{tail}")
    return sample


def _attribute(sample: Sample, watcher: Watcher) -> None:
    """Peak RSS and bytes written per child program, from the watcher's samples.

    rclone: the `serve`/`mount` processes that run alongside ffmpeg, summed (a short `rclone version`
    check runs before them and is left out); ffmpeg: the largest of its processes (the scorer; the
    header probes run before it). Every child is also listed in `sample.processes`.
    """
    for pid, cmdline in sorted(watcher.cmdlines.items()):
        argv = cmdline.split(b"\0")
        sample.processes.append({"program": os.path.basename(argv[0]).decode(errors="replace"),
                                 "subcommand": argv[1].decode(errors="replace") if len(argv) > 1 else "",
                                 "peak_rss_kib": watcher.peak_rss_kib.get(pid, 0),
                                 "written_bytes": watcher.write_bytes.get(pid, 0)})
    rclone = [p for p in sample.processes if p["program"] == "rclone"]
    servers = [p for p in rclone if p["subcommand"] in ("serve", "mount")]
    ffmpeg = [p for p in sample.processes if str(p["program"]).startswith("ffmpeg")]
    if servers:
        sample.peak_rss_kib["rclone"] = sum(int(p["peak_rss_kib"]) for p in servers)
    if ffmpeg:
        sample.peak_rss_kib["ffmpeg"] = max(int(p["peak_rss_kib"]) for p in ffmpeg)
    sample.written_by["rclone"] = sum(int(p["written_bytes"]) for p in rclone)
    sample.written_by["ffmpeg"] = sum(int(p["written_bytes"]) for p in ffmpeg)


def _wait4(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int, int, resource.struct_rusage]:
    """`os.wait4` on `proc`; a timer kills it at `deadline`. Ctrl-C and SIGTERM still interrupt the wait."""
    timer = threading.Timer(max(0.0, deadline - time.perf_counter()), proc.kill)
    timer.daemon = True
    timer.start()
    try:
        return os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
