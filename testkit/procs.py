"""Reading processes and mounts from /proc, for tests and benchmarks that check what vmafx started and stopped."""

from __future__ import annotations

import os
from pathlib import Path


def _stat(pid: int | str) -> tuple[str, str, int] | None:
    """(comm, state, parent pid) of `pid`; None once it has exited (it may between listing and reading)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
    return stat[stat.index("(") + 1:stat.rindex(")")], state, int(ppid)


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def children(pid: int) -> list[int]:
    """Direct children of `pid`, zombies included."""
    found = []
    for entry in _pids():
        stat = _stat(entry)
        if stat is not None and stat[2] == pid:
            found.append(entry)
    return found


def children_named(name: str, parent: int | None = None, *, zombies: bool = False) -> set[int]:
    """Processes called `name` (their comm) whose parent is `parent` (default: this process).

    Zombies are left out unless `zombies`: a check that a child was reaped wants them counted.
    """
    parent = os.getpid() if parent is None else parent
    found = set()
    for entry in _pids():
        stat = _stat(entry)
        if stat is not None and stat[0] == name and stat[2] == parent and (zombies or stat[1] != "Z"):
            found.add(entry)
    return found


def processes_mentioning(text: str, parent: int | None = None) -> set[int]:
    """Live processes whose command line contains `text` (only children of `parent`, when given)."""
    found = set()
    for entry in _pids():
        if entry == os.getpid():
            continue
        stat = _stat(entry)
        if stat is None or text.encode() not in cmdline(entry):
            continue
        if stat[1] != "Z" and (parent is None or stat[2] == parent):
            found.add(entry)
    return found


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (parents before children)."""
    parents: dict[int, list[int]] = {}
    for entry in _pids():
        stat = _stat(entry)
        if stat is not None:
            parents.setdefault(stat[2], []).append(entry)
    found: list[int] = []
    queue = [pid]
    while queue:
        kids = parents.get(queue.pop(0), [])
        found += kids
        queue += kids
    return found


def cmdline(pid: int) -> bytes:
    """argv of `pid`, NUL-separated; empty once it has exited (it may between listing and reading)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def state(pid: int) -> str:
    """The one-letter state of `pid` ("Z": a zombie), or "gone"."""
    stat = _stat(pid)
    return "gone" if stat is None else stat[1]


def alive(pid: int) -> bool:
    """Running, not a zombie."""
    return state(pid) not in ("Z", "gone")


def mount_point(pid: int) -> str | None:
    """The folder an `rclone mount` process serves, read from its argv."""
    argv = cmdline(pid).split(b"\0")
    if os.path.basename(argv[0]) == b"rclone" and len(argv) > 3 and argv[1] == b"mount":
        return argv[3].decode(errors="replace")
    return None


def mounts_under(prefix: str) -> list[str]:
    """Mount points in /proc/mounts that start with `prefix`."""
    with open("/proc/mounts", encoding="utf-8") as table:
        points = [line.split()[1].replace("\\040", " ") for line in table]
    return [p for p in points if p.startswith(prefix)]
