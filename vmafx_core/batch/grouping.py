"""Which jobs of a batch are scored together, and how many at once.

Jobs that differ only in their distorted (and id and labels) share a reference and every setting, which is
what `group.run_group` needs to score them in one ffmpeg pass that reads and decodes the reference
once. The batch finds them by the job's data as given, without its `id` and `distorted`: jobs
spelled differently but equal once parsed are not grouped (no harm, only no saving). Encode and
ladder jobs, jobs of a scorer without a shared pass (`Scorer.score_shared`), and jobs without a
distorted are never grouped.

One pass holds one libvmaf instance and one decoder per distorted, so its memory grows with the
group: measured here (`python -m benchmarks.group_memory`, ffmpeg n9.0.2, libvmaf 86da14d,
`--n-threads 2`, x264 rungs at the reference's size, the worst case) the scoring ffmpeg's peak RSS
was 341, 554, 1044 and 1922 MiB with 1, 2, 4 and 8 distorted at 1080p (about 114 MiB plus 227 MiB
per distorted), and 173, 278, 507 and 851 MiB at 720p (76 plus 97 per distorted). The default group
size is what fits in the memory one job slot may use (the memory available to the batch, or a Dask
worker's memory limit, shared by its slots) at the 1080p figure, at most `MAX_DEFAULT_GROUP`: the
libvmaf instances of one pass take turns on each frame, so a larger group saves no more CPU, while a
pass that fails costs more to redo. `--group-size N` sets it; `1` scores every job on its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vmafx_core.batch.jobsfile import Entry
from vmafx_core.job import DEFAULT_SCORER

#: the scoring ffmpeg's peak RSS (MiB) at 1080p, less the per-distorted slope below (measured: 114)
BASE_MIB = 120
#: what each distorted at 1080p added to that peak (MiB; measured: 227, 97 at 720p)
PER_DISTORTED_MIB = 230
#: the default never groups more than this many jobs in one pass
MAX_DEFAULT_GROUP = 8


def group_key(data: Mapping[str, Any] | None, shares: Callable[[str], bool] = lambda name: True) -> str | None:
    """What jobs scored together must share (their data without id, distorted and labels), or None: alone.

    `shares(scorer_name)` says whether that scorer scores several distorted in one pass.
    """
    if not isinstance(data, Mapping) or data.get("encode") is not None or data.get("ladder"):
        return None
    distorted = data.get("distorted")
    if not isinstance(distorted, (str, Mapping)):
        return None
    scorer = data.get("scorer", {})
    if isinstance(scorer, Mapping) and not shares(str(scorer.get("name", DEFAULT_SCORER))):
        return None
    rest = {k: v for k, v in data.items() if k not in ("id", "distorted", "labels")}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def units(entries: Sequence[Entry], group_size: int,
          shares: Callable[[str], bool] = lambda name: True) -> list[list[Entry]]:
    """The jobs as units of work: each job alone, or jobs of one reference in groups of <= group_size.

    A reference's jobs are split into groups of near-equal size (10 jobs at 8 give 5 and 5, not 8
    and 2), in the jobs file's order; units come in the order of their first job. `shares` is
    `group_key`'s.
    """
    if group_size <= 1:
        return [[e] for e in entries]
    by_key: dict[str, list[Entry]] = {}
    order: list[tuple[str | None, Entry]] = []
    for entry in entries:
        key = group_key(entry.data, shares)
        if key is not None and key in by_key:
            by_key[key].append(entry)
            continue
        if key is not None:
            by_key[key] = [entry]
        order.append((key, entry))
    out: list[list[Entry]] = []
    for key, entry in order:
        if key is None:
            out.append([entry])
            continue
        members = by_key[key]
        count = -(-len(members) // group_size)
        size, extra = divmod(len(members), count)
        start = 0
        for i in range(count):
            end = start + size + (1 if i < extra else 0)
            out.append(members[start:end])
            start = end
    return out


def available_memory() -> int | None:
    """Bytes this process may still use: the cgroup's limit less its usage, or MemAvailable."""
    candidates: list[int] = []
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        if limit != "max":
            used = int(open("/sys/fs/cgroup/memory.current").read().strip())
            candidates.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    return min(candidates) if candidates else None


def task_limit() -> int | None:
    """Threads (tasks) this process may still start, when the cgroup or RLIMIT_NPROC caps them."""
    import resource

    caps: list[int] = []
    try:
        limit = open("/sys/fs/cgroup/pids.max").read().strip()
        if limit != "max":
            caps.append(int(limit) - int(open("/sys/fs/cgroup/pids.current").read().strip()))
    except (OSError, ValueError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if soft != resource.RLIM_INFINITY and os.getuid() != 0:
        caps.append(soft)
    return min(caps) if caps else None


def default_group_size(slots: int, threads_per_job: int, memory: int | None, tasks: int | None = None) -> int:
    """The largest group one of `slots` job slots can score in one pass, given `memory` bytes for all.

    Memory: a slot's share must hold the pass at the 1080p figure. Threads: each distorted adds a
    decoder (up to its frame threads, one per core up to 16) and a libvmaf instance with
    `threads_per_job` threads; `tasks`, when capped, must hold all slots' passes.
    """
    size = MAX_DEFAULT_GROUP
    if memory is not None:
        share_mib = memory / max(slots, 1) / 2**20
        size = min(size, int((share_mib - BASE_MIB) // PER_DISTORTED_MIB))
    if tasks is not None:
        per_distorted = threads_per_job + min(os.cpu_count() or 1, 16) + 2
        size = min(size, tasks // max(slots, 1) // per_distorted)
    return max(1, size)
