"""Serving a job's remote inputs to ffmpeg through `rclone serve http` on loopback.

One server per remote root (see `vmafx_rclone_common.group_by_root`): reference and distorted in
one bucket share a server. Each server binds 127.0.0.1:0 and reports the port the OS gave it in
its "HTTP Server started on [...]" line, so there is no pick-a-port-then-release race. A random
user and password per job reach rclone only through its environment, and a random base URL keeps
even the path unguessable. Every input is checked with a HEAD first, because ffmpeg reports every
HTTP failure as the same exit code with the status buried in its stderr.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import attrs
from vmafx_rclone_common import (
    RcloneProcess,
    RcloneSettings,
    RemotePath,
    RemoteRoot,
    group_by_root,
    last_error,
    stop_all,
    uri_to_display,
)
from vmafx_rclone_common.integrity import served_mismatch

from vmafx_core.errors import BadInput, JobFailed, Unreachable, VmafxError
from vmafx_core.types import InputRequest, PrepareContext, PreparedInput
from vmafx_rclone_http.options import DEFAULT_BUFFER_SIZE, DEFAULT_RW_TIMEOUT, OPTION_BUFFER_SIZE, OPTION_RW_TIMEOUT
from vmafx_rclone_http.options import SIZE as _SIZE

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

_STARTED = re.compile(r"HTTP Server started on \[(?P<urls>[^\]]*)\]")
_PORT = re.compile(r"http://127\.0\.0\.1:(?P<port>\d+)/")

#: serve settings a user's environment must not change: auth, TLS and listening are vmafx's
_DROP_ENV = ("RCLONE_ADDR", "RCLONE_USER", "RCLONE_PASS", "RCLONE_BASEURL", "RCLONE_HTPASSWD",
             "RCLONE_AUTH_PROXY", "RCLONE_USER_FROM_HEADER", "RCLONE_CERT", "RCLONE_KEY", "RCLONE_CLIENT_CA",
             "RCLONE_MIN_TLS_VERSION", "RCLONE_REALM", "RCLONE_SALT", "RCLONE_TEMPLATE",
             "RCLONE_ALLOW_ORIGIN", "RCLONE_RESPONSE_HEADER", "RCLONE_DISABLE_DIR_LIST")


@attrs.frozen
class HttpOptions:
    """The storage options this backend reads besides the common rclone ones."""

    buffer_size: str = DEFAULT_BUFFER_SIZE  #: rclone's in-memory read-ahead per open file
    rw_timeout: float = DEFAULT_RW_TIMEOUT  #: seconds ffmpeg waits on a silent connection

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HttpOptions:
        buffer_size = str(options.get(OPTION_BUFFER_SIZE, DEFAULT_BUFFER_SIZE))
        if not _SIZE.match(buffer_size):
            raise BadInput(f"storage option {OPTION_BUFFER_SIZE}: {buffer_size!r} is not a size like 4Mi")
        raw_timeout = options.get(OPTION_RW_TIMEOUT, DEFAULT_RW_TIMEOUT)
        try:
            rw_timeout = float(raw_timeout)
        except (TypeError, ValueError):
            rw_timeout = -1.0
        if not rw_timeout > 0:
            raise BadInput(f"storage option {OPTION_RW_TIMEOUT}: {raw_timeout!r} is not a positive number of "
                           "seconds")
        return cls(buffer_size=buffer_size, rw_timeout=rw_timeout)

    def ffmpeg_input_options(self) -> tuple[str, ...]:
        """ffmpeg http input options: bounded waits, and resuming with a Range request after a stall.

        ffmpeg's http waits forever by default; `-reconnect` with `-reconnect_on_network_error`
        resumes a dropped or timed-out read where it stopped instead of ending the stream early.
        `-http_proxy none` keeps an `$http_proxy` of the environment from routing loopback requests
        (and the per-job credential) through a proxy: ffmpeg only uses values starting http://.
        """
        return ("-rw_timeout", str(int(self.rw_timeout * 1_000_000)),
                "-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_delay_max", "10",
                "-http_proxy", "none")


@attrs.frozen
class Credentials:
    """The per-job user, password and base URL; only the password is a secret."""

    user: str
    password: str
    baseurl: str  #: "/<random>"

    @classmethod
    def new(cls) -> Credentials:
        return cls(user="vmafx-" + secrets.token_hex(4), password=secrets.token_hex(24),
                   baseurl="/" + secrets.token_hex(8))

    def env(self) -> dict[str, str]:
        return {"RCLONE_USER": self.user, "RCLONE_PASS": self.password, "RCLONE_BASEURL": self.baseurl}

    def authorization(self) -> str:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


@attrs.frozen
class Server:
    """A ready `rclone serve http` and the root it serves."""

    process: RcloneProcess
    root: RemoteRoot
    port: int

    def path(self, target: RemotePath, credentials: Credentials) -> str:
        """The percent-encoded request path of `target` (rclone decodes it back)."""
        return f"{credentials.baseurl}/{quote(self.root.relative(target), safe='/')}"


def serve_args(root: RemoteRoot, options: HttpOptions, network: Sequence[str]) -> list[str]:
    """The rclone argv (after the binary) for one server; it never holds a secret. `network` is
    `RcloneSettings.network_args()`: timeouts and retries, as the mount backend has them."""
    return [
        "serve", "http", root.spec,
        "--addr", f"{HOST}:0",  # the OS picks the port; rclone logs the one it bound
        "--read-only",
        "--vfs-cache-mode", "off",  # nothing written to local disk
        "--buffer-size", options.buffer_size,  # memory per open file stays small
        "--no-checksum",  # no hashing of what is read: a third of the CPU
        "--no-modtime",  # no extra metadata request per object for Last-Modified
        "--poll-interval", "0",  # no change polling: the job reads, nothing changes under it
        "--server-write-timeout", "0",  # the default 1h would cut long responses; 0 means none
        *network,
        "--log-level", "NOTICE",
    ]


def start_server(settings: RcloneSettings, root: RemoteRoot, targets: Sequence[RemotePath],
                 requests: Sequence[InputRequest], credentials: Credentials, options: HttpOptions,
                 timeout: float) -> Server:
    """Start one server for `root` and wait until it listens."""
    subject = " and ".join(f"{requests[i].role} {uri_to_display(requests[i].uri)}" for i in root.members)
    process = settings.start(serve_args(root, options, settings.network_args()), root=root,
                             targets=[targets[i] for i in root.members],
                             name="rclone serve http", timeout=timeout, subject=subject, ready_line=_STARTED,
                             extra_env=credentials.env(), drop_env=_DROP_ENV, secrets=(credentials.password,))
    assert process.ready_match is not None
    port = _PORT.search(process.ready_match.group("urls"))
    if port is None:
        process.stop()
        raise JobFailed(f"{subject}: rclone serve http did not say which port it listens on "
                        f"({process.ready_match.group(0)})", detail=process.tail())
    log.debug("rclone serve http for %s listens on port %s (pid %d)", root.spec, port.group("port"),
              process.pid)
    return Server(process, root, int(port.group("port")))


def _head(server: Server, path: str, credentials: Credentials, timeout: float) -> http.client.HTTPResponse:
    # http.client, not urllib: urllib would honour $http_proxy and send the credential to a proxy
    connection = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
    try:
        connection.request("HEAD", path, headers={"Authorization": credentials.authorization()})
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def check_input(settings: RcloneSettings, server: Server, request: InputRequest, target: RemotePath,
                credentials: Credentials, options: HttpOptions, timeout: float,
                identities: Callable[[RemotePath], str | None] | None = None) -> PreparedInput:
    """HEAD the input through rclone and turn the answer into a PreparedInput or one clear error."""
    display = uri_to_display(request.uri)
    subject = f"{request.role} {display}"
    path = server.path(target, credentials)
    try:
        response = _head(server, path, credentials, timeout)
    except (OSError, http.client.HTTPException) as exc:
        raise _no_answer(settings, server, subject, target, exc, timeout) from None
    status = response.status
    if status == 200:
        length = response.getheader("Content-Length")
        url = f"http://{credentials.user}:{credentials.password}@{HOST}:{server.port}{path}"
        return PreparedInput(role=request.role, url=url, display=display,
                             size=int(length) if length and length.isdigit() else None, url_has_secret=True,
                             input_options=options.ffmpeg_input_options(), secrets=(credentials.password,),
                             **server.process.watch_input(server.root.relative(target), target.remote_name),
                             integrity=lambda: served_mismatch(server.process),
                             identity=lambda: identities(target) if identities is not None
                             else settings.identity(target, timeout))
    if status == 404:
        if _is_folder(server, path, credentials, timeout):
            raise BadInput(f"{subject}: is a folder, not a video file")
        raise BadInput(f"{subject}: no such object (checked through rclone)")
    if status in (401, 403):
        raise JobFailed(f"{subject}: rclone refused vmafx's own per-job credential (HTTP {status})",
                        detail=server.process.tail() or None)
    tail = _wait_for_error_line(server.process)
    error = settings.explain(tail, subject=subject, target=target)
    if error is not None:
        raise error
    raise JobFailed(f"{subject}: rclone could not read it from remote {target.remote_name!r} "
                    f"(HTTP {status}{': ' + last_error(tail, 200) if tail else ''})", detail=tail or None)


def _is_folder(server: Server, path: str, credentials: Credentials, timeout: float) -> bool:
    try:
        return _head(server, path + "/", credentials, timeout).status == 200
    except (OSError, http.client.HTTPException):
        return False


def _wait_for_error_line(process: RcloneProcess, wait: float = 1.0) -> str:
    """rclone logs why it answered 5xx a moment after answering: give its stderr that moment."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and "ERROR" not in process.tail() and process.alive():
        time.sleep(0.02)
    return process.tail()


def _no_answer(settings: RcloneSettings, server: Server, subject: str, target: RemotePath, exc: Exception,
               timeout: float) -> VmafxError:
    if not server.process.alive():
        server.process.child.wait(2.0)
        tail = server.process.tail()
        error = settings.explain(tail, subject=subject, target=target)
        code = server.process.child.poll()
        return error or JobFailed(f"{subject}: rclone serve http exited with code {code} while checking "
                                  f"the input: {last_error(tail)}", detail=tail or None)
    tail = server.process.tail()
    if isinstance(exc, TimeoutError):
        error = settings.explain(tail, subject=subject, target=target)
        return error or Unreachable(f"{subject}: no answer from remote {target.remote_name!r} through rclone "
                                    f"within {round(timeout, 1):g}s (raise --prepare-timeout, "
                                    "limits.prepare_timeout in a job file, if the storage is just slow)",
                                    detail=tail or None)
    return JobFailed(f"{subject}: checking it through rclone failed: {exc}", detail=tail or None)


def _time_left(context: PrepareContext) -> float:
    """What is left of the job's preparation time, for the next wait (never quite zero)."""
    return max(context.seconds_left(), 0.1)


@contextlib.contextmanager
def prepare(inputs: Sequence[InputRequest], context: PrepareContext) -> Iterator[list[PreparedInput]]:
    """Serve all remote inputs of a job; yield what ffmpeg should open; stop every server on exit."""
    settings = RcloneSettings.from_context(context)
    options = HttpOptions.from_options(context.options)
    targets = [settings.resolve(request.uri) for request in inputs]
    roots = group_by_root(targets)
    credentials = Credentials.new()
    servers: list[Server] = []
    try:
        for root in roots:
            servers.append(start_server(settings, root, targets, inputs, credentials, options,
                                        _time_left(context)))
        prepared: list[PreparedInput | None] = [None] * len(inputs)
        identities = settings.identities(targets, _time_left(context))
        for server in servers:
            for index in server.root.members:
                prepared[index] = check_input(settings, server, inputs[index], targets[index], credentials,
                                              options, _time_left(context), identities)
        result = [p for p in prepared if p is not None]
        assert len(result) == len(inputs)
        yield result
    except BaseException:
        stop_all([s.process for s in servers], timeout=1.0)  # nobody waits for their answers any more
        raise
    died = [s for s in servers if not s.process.alive()]
    stop_all([s.process for s in servers])
    if died:
        server = died[0]
        raise JobFailed(f"rclone serve http for {uri_to_display(server.root.spec)} stopped during the job "
                        f"(exit code {server.process.child.poll()}): {last_error(server.process.tail())}",
                        detail=server.process.tail() or None)
