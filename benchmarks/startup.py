"""Item 4: per-job storage start-up, measured in-process through each backend's own prepare().

One sample: enter the backend's `prepare(inputs, context)` context manager for a job's two inputs
(reference and distorted in one bucket, as a real job), then read the first byte of each prepared
URL the way ffmpeg would open it: a `GET` with `Range: bytes=0-0` and the per-job credential for an
http URL, `open()` + `read(1)` of the path for a `file:` URL (the mount). The time from the start
until both first bytes arrived is the start-up; leaving the context (stopping the server,
unmounting) is timed on its own.
"""

from __future__ import annotations

import base64
import http.client
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from vmafx_core.plugins import Plugins
from vmafx_core.types import InputRequest, PrepareContext, PreparedInput


def first_byte(prepared: PreparedInput) -> bytes:
    """Read byte 0 of one prepared input as ffmpeg would reach it."""
    url = prepared.url
    if url.startswith("http://"):
        parts = urlsplit(url)
        token = base64.b64encode(f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode())
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", path, headers={"Range": "bytes=0-0", "Authorization": f"Basic {token.decode()}"})
            response = connection.getresponse()
            body = response.read()
            if response.status != 206:
                raise RuntimeError(f"GET {prepared.display} with a Range: HTTP {response.status}")
            return body
        finally:
            connection.close()
    path = url[len("file:"):] if url.startswith("file:") else url
    with open(path, "rb") as fh:
        return fh.read(1)


def one_sample(backend: Any, inputs: Sequence[InputRequest], context: PrepareContext) -> dict[str, float]:
    """Start-up (enter + first bytes) and teardown of one job's storage, in milliseconds."""
    started = time.perf_counter()
    manager = backend.prepare(inputs, context)
    prepared = manager.__enter__()
    try:
        ready = time.perf_counter()
        for p in prepared:
            if len(first_byte(p)) != 1:
                raise RuntimeError(f"{p.display}: no first byte")
        got_bytes = time.perf_counter()
    except BaseException as exc:
        manager.__exit__(type(exc), exc, exc.__traceback__)
        raise
    leaving = time.perf_counter()
    manager.__exit__(None, None, None)
    done = time.perf_counter()
    return {"startup_ms": (got_bytes - started) * 1000, "prepare_ms": (ready - started) * 1000,
            "first_byte_ms": (got_bytes - ready) * 1000, "teardown_ms": (done - leaving) * 1000}


def measure(modes: Mapping[str, Sequence[InputRequest]], samples: int, warmup: int = 1,
            log: Any = print) -> dict[str, dict[str, list[float]]]:
    """Interleave `samples` (after `warmup` discarded) start-ups of each backend; raw values per mode."""
    backends = {name: p.item for name, p in Plugins().storage_backends().items()}
    context = PrepareContext(options={}, ready_timeout=30.0)
    results: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    for i in range(warmup + samples):
        for mode, inputs in modes.items():
            sample = one_sample(backends[mode], inputs, context)
            if i < warmup:
                continue
            for key, value in sample.items():
                results[mode].setdefault(key, []).append(value)
        if i >= warmup:
            log("start-up " + ", ".join(f"{m} {results[m]['startup_ms'][-1]:.1f} ms" for m in modes))
    return results
