"""A loopback HTTP server, in this process, that serves a job's zip members with range requests.

Why HTTP and not a pipe: ffmpeg seeks (an MP4 whose index is at its end is read end first), and
over HTTP it seeks with Range requests exactly as it does on rclone's server. Why in-process: the
bytes come from a local file, so a thread is all it takes, and nothing can outlive the job (the
server is shut down and its threads joined when `prepare` exits, however it exits).

Only 127.0.0.1, a port the OS picks (bound before anyone is told it: no race), and a per-job random
password every request must carry (HTTP Basic), so other local users cannot read the members. The
password is in the URL vmafx hands ffmpeg, so the backend sets `url_has_secret`: vmafx passes the
URL on a pipe, never in argv, and scrubs the password from every message.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

from vmafx_zip.members import Member

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
USER = "vmafx"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 256 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the request threads: none outlives the job
    block_on_close = True

    def __init__(self, members: dict[str, Member], authorization: str) -> None:
        super().__init__((HOST, 0), _Handler)
        self.members = members
        self.authorization = authorization


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 20  # a client that stops reading cannot hold a thread (and the job's end) for long

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        log.debug("zip server: " + format, *args)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def _empty(self, status: int, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, *, body: bool) -> None:
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), self.server.authorization.encode()):
            self._empty(401, WWW_Authenticate='Basic realm="vmafx-zip"')
            return
        member = self.server.members.get(self.path.split("?", 1)[0])  # raw input: vmafx adds ?vmafx=.yuv
        if member is None:
            self._empty(404)
            return
        size = member.size
        start, end, status = 0, size - 1, 200
        wanted = _RANGE.match(self.headers.get("Range", "").strip())
        if wanted and (wanted.group(1) or wanted.group(2)):
            if wanted.group(1):
                start = int(wanted.group(1))
                end = min(int(wanted.group(2)), size - 1) if wanted.group(2) else size - 1
            else:  # the last N bytes
                start = max(0, size - int(wanted.group(2)))
            if start >= size or start > end:
                self._empty(416, Content_Range=f"bytes */{size}")
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return
        position = start
        try:
            while position <= end:
                data = member.read(position, min(_CHUNK, end + 1 - position))
                if not data:
                    break
                self.wfile.write(data)
                position += len(data)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            log.debug("zip server: the client left at byte %d of %s", position, member.name)  # a seek
        except Exception as exc:  # noqa: BLE001 - recorded by the member, reported by its integrity check
            log.debug("zip server: reading %s failed: %s", member.name, exc)
        if position <= end:
            self.close_connection = True  # the promised length was not sent: the client sees it short


class MemberServer:
    """The running server for one job's members, and the URL of each."""

    def __init__(self, members: list[Member]) -> None:
        self.password = secrets.token_hex(24)
        token = "/" + secrets.token_hex(8)
        self.paths = [f"{token}/{index}/{quote(member.name.rsplit('/', 1)[-1])}"
                      for index, member in enumerate(members)]
        basic = base64.b64encode(f"{USER}:{self.password}".encode()).decode("ascii")
        self._server = _Server(dict(zip(self.paths, members, strict=True)), f"Basic {basic}")
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="vmafx-zip-server", daemon=True)
        self._thread.start()

    def url(self, index: int) -> str:
        return f"http://{USER}:{self.password}@{HOST}:{self.port}{self.paths[index]}"

    def problem(self) -> str | None:
        """`PreparedInput.health`: None while the server thread runs."""
        return None if self._thread.is_alive() else "the zip member server stopped"

    def stop(self) -> None:
        """Stop serving and join every thread; idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
