"""A quick look at whether a remote's server answers at all, before rclone is asked to reach it.

rclone retries a refused connection with growing pauses inside every request (its low-level
retries, which also carry a stream through short outages mid-job), so a wrong endpoint took close
to a minute to report. Where the remote names its server (`endpoint`, `url`, or `host` and `port`
in the config file or in `RCLONE_CONFIG_<NAME>_*` variables), one TCP connect says within
moments whether anything listens there. Remotes that name no server (AWS S3's default, GCS, ...)
are left to rclone and the job's preparation deadline.
"""

from __future__ import annotations

import configparser
import re
import socket
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import attrs

from vmafx_core.errors import Unreachable
from vmafx_rclone_common.config import ConfigChoice

#: connect attempts (a server that is just restarting gets a moment) and how long each may take
ATTEMPTS = 3
PAUSE_S = 0.5
CONNECT_TIMEOUT_S = 3.0
_DEFAULT_PORTS = {"http": 80, "https": 443, "sftp": 22, "ftp": 21, "ftps": 990}


@attrs.frozen
class Endpoint:
    host: str
    port: int
    shown: str  #: as the config spells it, for messages (never holds a credential)


def _settings(remote: str, config: ConfigChoice, environ: Mapping[str, str]) -> dict[str, str]:
    """The remote's keys from the config file, overridden by RCLONE_CONFIG_<NAME>_<KEY> variables."""
    found: dict[str, str] = {}
    if config.has_file:
        parser = configparser.RawConfigParser(strict=False, interpolation=None)
        try:
            parser.read(config.path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):  # encrypted or odd: rclone will say
            parser = configparser.RawConfigParser()
        if parser.has_section(remote):
            found.update({k.lower(): v.strip() for k, v in parser.items(remote)})
    prefix = "RCLONE_CONFIG_" + re.sub(r"[^A-Za-z0-9]", "_", remote).upper() + "_"
    for key, value in environ.items():
        if key.startswith(prefix):
            found[key[len(prefix):].lower()] = value
    return found


def find_endpoint(remote: str, config: ConfigChoice, environ: Mapping[str, str]) -> Endpoint | None:
    """The host and port the remote's server listens on, where its settings name one."""
    if not remote or remote.startswith(":"):  # a connection-string remote: rclone parses it
        return None
    keys = _settings(remote, config, environ)
    kind = keys.get("type", "")
    url = keys.get("endpoint") or keys.get("url")
    if url:
        parts = urlsplit(url if "://" in url else f"{'https' if kind == 's3' else 'http'}://{url}")
        if not parts.hostname:
            return None
        try:
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 443)
        except ValueError:
            return None
        return Endpoint(parts.hostname, port, f"{parts.scheme}://{parts.hostname}:{port}")
    host = keys.get("host")
    if host:
        try:
            port = int(keys.get("port") or _DEFAULT_PORTS.get(kind, 0))
        except ValueError:
            return None
        return Endpoint(host, port, f"{host}:{port}") if port else None
    return None


def check_reachable(endpoint: Endpoint, *, subject: str, remote: str, time_left: float) -> None:
    """Raise `Unreachable` when nothing listens at the endpoint or its name does not resolve.

    A connect that merely takes long is left to rclone (bounded by the preparation deadline).
    """
    refused: OSError | None = None
    deadline = time.monotonic() + max(time_left, 0.1)
    for attempt in range(ATTEMPTS):
        timeout = min(CONNECT_TIMEOUT_S, deadline - time.monotonic())
        if timeout <= 0:
            return
        try:
            with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout):
                return
        except socket.gaierror as exc:
            raise Unreachable(f"{subject}: the server of remote {remote!r}, {endpoint.shown}, has a name that "
                              f"does not resolve ({exc.strerror}); check its endpoint in the rclone config",
                              retryable=False) from None
        except (ConnectionRefusedError, OSError) as exc:
            if isinstance(exc, TimeoutError):
                return
            refused = exc
        if attempt + 1 < ATTEMPTS:
            time.sleep(min(PAUSE_S, max(deadline - time.monotonic(), 0)))
    assert refused is not None
    reason = "connection refused: nothing listens there" if isinstance(refused, ConnectionRefusedError) \
        else (refused.strerror or str(refused))
    raise Unreachable(f"{subject}: cannot reach the server of remote {remote!r} at {endpoint.shown} ({reason}); "
                      "check its endpoint in the rclone config and that the server runs", retryable=False)
