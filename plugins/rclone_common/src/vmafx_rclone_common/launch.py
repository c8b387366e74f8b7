"""Starting an rclone child, waiting until it is ready, and explaining why it is not.

Every rclone runs as a `vmafx_core.process.Child` (its own session, stderr tail with secrets
redacted, always reaped). Readiness is an event rclone emits itself: a log line (serve http prints
the address it really bound, so the port can be `:0`) and/or `READY=1` on `$NOTIFY_SOCKET`, which
rclone sends without systemd. Polling a port would be racy; a cheap polled condition (a mount
showing in the mount table) may stand in for READY=1, should that message ever go missing.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import select
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from vmafx_core import interrupts, tempdirs
from vmafx_core.errors import BadInput, EnvironmentMissing, JobFailed, Unreachable, VmafxError
from vmafx_core.process import Child

log = logging.getLogger(__name__)

_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)? (?:[A-Z]+\s*:\s*)?")
_UNKNOWN_REMOTE = re.compile(r"didn't find section in config file \(\"(?P<name>[^\"]*)\"\)")
_UNKNOWN_TYPE = re.compile(r"didn't find backend called \"(?P<type>[^\"]*)\"")
_ENCRYPTED = re.compile(r"unable to decrypt configuration|configuration (?:file )?is encrypted|"
                        r"RCLONE_CONFIG_PASS", re.IGNORECASE)
_BAD_CONFIG = re.compile(r"Failed to load config file")
_REFUSED = re.compile(
    r"SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied|InvalidToken|ExpiredToken|TokenRefreshRequired|"
    r"AuthorizationFailure|AuthenticationFailed|AuthorizationPermissionMismatch|invalid_grant|"
    r"invalid_client|StatusCode: 40[13]\b|\b40[13] (?:Forbidden|Unauthorized)|unable to authenticate|"
    r"ssh: handshake failed|permission denied \(publickey|no supported methods remain|NoCredentialProviders|"
    r"failed to refresh cached credentials|could not find default credentials", re.IGNORECASE)
_UNREACHABLE = re.compile(
    r"connection refused|no such host|i/o timeout|network is unreachable|no route to host|"
    r"TLS handshake|x509:|certificate|connection reset|context deadline exceeded|dial tcp|unexpected EOF|"
    r"timeout awaiting response headers",
    re.IGNORECASE)
_MISSING_BUCKET = re.compile(r"NoSuchBucket|ContainerNotFound|bucket does not exist|directory not found",
                             re.IGNORECASE)
#: rclone's VFS giving up a read once its low-level retries are spent (each retry logs "low level
#: retry N/M" first); the same line in a mount and a serve. A read on a handle the reader already
#: closed is the reader's doing, not the store's.
_READ_GAVE_UP = re.compile(r"^(?P<path>.*?): ReadFileHandle\.Read error: (?!low level retry)(?P<error>.+)$")
_READ_RETRY = re.compile(r"^(?P<path>.*?): ReadFileHandle\.Read error: low level retry \d+/\d+: (?P<error>.+)$")
#: a mount answering a FUSE request with EIO once the store failed it (no object named): every
#: input of that mount is affected
_FUSE_IO_ERROR = re.compile(r"\bERROR\s*:\s*IO error: (?P<error>.+)$")
#: any other error rclone logs about one object or the root ("/"): a serve opening a file, a listing
_PATH_ERROR = re.compile(r"\bERROR\s*:\s*(?P<path>[^:]+?): (?P<error>.+)$")
_NOT_THE_STORE = re.compile(r"file already closed|bad file descriptor|context canceled", re.IGNORECASE)
#: environment variables whose values are secrets worth scrubbing from rclone's stderr
_SECRET_ENV = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|SAS|_KEY$|_KEY_|COOKIE|SESSION|PRIVATE")


def rclone_message(line: str) -> str:
    """One rclone log line without its date and level."""
    return _LOG_PREFIX.sub("", line.strip())


def last_error(tail: str, limit: int = 300) -> str:
    """The most recent ERROR/CRITICAL/Failed line of rclone's stderr, shortened for one-line messages."""
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"\b(ERROR|CRITICAL|FATAL)\b|Failed|failed|error", ln)]
    chosen = rclone_message((errors or lines or ["no output"])[-1])
    return chosen if len(chosen) <= limit else chosen[:limit - 3] + "..."


def config_env_name(remote_name: str) -> str:
    """`RCLONE_CONFIG_<NAME>` as rclone derives it from a remote name."""
    return "RCLONE_CONFIG_" + re.sub(r"[^A-Za-z0-9]", "_", remote_name).upper()


def explain_storage_error(tail: str, *, subject: str, remote_name: str, config_hint: str = "",
                          scheme: str | None = None) -> VmafxError | None:
    """Map what rclone logged about a storage failure to one clear error, or None if unrecognised.

    `subject` starts the message (e.g. "reference s3://b/k.mp4"); `remote_name` is named in it;
    `config_hint` (e.g. "rclone config /etc/rclone.conf from VMAFX_RCLONE_CONFIG") says where
    remotes were looked up; `scheme` is the URL scheme the remote was mapped from, if any.
    """
    where = f" ({config_hint})" if config_hint else ""
    match = _UNKNOWN_REMOTE.search(tail)
    if match:
        name = match.group("name")
        via = (f"; {scheme}:// URIs are read through the remote {name!r} (change with VMAFX_REMOTE_MAP "
               f"or the storage option remote_map)") if scheme else ""
        return BadInput(f"{subject}: unknown rclone remote {name!r}{where}: define it in the rclone config "
                        f"or with {config_env_name(name)}_TYPE=... variables{via}", detail=tail)
    reason = last_error(tail, 160)
    match = _UNKNOWN_TYPE.search(tail)
    if match:
        kind = match.group("type")
        return EnvironmentMissing(f"{subject}: rclone remote {remote_name!r} has type {kind!r}, which this "
                                  f"rclone does not know{where}", detail=tail)
    if _ENCRYPTED.search(tail):
        return EnvironmentMissing(f"{subject}: the rclone config is encrypted; set RCLONE_CONFIG_PASS or "
                                  "RCLONE_PASSWORD_COMMAND", detail=tail)
    if _BAD_CONFIG.search(tail):
        return EnvironmentMissing(f"{subject}: rclone cannot load its config{where}: {reason}", detail=tail)
    if _REFUSED.search(tail):
        return EnvironmentMissing(f"{subject}: the storage refused the credentials of remote "
                                  f"{remote_name!r}: check the rclone config{where} ({reason})", detail=tail)
    if _MISSING_BUCKET.search(tail):
        return BadInput(f"{subject}: no such bucket or folder on remote {remote_name!r} ({reason})",
                        detail=tail)
    if _UNREACHABLE.search(tail):
        return Unreachable(f"{subject}: cannot reach the storage of remote {remote_name!r} ({reason})",
                           detail=tail)
    return None


def secret_values(env: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """Values to scrub from a child's stderr: `extra` and secret-looking RCLONE_*/cloud variables."""
    found = [v for v in extra if v]
    for key, value in env.items():
        if len(value) >= 6 and key.startswith(("RCLONE_", "AWS_", "AZURE_", "GOOGLE_", "GCS_", "B2_")) \
                and _SECRET_ENV.search(key) and not key.endswith(("_FILE", "_PATH")):
            found.append(value)
    return found


#: the size of sun_path in `struct sockaddr_un` on Linux, its final NUL included
_SUN_PATH = 108


class ReadLog:
    """What rclone's log says about reads from the store, filled line by line as rclone writes it.

    `failures`: path under the served root ("/" for the whole mount) -> why rclone gave up a read
    of it; `retries`: path -> the last error a read was retried for, and when (`time.monotonic()`).
    """

    def __init__(self) -> None:
        self.failures: dict[str, str] = {}
        self.retries: dict[str, tuple[str, float]] = {}

    def take(self, line: str) -> None:
        message = rclone_message(line)
        gave_up = _READ_GAVE_UP.match(message)
        if gave_up and not _NOT_THE_STORE.search(gave_up.group("error")):
            self.failures.setdefault(gave_up.group("path"), gave_up.group("error"))
        io_error = _FUSE_IO_ERROR.search(line)
        if io_error and _UNREACHABLE.search(io_error.group("error")):
            self.failures.setdefault("/", io_error.group("error"))
        retry = _READ_RETRY.match(message)
        other = None if retry or gave_up or io_error else _PATH_ERROR.search(line)
        if other is not None and not _UNREACHABLE.search(other.group("error")):
            other = None  # an object's own trouble (not found, refused) is not the store going away
        for found in (retry, other):
            if found is not None:
                self.retries[found.group("path")] = (found.group("error"), time.monotonic())

    def failure(self, relative: str) -> str | None:
        return self.failures.get(relative, self.failures.get("/"))

    def last_retry(self, relative: str) -> tuple[str, float] | None:
        found = [r for r in (self.retries.get(relative), self.retries.get("/")) if r is not None]
        return max(found, key=lambda r: r[1]) if found else None


class _NotifySocket:
    """A private `$NOTIFY_SOCKET` (a datagram socket in a 0700 folder) that rclone reports READY=1 on."""

    def __init__(self) -> None:
        self.folder = tempdirs.make("rclone-notify")  # owner pid in the name: a killed run's is swept
        self.path = os.path.join(self.folder, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if len(os.fsencode(self.path)) >= _SUN_PATH:
            # a long $TMPDIR: a socket path is limited to 107 bytes. An abstract socket ("@name", which
            # rclone's Go runtime understands) has no path; its random name keeps it the job's own
            self.path = "@vmafx-rclone-notify-" + secrets.token_hex(16)
        try:
            self.sock.bind("\0" + self.path[1:] if self.path.startswith("@") else self.path)
        except OSError:
            self.close()
            raise
        self.sock.setblocking(False)

    def ready(self, wait: float) -> bool:
        """Whether READY=1 arrived within `wait` seconds."""
        readable, _, _ = select.select([self.sock], [], [], wait)
        while readable:
            try:
                message = self.sock.recv(4096)
            except BlockingIOError:
                return False
            if b"READY=1" in message.split(b"\n"):
                return True
            readable, _, _ = select.select([self.sock], [], [], 0)
        return False

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class RcloneProcess:
    """A running, ready rclone: its `Child`, the match of its ready line, and what to clean up.

    `stop()` ends it within bounded time (SIGTERM, then SIGKILL after `term_timeout`) and removes
    the notify socket. Usable as a context manager.
    """

    def __init__(self, child: Child, target: str, ready_match: re.Match[str] | None,
                 notify: _NotifySocket | None, reads: ReadLog | None = None) -> None:
        self.child = child
        self.target = target
        self.ready_match = ready_match
        self._notify = notify
        self.reads = reads if reads is not None else ReadLog()

    @property
    def pid(self) -> int:
        return self.child.pid

    def tail(self, lines: int | None = None) -> str:
        return self.child.tail(lines)

    def alive(self) -> bool:
        return self.child.poll() is None

    def problem(self) -> str | None:
        """None while rclone runs, else what ended it: a `PreparedInput.health` for the core."""
        code = self.child.poll()
        if code is None:
            return None
        tail = self.tail()
        return f"rclone exited unexpectedly (code {code}{': ' + last_error(tail, 200) if tail else ''})"

    def input_health(self, relative: str, remote_name: str) -> Callable[[], VmafxError | str | None]:
        """A `PreparedInput.health` for the object at `relative` under this rclone's root.

        It reports rclone giving up a read of that object (the store stayed silent, refused or kept
        resetting through every retry) as `Unreachable` naming the remote and rclone's own error,
        and rclone's death as `problem()` does. Both backends read through rclone's VFS and log the
        same line, so a failure mid-stream is told the same way whichever read it.
        """
        def check() -> VmafxError | str | None:
            failure = self.reads.failure(relative)
            if failure is not None:
                return Unreachable(f"reading it from remote {remote_name!r} failed after rclone's retries "
                                   f"({failure})", detail=self.tail() or None, retryable=False)
            return self.problem()

        return check

    def input_stall_cause(self, relative: str, remote_name: str) -> Callable[[float], VmafxError | None]:
        """A `PreparedInput.stall_cause`: the job stalled reading the object at `relative` while this
        rclone lives, so rclone was waiting on the store (its retries, each up to `--timeout`, can
        outlast the stall bound): `Unreachable` naming the remote, with the last error rclone
        retried for since the stall began when it logged one."""
        def check(since: float) -> VmafxError | None:
            if not self.alive():
                return None  # `health` tells that story
            retried = self.reads.last_retry(relative)
            last = f" (rclone kept retrying: {retried[0]})" if retried is not None and retried[1] >= since else ""
            return Unreachable(f"no answer from remote {remote_name!r} through rclone{last}",
                               detail=self.tail() or None, retryable=False)

        return check

    def watch_input(self, relative: str, remote_name: str) -> dict[str, Any]:
        """`health` and `stall_cause` of a `PreparedInput` read through this rclone (see both)."""
        return {"health": self.input_health(relative, remote_name),
                "stall_cause": self.input_stall_cause(relative, remote_name)}

    def stop(self, timeout: float | None = None) -> int | None:
        try:
            return self.child.stop(timeout)
        finally:
            if self._notify is not None:
                self._notify.close()
                self._notify = None

    def __enter__(self) -> RcloneProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_all(processes: Sequence[RcloneProcess], timeout: float | None = None) -> None:
    """Stop several rclones at once: SIGTERM to all first, so their grace periods overlap."""
    for process in processes:
        process.child.signal(signal.SIGTERM)
    errors: list[BaseException] = []
    for process in processes:
        try:
            process.stop(timeout)
        except BaseException as exc:  # keep stopping the others; re-raise the first afterwards
            errors.append(exc)
    if errors:
        raise errors[0]


def start_rclone(argv: Sequence[str], *, env: Mapping[str, str], name: str, target: str, timeout: float,
                 remote_name: str, ready_line: re.Pattern[str] | None = None, notify: bool = False,
                 ready_check: Callable[[], bool] | None = None, secrets: Sequence[str] = (),
                 subject: str | None = None, config_hint: str = "", scheme: str | None = None,
                 term_timeout: float = 5.0) -> RcloneProcess:
    """Start rclone and wait, at most `timeout` seconds, until it is ready.

    Ready means: `ready_line` matched a stderr line (when given) and READY=1 arrived on a private
    `$NOTIFY_SOCKET` (when `notify`) or `ready_check()`, polled every 20 ms, returned true (when
    given). If rclone exits first or the time runs out, it is stopped and one clear VmafxError is
    raised, carrying the tail of its stderr as `detail`. `target` (e.g.
    "s3:bucket/dir"), `subject` (what the user asked for, e.g. "reference s3://bucket/dir/a.mp4";
    default: the target), `remote_name`, `config_hint` and `scheme` only go into messages.
    """
    if ready_line is None and not notify and ready_check is None:
        raise ValueError("start_rclone needs ready_line, notify or ready_check to know when rclone is ready")
    matched = threading.Event()
    match: list[re.Match[str]] = []
    reads = ReadLog()

    def on_line(line: str) -> None:
        log.debug("%s: %s", name, line)
        reads.take(line)
        if ready_line is not None and not matched.is_set():
            found = ready_line.search(line)
            if found:
                match.append(found)
                matched.set()

    child_env = dict(env)
    notify_socket: _NotifySocket | None = None
    process: RcloneProcess | None = None
    try:
        # a signal between making the socket's folder (or starting rclone) and owning it would
        # leave them behind: it is raised once both have an owner, inside this try
        with interrupts.deferred():
            notify_socket = _NotifySocket() if notify else None
            if notify_socket is not None:
                child_env["NOTIFY_SOCKET"] = notify_socket.path
            try:
                child = Child(argv, name=name, env=child_env, secrets=secret_values(child_env, secrets),
                              on_stderr_line=on_line, term_timeout=term_timeout)
            except OSError as exc:
                raise EnvironmentMissing(f"rclone {argv[0]} does not run: {exc.strerror}") from None
            process = RcloneProcess(child, target, None, notify_socket, reads)
        _wait_ready(process, matched if ready_line is not None else None, notify_socket, ready_check, timeout,
                    name=name, target=target, subject=subject or target, remote_name=remote_name,
                    config_hint=config_hint, scheme=scheme)
    except BaseException:
        if process is not None:
            process.stop()
        elif notify_socket is not None:
            notify_socket.close()
        raise
    process.ready_match = match[0] if match else None
    return process


def _wait_ready(process: RcloneProcess, matched: threading.Event | None, notify_socket: _NotifySocket | None,
                ready_check: Callable[[], bool] | None, timeout: float, *, name: str, target: str,
                subject: str, remote_name: str, config_hint: str, scheme: str | None) -> None:
    started = time.monotonic()
    deadline = started + timeout
    line_ok = matched is None
    notify_ok = notify_socket is None and ready_check is None
    while True:
        interrupts.check()  # a signal whose exception was swallowed somewhere still stops the wait
        line_ok = line_ok or (matched is not None and matched.is_set())
        if line_ok and notify_ok:
            log.debug("%s for %s ready in %.3fs (pid %d)", name, target, time.monotonic() - started,
                      process.pid)
            return
        code = process.child.poll()
        if code is not None:
            process.child.wait(2.0)  # let the stderr reader take the last lines
            tail = process.tail()
            error = explain_storage_error(tail, subject=subject, remote_name=remote_name,
                                          config_hint=config_hint, scheme=scheme)
            raise error or JobFailed(f"{subject}: {name} for {target} exited with code {code} before it was "
                                     f"ready: {last_error(tail)}", detail=tail)
        left = deadline - time.monotonic()
        if left <= 0:
            process.stop()
            tail = process.tail()
            # what rclone waits on before it is ready is the store: worded and coded as a silent
            # store found by a check, whichever backend started it
            raise Unreachable(f"{subject}: no answer from remote {remote_name!r} through rclone within "
                              f"{round(timeout, 1):g}s ({name} for {target} was not ready; raise "
                              "--prepare-timeout, limits.prepare_timeout in a job file, if the storage is just "
                              "slow)" + (f"; rclone last said: {last_error(tail)}" if tail else ""),
                              detail=tail or None, retryable=False)
        step = min(0.02, left)
        if not notify_ok:
            if notify_socket is not None:
                notify_ok = notify_socket.ready(step)
            else:
                time.sleep(step)
            notify_ok = notify_ok or (ready_check is not None and ready_check())
        elif matched is not None:
            matched.wait(step)

