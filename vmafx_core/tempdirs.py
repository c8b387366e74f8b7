"""Private temp folders that name their owner, so any later run can remove what a killed one left.

A folder is `vmafx-<kind>-<pid>-<start>-<pidns>-<random>` in the system temp dir, mode 0700: the
owner's pid, its start time (so a reused pid is not taken for the owner) and its pid namespace (in
another namespace the pid means nothing, so the folder is left alone: it may belong to a live job
in another container sharing the temp dir). Its owner removes it when done; if the owner was
SIGKILLed, `sweep()`, which every vmafx run and `vmafx doctor` call, removes it once the owner is
surely gone. A folder that is (or holds) a mount point is never removed here: the storage backend
that mounted it unmounts it first (`StorageBackend.clean_stale`).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
import threading

import attrs

from vmafx_core import interrupts

log = logging.getLogger(__name__)

PREFIX = "vmafx-"
_NAME = re.compile(r"^vmafx-(?P<kind>[a-z][a-z-]*?)-(?P<pid>\d+)-(?:(?P<start>\d+)-(?P<pidns>\d+)-)?.")


def temp_root() -> str:
    """The temp dir as the mount table spells it (symlinks resolved)."""
    return os.path.realpath(tempfile.gettempdir())


def _start_time(pid: int | str) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process, or None when there is none."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def _pid_namespace(pid: int | str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


@attrs.frozen
class Owner:
    """The vmafx process a temp folder belongs to, as recorded in its name."""

    pid: int
    start: int | None = None
    pidns: int | None = None

    @classmethod
    def me(cls) -> Owner:
        found = _start_time("self")
        return cls(os.getpid(), found[1] if found else None, _pid_namespace("self"))

    @classmethod
    def from_name(cls, name: str) -> Owner | None:
        match = _NAME.match(name)
        if not match:
            return None
        start, pidns = match.group("start"), match.group("pidns")
        return cls(int(match.group("pid")), int(start) if start else None, int(pidns) if pidns else None)

    def prefix(self, kind: str) -> str:
        if self.start is None or self.pidns is None:
            return f"{PREFIX}{kind}-{self.pid}-"
        return f"{PREFIX}{kind}-{self.pid}-{self.start}-{self.pidns}-"

    def alive(self) -> bool | None:
        """True if the owner runs, False if it surely does not, None if that cannot be told from here."""
        if self.pidns is not None and self.pidns != _pid_namespace("self"):
            return None
        if self.start is None and self.pidns is None:  # an older name: the pid alone
            return pid_alive(self.pid)
        found = _start_time(self.pid)
        if found is None:
            return False
        state, start = found
        if state in ("Z", "X"):  # exited; its parent has not reaped it yet
            return False
        return self.start is None or self.start == start


_made: set[str] = set()
_made_lock = threading.Lock()


def make(kind: str) -> str:
    """A new private (0700) folder of `kind` owned by this process.

    Its owner removes it; whatever is still there when vmafx exits (the owner was interrupted
    between making it and taking charge of it) `remove_own()` removes, at exit and on Ctrl-C.
    """
    with interrupts.deferred():
        path = tempfile.mkdtemp(prefix=Owner.me().prefix(kind), dir=temp_root())
        with _made_lock:
            if len(_made) > 64:  # a long batch: forget the folders their owners removed
                _made.difference_update([p for p in _made if not os.path.lexists(p)])
            _made.add(path)
    return path


def remove_own() -> list[str]:
    """Remove the folders this process made that are still there (never a mount point); never raises."""
    with _made_lock:
        paths = sorted(_made)
        _made.clear()
    left = [p for p in paths if os.path.lexists(p)]
    if not left:
        return []
    mounted = mount_points()
    removed = []
    for path in left:
        if _holds_mount(path, mounted):
            log.warning("%s is still a mount point; not removing it", path)
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            removed.append(path)
    return removed


def mount_points() -> set[str]:
    """Every mount point of this mount namespace (from /proc/self/mountinfo)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as info:
            lines = info.read().splitlines()
    except OSError:
        return set()
    points = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def _holds_mount(path: str, mounted: set[str]) -> bool:
    """Whether `path` is a mount point or has one below it: never to be removed recursively."""
    return any(point == path or point.startswith(path + os.sep) for point in mounted)


def stale(root: str | None = None) -> list[tuple[str, Owner]]:
    """vmafx temp folders in `root` whose owner is surely gone, oldest name first."""
    base = root or temp_root()
    try:
        names = sorted(n for n in os.listdir(base) if n.startswith(PREFIX))
    except OSError as exc:
        log.debug("cannot list %s for leftovers: %s", base, exc)
        return []
    found = []
    for name in names:
        owner = Owner.from_name(name)
        if owner is not None and owner.alive() is False:
            found.append((os.path.join(base, name), owner))
    return found


def sweep(root: str | None = None) -> list[str]:
    """Remove the temp folders of vmafx runs that died; return what was removed. Never raises.

    Folders that are or hold a mount point are left for the backend that made the mount.
    """
    candidates = stale(root)
    if not candidates:
        return []
    mounted = mount_points()
    removed: list[str] = []
    for path, owner in candidates:
        if _holds_mount(path, mounted):
            continue
        try:
            os.lstat(path)
        except OSError:  # gone already, or a dead mount answering ENOTCONN: not ours to touch
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            log.info("removed %s, left by vmafx process %d, which is gone", path, owner.pid)
            removed.append(path)
    return removed


atexit.register(remove_own)
