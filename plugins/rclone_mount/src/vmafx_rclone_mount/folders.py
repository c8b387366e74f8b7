"""Mount folders named after the process that owns them, and cleaning those of runs that died.

A run killed outright (SIGKILL, OOM, a container stop) cannot unmount. Its folder's name says who
made it: `vmafx-mount-<pid>-<start>-<pidns>-<random>`, with the owner's start time (so a reused
pid is not mistaken for the owner) and pid namespace (in another namespace the pid means nothing,
so the folder is left alone: it may be a live mount of a job in another container sharing the temp
dir). Only folders whose owner is surely dead are touched, so concurrent jobs keep their mounts.
Folders are only ever removed with rmdir, never recursively: a folder that is still a mount would
otherwise have its remote contents deleted.
"""

from __future__ import annotations

import errno
import logging
import os

import attrs

from vmafx_core import tempdirs
from vmafx_rclone_mount.fuse import FUSERMOUNT, mount_table, unmount

log = logging.getLogger(__name__)

KIND = "mount"
PREFIX = f"{tempdirs.PREFIX}{KIND}-"
temp_root = tempdirs.temp_root


@attrs.frozen
class Owner(tempdirs.Owner):
    """The vmafx process a mount folder belongs to (`vmafx_core.tempdirs.Owner`, kind "mount")."""

    def prefix(self, kind: str = KIND) -> str:
        return super().prefix(kind)


def make_folder() -> str:
    """A new private (0700) mount folder in the temp dir, named after this process."""
    return tempdirs.make(KIND)


def _uid_of(path: str, entry_uid: int | None) -> int | None:
    try:
        return os.lstat(path).st_uid
    except OSError:  # a stale mount answers ENOTCONN even to lstat: the mount table knows its maker
        return entry_uid


def clean_leftovers(fusermount: str, folder: str | None = None) -> list[str]:
    """Unmount and remove the mount folders of vmafx runs that died; returns the folders removed.

    Each problem is logged with the command that would fix it; nothing here raises, so a leftover
    never stops a new job (its own folder has a fresh name).
    """
    dead = [(path, owner) for path, owner in tempdirs.stale(folder)
            if os.path.basename(path).startswith(PREFIX)]
    removed = []
    table = mount_table() if dead else {}
    for path, owner in dead:
        entry = table.get(path)
        uid = _uid_of(path, entry.user_id if entry else None)
        if os.geteuid() != 0 and uid is not None and uid != os.geteuid():
            log.debug("leaving %s alone: it belongs to uid %d", path, uid)
            continue
        if _clean(path, owner, fusermount, mounted=entry is not None):
            removed.append(path)
    return removed


def _clean(path: str, owner: tempdirs.Owner, fusermount: str, *, mounted: bool) -> bool:
    if mounted:
        problem = unmount(path, fusermount, lazy=True)
        if problem is not None:
            log.warning("a mount left by vmafx process %d, which is gone, is still at %s and could not be "
                        "unmounted (%s); run `%s -uz %s` as its owner", owner.pid, path, problem, FUSERMOUNT,
                        path)
            return False
    try:
        os.rmdir(path)
    except FileNotFoundError:  # a concurrent job cleaned it first
        return False
    except OSError as exc:
        hint = "it holds files vmafx did not put there" if exc.errno == errno.ENOTEMPTY else exc.strerror
        log.warning("could not remove %s, left by vmafx process %d, which is gone: %s", path, owner.pid, hint)
        return False
    if mounted:
        log.warning("unmounted and removed %s, a mount left by vmafx process %d, which did not finish",
                    path, owner.pid)
    else:
        log.info("removed the empty mount folder %s left by vmafx process %d", path, owner.pid)
    return True
