"""A TCP relay on loopback that breaks connections on purpose: the flaky network of the fault tests.

It sits between rclone and the S3 server (point the remote's endpoint at `relay.endpoint`) and
forwards bytes both ways; a `Fault` decides, per connection in the order they were accepted, what
goes wrong once the server has sent a number of bytes on it:

- `reset`: the connection is aborted with a TCP RST (SO_LINGER 0), as a middlebox or a crashed
  peer does; rclone sees "connection reset by peer";
- `stall`: nothing moves either way for `seconds`, then the stream carries on (a network hiccup);
  `seconds=None` holds it until the relay closes (a peer that went silent);
- `throttle`: the server's bytes are paced at `rate` bytes per second (a slow link).

`outage("silent")` makes the whole store go quiet at once (open connections stop moving, new
ones are accepted and never answered: a paused server or a black-holed route); `outage("reset")`
resets every open and new connection (a server that went down); `outage(None)` ends it.

Bounded: it listens on 127.0.0.1 only and relays only to 127.0.0.1, holds at most
`max_connections` at once (more are refused), and closes itself and every connection after
`lifetime` seconds even if the test forgets to. `bytes_from_server` counts what the server sent
through it; `faulted` how many connections a fault hit.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType

import attrs

LOOPBACK = "127.0.0.1"


@attrs.frozen
class Fault:
    """What happens to one connection after the server has sent `after` bytes on it."""

    kind: str  #: "reset", "stall" or "throttle"
    after: int = 0
    seconds: float | None = None  #: stall length; None stalls until the relay closes
    rate: int = 0  #: throttle: server bytes per second

    def __attrs_post_init__(self) -> None:
        if self.kind not in ("reset", "stall", "throttle"):
            raise ValueError(f"unknown fault {self.kind!r}")
        if self.kind == "throttle" and self.rate <= 0:
            raise ValueError("a throttle needs a positive rate")


def first_connections(count: int, fault: Fault) -> Callable[[int], Fault | None]:
    """A plan: `fault` on the first `count` connections on which the server sends more than
    `fault.after` bytes. Small answers (HEADs, listings) stay under that and pass untouched, so
    the fault lands mid-stream on the connections that carry an object's bytes."""
    return lambda index: fault if index < count else None


def every_connection(fault: Fault) -> Callable[[int], Fault | None]:
    return lambda index: fault


class FaultRelay:
    """Relays 127.0.0.1:`port` to 127.0.0.1:`upstream_port`, applying `plan(i)` to the i-th
    connection whose server side got past the fault's `after` bytes (0-based, in that order)."""

    def __init__(self, upstream_port: int, plan: Callable[[int], Fault | None] | None = None, *,
                 lifetime: float = 600.0, max_connections: int = 128) -> None:
        self.upstream = (LOOPBACK, upstream_port)
        self.plan = plan or (lambda index: None)
        self.max_connections = max_connections
        self.bytes_from_server = 0
        self.faulted = 0
        self._eligible = 0  #: connections that reached a fault's threshold so far
        self._outage: str | None = None
        self._quiet = threading.Event()  #: set while the outage is "silent"
        self._held: set[socket.socket] = set()  #: accepted during a silent outage, never relayed
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = threading.Event()
        self._listener = socket.create_server((LOOPBACK, 0), backlog=64)
        self.port = int(self._listener.getsockname()[1])
        self._timer = threading.Timer(lifetime, self.close)
        self._timer.daemon = True
        self._timer.start()
        self._acceptor = threading.Thread(target=self._accept, name="fault-relay", daemon=True)
        self._acceptor.start()

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def set_plan(self, plan: Callable[[int], Fault | None]) -> None:
        """Change what later connections meet (counting starts again from 0)."""
        with self._lock:
            self.plan = plan
            self._eligible = 0

    def outage(self, kind: str | None) -> None:
        """Take the whole store away ("silent" or "reset") or bring it back (None)."""
        if kind not in ("silent", "reset", None):
            raise ValueError(f"unknown outage {kind!r}")
        with self._lock:
            self._outage = kind
            doomed = list(self._open) if kind == "reset" else []
            if kind == "reset":
                self._open.clear()
            if kind is None:  # what the silent store held is reset: its clients connect again
                doomed, self._held = list(self._held), set()
                self._open.difference_update(doomed)
        if kind == "silent":
            self._quiet.set()
        else:
            self._quiet.clear()
        for s in doomed:
            _abort(s)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                crowded = len(self._open) >= 2 * self.max_connections
                outage = self._outage
            if crowded or self._closed.is_set() or outage == "reset":
                _abort(client)
                continue
            if outage == "silent":  # accepted by the kernel, never answered; dropped when it ends
                with self._lock:
                    self._open.add(client)
                    self._held.add(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                _abort(client)  # upstream down: the client sees what a dead server gives, a reset
                continue
            with self._lock:
                if self._closed.is_set():
                    _abort(client)
                    server.close()
                    continue
                self._open.update({client, server})
            link = _Link(self, client, server)
            threading.Thread(target=link.upload, name="fault-relay-up", daemon=True).start()
            threading.Thread(target=link.download, name="fault-relay-down", daemon=True).start()

    def _next(self) -> Fault | None:
        """The fault the next connection to pass its threshold would meet (a peek)."""
        with self._lock:
            return self.plan(self._eligible)

    def _claim(self) -> Fault | None:
        """A connection passed the threshold of `_next()`: count it and take its fault (which may
        differ from the peek when another connection got there first)."""
        with self._lock:
            fault = self.plan(self._eligible)
            self._eligible += 1
            if fault is not None:
                self.faulted += 1
            return fault

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._open.discard(s)

    def close(self) -> None:
        """Stop accepting and abort every open connection; safe to call twice."""
        self._closed.set()
        self._timer.cancel()
        _shut(self._listener, socket.SHUT_RDWR)  # wakes the blocked accept, which would hold the socket open
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            doomed = list(self._open)
            self._open.clear()
        for s in doomed:
            _abort(s)

    def __enter__(self) -> FaultRelay:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _Link:
    """One relayed connection: a thread each way; the fault acts on the server-to-client side."""

    def __init__(self, relay: FaultRelay, client: socket.socket, server: socket.socket) -> None:
        self.relay = relay
        self.client = client
        self.server = server
        self.moving = threading.Event()  #: cleared while stalled: the upload side waits too
        self.moving.set()

    def _hold(self) -> bool:
        """Wait while this link is stalled or the store is silent; False once the relay closed."""
        relay = self.relay
        while not self.moving.is_set() or relay._quiet.is_set():
            if relay._closed.wait(0.05):
                return False
        return not relay._closed.is_set()

    def upload(self) -> None:
        try:
            while chunk := self.client.recv(1 << 16):
                if not self._hold():
                    return
                self.server.sendall(chunk)
        except OSError:
            pass
        finally:
            _shut(self.server, socket.SHUT_WR)

    def download(self) -> None:
        relay = self.relay
        sent = 0
        fault: Fault | None = None
        decided = False
        try:
            while True:
                chunk = self.server.recv(1 << 15)
                if not chunk:
                    break
                if not self._hold():
                    return
                if not decided:
                    peek = relay._next()
                    if peek is None:
                        decided = True  # plans are "the first N": nothing is left for this one
                    elif sent + len(chunk) > peek.after:
                        decided = True
                        fault = relay._claim()
                if fault is not None and sent + len(chunk) > fault.after:
                    head = max(fault.after - sent, 0)
                    if head:
                        self.client.sendall(chunk[:head])
                        sent += head
                        with relay._lock:
                            relay.bytes_from_server += head
                        chunk = chunk[head:]
                    if fault.kind == "reset":
                        _abort(self.client)
                        _abort(self.server)
                        return
                    if fault.kind == "stall":
                        self.moving.clear()
                        if fault.seconds is None:
                            relay._closed.wait()
                            return
                        if relay._closed.wait(fault.seconds):
                            return
                        self.moving.set()
                        fault = None
                    elif fault.kind == "throttle":
                        self._paced(chunk, fault.rate)
                        sent += len(chunk)
                        continue
                self.client.sendall(chunk)
                sent += len(chunk)
                with relay._lock:
                    relay.bytes_from_server += len(chunk)
        except OSError:
            pass
        finally:
            _shut(self.client, socket.SHUT_WR)
            relay._forget(self.client, self.server)
            self.moving.set()

    def _paced(self, chunk: bytes, rate: int) -> None:
        step = max(rate // 20, 1)
        for start in range(0, len(chunk), step):
            piece = chunk[start:start + step]
            self.client.sendall(piece)
            with self.relay._lock:
                self.relay.bytes_from_server += len(piece)
            if self.relay._closed.wait(len(piece) / rate):
                raise OSError("relay closed")


def _abort(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN.

    The kernel closes a socket only once no call is inside it: the other thread's blocked `recv`
    would hold it open (and the RST back) for as long as the peer stays quiet. `SHUT_RD` wakes that
    `recv` without sending anything; the close after it then sends the RST.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _shut(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass
