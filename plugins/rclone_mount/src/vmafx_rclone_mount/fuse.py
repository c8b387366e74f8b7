"""The FUSE side of a mount: the device, `fusermount3`, and the kernel's mount table.

Unmounting goes through `fusermount3` because it works for root and, with its setuid bit, for the
user who made the mount; `-u` fails while a file is open ("Device or resource busy"), and `-uz`
then detaches the mount at once and lets the kernel finish it when the last holder lets go.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess

import attrs

from vmafx_core.process import child_environment

log = logging.getLogger(__name__)

FUSE_DEVICE = "/dev/fuse"
FUSERMOUNT = "fusermount3"
DOCKER_HINT = "in Docker: --device /dev/fuse --cap-add SYS_ADMIN"

_OCTAL = re.compile(r"\\([0-7]{3})")


def fuse_device_problem(device: str = FUSE_DEVICE) -> str | None:
    """Why `device` cannot serve a mount, or None; opening it is the only honest test."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return f"{device} is missing: no FUSE in this kernel or container ({DOCKER_HINT})"
    except OSError as exc:
        return f"{device} cannot be opened ({exc.strerror}); FUSE mounts need it ({DOCKER_HINT})"
    os.close(fd)
    return None


def find_fusermount() -> str | None:
    """`fusermount3` on the PATH of this moment (not of import time), or None."""
    return shutil.which(FUSERMOUNT)


@attrs.frozen
class MountEntry:
    """One line of /proc/self/mountinfo that matters here."""

    path: str
    fstype: str
    source: str
    super_options: str

    @property
    def user_id(self) -> int | None:
        """The uid that made a FUSE mount (`user_id=` of its options)."""
        match = re.search(r"(?:^|,)user_id=(\d+)", self.super_options)
        return int(match.group(1)) if match else None


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_table() -> dict[str, MountEntry]:
    """This mount namespace's mounts by mount point; the last mount on a path wins, as in the kernel."""
    entries: dict[str, MountEntry] = {}
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
            lines = table.read().splitlines()
    except OSError:
        return entries
    for line in lines:
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(" "), after.split(" ")
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        path = _unescape(fields[4])
        entries[path] = MountEntry(path, tail[0], _unescape(tail[1]), tail[2])
    return entries


def is_mounted(path: str) -> bool:
    """Whether `path` (already made absolute and real) is a mount point here."""
    return path in mount_table()


def _fusermount(fusermount: str, flags: str, path: str, timeout: float) -> str | None:
    """Run `fusermount3 FLAGS PATH`; None on success, else what it said.

    Its own session keeps a terminal's second Ctrl-C from killing it halfway through cleanup.
    """
    try:
        done = subprocess.run([fusermount, flags, path], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, start_new_session=True, env=child_environment())
    except subprocess.TimeoutExpired:
        return f"{FUSERMOUNT} {flags} did not finish within {timeout:g}s"
    except OSError as exc:
        return f"{FUSERMOUNT} does not run: {exc.strerror}"
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]


def unmount(path: str, fusermount: str, *, lazy: bool = False, timeout: float = 10.0) -> str | None:
    """Unmount `path`: `-u`, then `-uz` if it is still mounted (or `-uz` straight away when `lazy`).

    Returns None once `path` is no longer a mount point here, else the last complaint.
    """
    if not is_mounted(path):
        return None
    problem = None
    if not lazy:
        problem = _fusermount(fusermount, "-u", path, timeout)
        if problem is None or not is_mounted(path):
            return None
        log.debug("%s -u %s: %s; detaching lazily", FUSERMOUNT, path, problem)
    problem = _fusermount(fusermount, "-uz", path, timeout) or problem
    return problem if is_mounted(path) else None
