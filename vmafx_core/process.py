"""One owner for every child process.

`Child` starts a process in its own session (so a terminal's Ctrl-C reaches only vmafx, which then
stops its children in the right order), reads its stderr on a thread into a bounded tail with
secrets redacted, and always reaps it: `stop()` sends SIGTERM, waits a bounded time, then SIGKILL.
Every live child is also in a module registry that `stop_all()` drains, the last line of defence
when the interpreter is on its way out. On Linux each child also gets SIGTERM from the kernel if
vmafx itself is killed outright (SIGKILL, OOM), so no rclone server outlives the job that started
it. The kernel ties that signal to the thread that started the child: start children from a thread
that outlives them (the main thread, or the thread that waits for them).
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import itertools
import logging
import os
import re
import select
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

from vmafx_core import interrupts

log = logging.getLogger(__name__)

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s'\"]+@")

_live: set[Child] = set()
_live_lock = threading.Lock()
_started = itertools.count()


_PR_SET_PDEATHSIG = 1
_prctl: Any = None
try:
    # the running interpreter's own symbols include libc's; ctypes.util.find_library("c") would
    # start `ldconfig -p` on every import
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: children are still reaped by stop()/stop_all()
    pass


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    if _prctl is None:
        return None

    def setup() -> None:  # runs in the child between fork and exec: only async-signal-safe calls
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def _open_pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


#: variables that carry storage credentials or point at them: only rclone is given these
_CREDENTIAL_PREFIXES = ("RCLONE_", "AWS_", "AZURE_", "GOOGLE_", "GCS_", "GCLOUD_", "CLOUDSDK_", "B2_")
_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|PRIVATE|COOKIE|SESSION|AUTH|_KEY$|_KEY_|^KEY$",
                          re.IGNORECASE)


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every child but rclone: ours, less anything that may hold a credential.

    ffmpeg reads untrusted media and needs no credential (remote inputs reach it through a
    loopback server or a mount), so storage credentials reach rclone alone.
    """
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items()
            if not k.upper().startswith(_CREDENTIAL_PREFIXES) and not _SECRET_NAME.search(k)}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove every given secret and every `user:pass@` of a URL from `text`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)


class Child:
    """A supervised child process; use as a context manager or call `stop()`."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,  #: default: `child_environment()`, no credentials
        pass_fds: Sequence[int] = (),
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
        secrets: Sequence[str] = (),
        on_stderr_line: Callable[[str], None] | None = None,
        tail_lines: int = 40,
        term_timeout: float = 5.0,
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self._secrets = tuple(s for s in secrets if s)
        self._on_line = on_stderr_line
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._lines_lock = threading.Lock()
        self.term_timeout = term_timeout
        self.order = next(_started)
        # Ctrl-C between the fork and the registration would leave a child nobody stops
        with interrupts.deferred():
            self.proc = subprocess.Popen(  # noqa: S603 - argv is built by vmafx, never a shell string
                self.argv,
                env=dict(env) if env is not None else child_environment(),
                pass_fds=tuple(pass_fds),
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 - only prctl and getppid run there
            )
            self._pidfd = _open_pidfd(self.proc.pid)
            if self._pidfd is not None:
                # closed with the object, so never under a thread still waiting on it; not at exit
                # (finalizers run before atexit's stop_all, which may still wait), the OS does that
                weakref.finalize(self, os.close, self._pidfd).atexit = False
            self._reader = threading.Thread(target=self._read_stderr, name=f"{name}-stderr", daemon=True)
            self._reader.start()
            with _live_lock:  # last: stop_all, from another thread, sees only complete children
                _live.add(self)
        log.debug("started %s pid %d", name, self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = redact(raw.decode("utf-8", "replace").rstrip("\r\n"), self._secrets)
            with self._lines_lock:
                self._tail.append(line)
            if self._on_line is not None:
                try:
                    self._on_line(line)
                except Exception:  # a callback bug must not stop the draining of stderr
                    log.exception("stderr callback of %s failed", self.name)
        self.proc.stderr.close()

    def tail(self, lines: int | None = None) -> str:
        """The last lines of stderr, secrets redacted."""
        with self._lines_lock:
            kept = list(self._tail)
        return "\n".join(kept[-lines:] if lines else kept)

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        code = self._wait(timeout)
        self._finish()
        return code

    def _wait(self, timeout: float | None) -> int:
        """`Popen.wait`, woken by the kernel the moment the child exits where a pidfd is available.

        `Popen.wait(timeout)` polls with sleeps of up to 50 ms; every job pays that latency twice.
        """
        if timeout is not None and self._pidfd is not None and self.proc.returncode is None:
            try:  # poll, not select: a batch may hold descriptors numbered past select's 1024
                poller = select.poll()
                poller.register(self._pidfd, select.POLLIN)
                ready = bool(poller.poll(max(timeout, 0.0) * 1000))
            except (OSError, ValueError):  # should not happen; Popen's own polling still works
                ready = True
            if not ready:
                raise subprocess.TimeoutExpired(self.argv, timeout)
        return self.proc.wait(timeout)

    def _finish(self) -> None:
        self._reader.join(timeout=2.0)
        with _live_lock:
            _live.discard(self)

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float | None = None, kill_timeout: float = 3.0) -> int | None:
        """End the process: SIGTERM, a bounded wait, then SIGKILL and another bounded wait.

        Returns the exit code, or None when even SIGKILL has not ended it yet: a process blocked in
        the kernel (a read from a FUSE mount whose server stalled) dies only once that read is
        aborted, which stopping the mount's rclone does. Such a child stays registered and
        `stop_all()` reaps it later; stop() never blocks for longer than the two bounds.
        """
        timeout = self.term_timeout if timeout is None else timeout
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self._wait(timeout)
            except subprocess.TimeoutExpired:
                log.info("%s (pid %d) ignored SIGTERM for %.1fs; killing it", self.name, self.pid, timeout)
                self.signal(signal.SIGKILL)
                try:
                    self._wait(kill_timeout)
                except subprocess.TimeoutExpired:
                    log.info("%s (pid %d) is blocked in the kernel; it will be reaped later", self.name, self.pid)
                    return None
        self._finish()
        return self.proc.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def live_children() -> list[Child]:
    with _live_lock:
        return list(_live)


def stop_all(timeout: float = 5.0) -> None:
    """Stop every child still alive, newest first (consumers before the servers they read).

    A second round reaps children that were blocked on a server the first round stopped.
    """
    for _ in range(2):
        for child in sorted(live_children(), key=lambda c: -c.order):
            child.stop(timeout)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


atexit.register(stop_all)
