"""What a test may leave behind, read from /proc: rclone processes, FUSE mounts, temp folders."""

from __future__ import annotations

import os
import re
import signal
import tempfile
from pathlib import Path

from testkit.procs import cmdline, state

#: temp-folder prefixes vmafx and its plugins use
TEMP_PREFIXES = ("vmafx-libvmaf-", "vmafx-mount-", "vmafx-rclone-")


def describe(pid: int) -> str:
    return cmdline(pid).replace(b"\0", b" ").decode(errors="replace")[:160]


#: set in the environment of this test session; every process it starts inherits it, so the
#: checks below see only this session's processes, not those of anyone else on the machine
MARKER = "VMAFX_TEST_SESSION"


def _ours(pid: int) -> bool:
    token = os.environ.get(MARKER)
    if not token:
        return True
    try:
        return f"{MARKER}={token}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def rclone_pids() -> set[int]:
    """Live (non-zombie) rclone processes started by this test session."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv0 = cmdline(int(entry)).split(b"\0")[0]
            if os.path.basename(argv0) == b"rclone" and state(int(entry)) not in ("Z", "gone") \
                    and _ours(int(entry)):
                found.add(int(entry))
    return found


def fuse_mounts() -> set[str]:
    """Mount points of rclone FUSE mounts of this session (or of an owner that is gone)."""
    mounts = set()
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2].startswith("fuse") and "rclone" in parts[0] + parts[2]:
            if _owned(os.path.basename(parts[1])):
                mounts.add(parts[1])
    return mounts


def _owned(name: str) -> bool:
    """A vmafx folder name carries its owner's pid: ours, or a dead owner's (which may be ours)."""
    owner = re.match(r"vmafx-[a-z-]+?-(\d+)-", name)
    if owner is None:
        return not name.startswith("vmafx-")  # an unnamed rclone mount: count it
    namespace = re.match(r"vmafx-[a-z-]+?-\d+-\d+-(\d+)-", name)
    if namespace is not None and int(namespace.group(1)) != os.stat("/proc/self/ns/pid").st_ino:
        return False  # made in another pid namespace (or a test's stand-in for one): vmafx leaves it too
    return not Path(f"/proc/{owner.group(1)}").exists() or _ours(int(owner.group(1)))


def temp_entries() -> set[str]:
    """vmafx temp folders of this session's processes (their names carry the owner's pid)."""
    found = set()
    for name in os.listdir(tempfile.gettempdir()):
        if not name.startswith(TEMP_PREFIXES):
            continue
        if _owned(name):
            found.add(name)
    return found


def kill(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
