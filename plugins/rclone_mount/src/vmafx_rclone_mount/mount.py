"""Reading a job's remote inputs through private, read-only `rclone mount`s.

One mount per remote root (see `vmafx_rclone_common.group_by_root`): reference and distorted in
one bucket share it. rclone runs in the foreground as an owned child: with `--daemon` the parent
exits 0 even when the child then fails (on a stale mount point, say). It is ready when it sends
READY=1 on its notify socket or the mount shows in the mount table; then every input is stat'ed
through the mount, because a mount succeeds even with refused credentials or a missing bucket and
ffmpeg would only report "Input/output error". On the way out, whatever happened, each mount is
unmounted, its rclone stopped and its folder removed.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from vmafx_rclone_common import (
    RcloneProcess,
    RcloneSettings,
    RemotePath,
    RemoteRoot,
    group_by_root,
    last_error,
    uri_to_display,
)
from vmafx_rclone_common.integrity import served_mismatch

from vmafx_core import interrupts
from vmafx_core.errors import BadInput, EnvironmentMissing, JobFailed, Unreachable, VmafxError
from vmafx_core.types import InputRequest, PrepareContext, PreparedInput
from vmafx_rclone_mount.folders import clean_leftovers, make_folder, temp_root
from vmafx_rclone_mount.fuse import FUSERMOUNT, find_fusermount, is_mounted, unmount

log = logging.getLogger(__name__)

#: mount settings a user's environment must not change: who can see the mount, and how it behaves
_DROP_ENV = ("RCLONE_ALLOW_OTHER", "RCLONE_ALLOW_ROOT", "RCLONE_ALLOW_NON_EMPTY",
             "RCLONE_DEFAULT_PERMISSIONS", "RCLONE_UMASK", "RCLONE_UID", "RCLONE_GID", "RCLONE_DIR_PERMS",
             "RCLONE_FILE_PERMS", "RCLONE_OPTION", "RCLONE_FUSE_FLAG", "RCLONE_WRITE_BACK_CACHE",
             "RCLONE_DEVNAME", "RCLONE_MOUNT_CASE_INSENSITIVE", "RCLONE_NETWORK_MODE")


def mount_args(root: RemoteRoot, folder: str, network: Sequence[str]) -> list[str]:
    """The rclone argv (after the binary) for one mount; it never holds a secret. `network` is
    `RcloneSettings.network_args()`: timeouts and retries, as the http backend has them."""
    return [
        "mount", root.folder_spec, folder,  # the trailing slash: no "is it a file?" HEAD on the root
        "--read-only",
        "--vfs-cache-mode", "off",  # nothing written to local disk
        "--direct-io",  # no page-cache copy of what is read (~the file size, reclaimable), same speed
        "--no-checksum",  # no hashing of what is read
        "--no-modtime",  # no extra metadata request per object
        "--poll-interval", "0",  # no change polling: nothing changes under a job
        "--dir-cache-time", "1h",  # list each folder once per job
        "--attr-timeout", "1h",  # the kernel keeps sizes instead of asking rclone on every read
        *network,
        "--log-level", "NOTICE",
    ]


class Mount:
    """One mount folder, the rclone serving it (once started) and the root it shows."""

    def __init__(self, root: RemoteRoot, folder: str) -> None:
        self.root = root
        self.folder = folder
        self.process: RcloneProcess | None = None

    def path(self, target: RemotePath) -> str:
        return os.path.join(self.folder, *self.root.relative(target).split("/"))

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()


def _stat_within(path: str, timeout: float) -> os.stat_result:
    """`os.stat` with a time limit.

    A request through FUSE has no timeout: a stalled store would block it for good. It runs on a
    helper thread instead; when the mount is torn down the kernel fails the request and the thread
    ends.
    """
    outcome: list[os.stat_result | OSError] = []

    def run() -> None:
        try:
            outcome.append(os.stat(path))
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, name="rclone-mount-stat", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise TimeoutError(f"stat {path} took longer than {timeout:g}s")
    result = outcome[0]
    if isinstance(result, OSError):
        raise result
    return result


def _wait_for_error_line(process: RcloneProcess, wait: float = 1.0) -> str:
    """rclone logs why a request failed as it answers: give its stderr reader that moment."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and "ERROR" not in process.tail() and process.alive():
        time.sleep(0.02)
    return process.tail()


def start_mount(settings: RcloneSettings, mount: Mount, targets: Sequence[RemotePath],
                requests: Sequence[InputRequest], timeout: float) -> None:
    """Start the rclone of `mount` and wait until the mount is there."""
    members = mount.root.members
    subject = " and ".join(f"{requests[i].role} {uri_to_display(requests[i].uri)}" for i in members)
    mount.process = settings.start(
        mount_args(mount.root, mount.folder, settings.network_args()), root=mount.root,
        targets=[targets[i] for i in members],
        name="rclone mount", timeout=timeout, subject=subject, notify=True,
        ready_check=lambda: is_mounted(mount.folder), drop_env=_DROP_ENV)
    log.debug("rclone mount of %s at %s (pid %d)", mount.root.spec, mount.folder, mount.process.pid)


def check_input(settings: RcloneSettings, mount: Mount, request: InputRequest, target: RemotePath,
                timeout: float) -> PreparedInput:
    """Stat the input through the mount and turn the answer into a PreparedInput or one clear error."""
    assert mount.process is not None
    display = uri_to_display(request.uri)
    subject = f"{request.role} {display}"
    path = mount.path(target)
    try:
        info = _stat_within(path, timeout)
    except (FileNotFoundError, NotADirectoryError):
        raise BadInput(f"{subject}: no such object (checked through rclone)") from None
    except TimeoutError:
        tail = mount.process.tail()
        error = settings.explain(tail, subject=subject, target=target)
        raise error or Unreachable(f"{subject}: no answer from remote {target.remote_name!r} through rclone "
                                   f"within {round(timeout, 1):g}s (raise --prepare-timeout, "
                                   "limits.prepare_timeout in a job file, if the storage is just slow)",
                                   detail=tail or None) from None
    except OSError as exc:
        raise _unreadable(settings, mount.process, subject, target, exc) from None
    if stat.S_ISDIR(info.st_mode):
        raise BadInput(f"{subject}: is a folder, not a video file")
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"{subject}: is not a regular file")
    # "file:" keeps ffmpeg from reading a name like "a:b.mp4" as a protocol
    return PreparedInput(role=request.role, url="file:" + path, display=display, size=info.st_size,
                         **mount.process.watch_input(mount.root.relative(target), target.remote_name),
                         integrity=functools.partial(served_mismatch, mount.process),
                         identity=lambda: settings.identity(target, timeout))


def _unreadable(settings: RcloneSettings, process: RcloneProcess, subject: str, target: RemotePath,
                exc: OSError) -> VmafxError:
    """Why a stat through the mount failed: refused credentials and the like are only in rclone's log."""
    if exc.errno == errno.ENOTCONN or not process.alive():
        if not process.alive():
            process.child.wait(2.0)  # let the stderr reader take the last lines
        tail = process.tail()
        return settings.explain(tail, subject=subject, target=target) or JobFailed(
            f"{subject}: rclone mount stopped while checking the input: {last_error(tail)}",
            detail=tail or None)
    tail = _wait_for_error_line(process)
    error = settings.explain(tail, subject=subject, target=target)
    if error is not None:
        return error
    if exc.errno in (errno.EACCES, errno.EPERM):
        return EnvironmentMissing(f"{subject}: access denied through rclone mount ({exc.strerror}): check "
                                  f"the permissions of remote {target.remote_name!r}", detail=tail or None)
    reason = f"{exc.strerror}: {last_error(tail, 200)}" if tail else exc.strerror
    return JobFailed(f"{subject}: rclone mount could not read it from remote {target.remote_name!r} "
                     f"({reason})", detail=tail or None)


def require_fusermount() -> str:
    found = find_fusermount()
    if found is None:
        raise EnvironmentMissing(f"{FUSERMOUNT} is not on PATH: the rclone-mount storage needs it to unmount "
                                 "(Debian: apt-get install fuse3)")
    return found


def _teardown_one(mount: Mount, fusermount: str) -> list[BaseException]:
    """Unmount, stop rclone, remove the folder; each step runs whatever the one before did."""
    signals: list[BaseException] = []

    def step(what: str, action: Callable[[], str | None]) -> None:
        try:
            problem = action()
            if problem:
                log.error("%s %s: %s", what, mount.folder, problem)
        except Exception as exc:  # keep going: a later step may still free the mount
            log.error("%s %s failed: %s", what, mount.folder, exc)
        except BaseException as exc:  # Ctrl-C or SIGTERM during cleanup: finish it, then re-raise
            signals.append(exc)

    def stop_rclone() -> None:
        if mount.process is not None:
            mount.process.stop()  # after the unmount rclone has usually exited already

    def remove_folder() -> None:
        os.rmdir(mount.folder)  # never recursive: were it still a mount, that would reach the remote

    step("unmounting", lambda: unmount(mount.folder, fusermount))
    step("stopping the rclone of", stop_rclone)
    step("unmounting (after rclone stopped)", lambda: unmount(mount.folder, fusermount, lazy=True))
    step("removing the mount folder", remove_folder)
    if os.path.isdir(mount.folder) or is_mounted(mount.folder):
        log.error("could not clean up %s (mount of %s); the next vmafx run removes it, or run `%s -uz %s` "
                  "and rmdir it", mount.folder, uri_to_display(mount.root.spec), FUSERMOUNT, mount.folder)
    return signals


def teardown(mounts: Sequence[Mount], fusermount: str) -> None:
    """Clean up every mount, newest first; an interruption on the way is re-raised at the end."""
    signals: list[BaseException] = []
    for mount in reversed(mounts):
        signals += _teardown_one(mount, fusermount)
    if signals:
        raise signals[0]


def _new_folder() -> str:
    try:
        return make_folder()
    except OSError as exc:
        raise EnvironmentMissing(f"cannot create a mount folder in {temp_root()}: {exc.strerror}") from None


@contextlib.contextmanager
def prepare(inputs: Sequence[InputRequest], context: PrepareContext) -> Iterator[list[PreparedInput]]:
    """Mount all remote inputs of a job; yield the paths ffmpeg should open; unmount everything on exit."""
    settings = RcloneSettings.from_context(context)
    fusermount = require_fusermount()
    targets = [settings.resolve(request.uri) for request in inputs]
    roots = group_by_root(targets)
    clean_leftovers(fusermount)
    mounts: list[Mount] = []
    try:
        for root in roots:
            with interrupts.deferred():  # the folder is in `mounts`, so torn down, before a signal lands
                mounts.append(Mount(root, _new_folder()))
            start_mount(settings, mounts[-1], targets, inputs, max(context.seconds_left(), 0.1))
        prepared: list[PreparedInput | None] = [None] * len(inputs)
        for mount in mounts:
            for index in mount.root.members:
                prepared[index] = check_input(settings, mount, inputs[index], targets[index],
                                              max(context.seconds_left(), 0.1))
        result = [p for p in prepared if p is not None]
        assert len(result) == len(inputs)
        yield result
    except BaseException:
        teardown(mounts, fusermount)
        raise
    died = [m for m in mounts if not m.alive()]
    teardown(mounts, fusermount)
    if died:
        process = died[0].process
        assert process is not None
        raise JobFailed(f"rclone mount of {uri_to_display(died[0].root.spec)} stopped during the job "
                        f"(exit code {process.child.poll()}): {last_error(process.tail())}",
                        detail=process.tail() or None)
