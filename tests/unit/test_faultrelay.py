"""The fault-injecting relay of the integration tests does what it says: a fault test that silently
injected nothing (or a reset that never reached the client, as a close racing a blocked recv gives)
would prove nothing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from testkit.faultrelay import Fault, FaultRelay, first_connections

SIZE = 2_000_000


@pytest.fixture
def upstream() -> Iterator[int]:
    """A loopback server that answers any request with SIZE bytes and keeps the connection open."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(16)
                conn.sendall(b"x" * SIZE)
                time.sleep(3)
            except OSError:
                pass

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _fetch(port: int, timeout: float = 10) -> tuple[int, str]:
    """Bytes received and how the stream ended ("all", "reset", "timeout")."""
    got = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(b"GET")
        try:
            while got < SIZE:
                chunk = client.recv(1 << 16)
                if not chunk:
                    return got, "eof"
                got += len(chunk)
        except ConnectionResetError:
            return got, "reset"
        except TimeoutError:
            return got, "timeout"
    return got, "all"


def test_a_reset_reaches_the_client_after_the_bytes_it_was_given(upstream: int) -> None:
    with FaultRelay(upstream, first_connections(1, Fault("reset", after=500_000))) as relay:
        got, ended = _fetch(relay.port)
        # the relay forwarded exactly the bytes it was told to, then reset; the client's kernel
        # drops what the client had not read yet when the RST lands (a loaded machine reads late)
        assert (relay.bytes_from_server, ended) == (500_000, "reset")
        assert got <= 500_000
        assert _fetch(relay.port) == (SIZE, "all")  # only the first connection
        assert relay.faulted == 1


def test_a_stall_holds_the_stream_then_lets_it_go(upstream: int) -> None:
    with FaultRelay(upstream, first_connections(1, Fault("stall", after=500_000, seconds=1.0))) as relay:
        started = time.monotonic()
        assert _fetch(relay.port) == (SIZE, "all")
        assert time.monotonic() - started >= 1.0


def test_a_silent_connection_stays_open_and_quiet(upstream: int) -> None:
    with FaultRelay(upstream, first_connections(1, Fault("stall", after=500_000))) as relay:
        assert _fetch(relay.port, timeout=1.5) == (500_000, "timeout")


def test_an_outage_resets_new_connections_until_it_ends(upstream: int) -> None:
    with FaultRelay(upstream) as relay:
        relay.outage("reset")
        try:  # accepted by the kernel, then reset: at the send or at the first read
            ended = _fetch(relay.port)[1]
        except ConnectionError:
            ended = "reset"
        assert ended == "reset"
        relay.outage(None)
        assert _fetch(relay.port) == (SIZE, "all")


def test_it_listens_on_loopback_only_and_closes_itself(upstream: int) -> None:
    relay = FaultRelay(upstream, lifetime=0.5)
    assert relay.endpoint.startswith("http://127.0.0.1:")
    time.sleep(1.0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", relay.port), timeout=2).close()
