"""What a test may leave behind, read from /proc: rclone processes, FUSE mounts, temp folders."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

#: temp-folder prefixes vmafx and its plugins use
TEMP_PREFIXES = ("vmafx-libvmaf-", "vmafx-mount-", "vmafx-rclone-")


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def describe(pid: int) -> str:
    return cmdline(pid).replace(b"\0", b" ").decode(errors="replace")[:160]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def rclone_pids() -> set[int]:
    """Live (non-zombie) processes whose program is rclone."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv0 = cmdline(int(entry)).split(b"\0")[0]
            if os.path.basename(argv0) == b"rclone" and _state(int(entry)) not in ("Z", "gone"):
                found.add(int(entry))
    return found


def fuse_mounts() -> set[str]:
    """Mount points of rclone FUSE mounts."""
    mounts = set()
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2].startswith("fuse") and "rclone" in parts[0] + parts[2]:
            mounts.add(parts[1])
    return mounts


def temp_entries() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith(TEMP_PREFIXES)}


def kill(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
