"""Ctrl-C and SIGTERM as an interruption that cannot be lost.

Python runs a signal handler between two bytecodes of the main thread, wherever that is. An
exception raised there can be swallowed (logging's at-fork hooks, a `__del__` or a weakref
callback print "Exception ignored" and carry on), or can land between getting a resource (a child
process, a temp folder, a socket) and handing it to the code that releases it. So:

- the handler first records the signal, then raises `Interruption`, but only once, and never
  inside a `deferred()` section: there the raise waits until the section ends;
- code that acquires a resource and registers its release does it inside `deferred()`;
- loops that wait (for a server, for ffmpeg) call `check()` or `pending()`, which see a recorded
  signal whether or not its exception got through;
- the CLI reports a job that ended after a signal as interrupted (exit 130), never with a score.

Only the command line installs the handlers (`install()`); as a library (a Dask worker, a test)
vmafx leaves the host's signal handling alone, and `pending()` stays false.

This module imports only the standard library: it is installed before anything else is imported,
so a signal during start-up is handled too.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received: int | None = None  #: the first signal received
_raised = False  #: an Interruption has been raised for it (it may still have been swallowed)
_deferred = 0  #: depth of deferred() sections in the main thread
_installed = False


class Interruption(BaseException):
    """Raised in the main thread when SIGINT or SIGTERM arrives; not an Exception, so no
    `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum: int, frame: FrameType | None) -> None:
    global _received, _raised
    if _received is None:
        _received = signum
    if _raised or _deferred:
        return  # cleanup is already under way, or a resource is being handed over: raised later
    _raised = True
    raise Interruption(_received)


def install() -> None:
    """Handle SIGINT and SIGTERM from now on (main thread only; idempotent)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    default_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        # an Interruption swallowed where Python cannot raise (a weakref callback, an at-fork hook,
        # a __del__): it is recorded in `_received` and acted on at the next check, so nothing to say
        if not isinstance(info.exc_value, Interruption):
            default_hook(info)

    sys.unraisablehook = unraisable
    _installed = True


def pending() -> int | None:
    """The signal received, if any: whether or not its exception reached anyone."""
    return _received


def ends_the_run(exc: BaseException) -> bool:
    """Whether a job's error must stop the run rather than have the job retried on its own: a
    signal was received (whatever exception it became on the way), or the job was cancelled."""
    from vmafx_core.errors import Interrupted  # kept out of this module's import: it loads first

    return _received is not None or isinstance(exc, Interrupted)


def check() -> None:
    """Raise `Interruption` if a signal was received. For wait loops, never for cleanup code."""
    global _raised
    if _received is not None:
        _raised = True
        raise Interruption(_received)


@contextmanager
def deferred() -> Iterator[None]:
    """A section that a signal does not break into: start a child and register it, make a folder
    and hand it to its owner. A signal received meanwhile is raised when the section ends, unless
    one was raised already (then cleanup is running, and must not be interrupted again)."""
    global _deferred, _raised
    if threading.current_thread() is not threading.main_thread():
        yield  # signals only ever interrupt the main thread
        return
    _deferred += 1
    try:
        yield
    finally:
        _deferred -= 1
        if not _deferred and _received is not None and not _raised:
            _raised = True
            raise Interruption(_received)


def reset() -> None:
    """Forget a received signal (tests, and a process that handled it and goes on)."""
    global _received, _raised
    _received, _raised = None, False
