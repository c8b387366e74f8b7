"""Writing one stream to a remote with `rclone rcat`: the `write` capability of both rclone backends.

The destination is checked before the caller writes a byte: the URI must map to a remote, the
remote's server must answer (`check_reachable`), and `rclone lsjson --stat` must find either
nothing there yet or a file (never a folder); what rclone says on failure is explained in one
line. Then `rclone rcat` reads the stream on its stdin and uploads it; the object appears when
rcat ends cleanly, and stopping rcat early leaves none.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from typing import IO, Any

from vmafx_core.errors import BadInput, JobFailed, Unreachable
from vmafx_core.process import Child
from vmafx_core.types import PrepareContext
from vmafx_rclone_common.endpoint import check_reachable, find_endpoint
from vmafx_rclone_common.launch import explain_storage_error, last_error, secret_values
from vmafx_rclone_common.settings import RcloneSettings
from vmafx_rclone_common.uris import RemotePath, uri_to_display

#: rclone's exit codes for "directory not found" and "file not found": nothing there yet
_NOT_FOUND = (3, 4)
#: seconds `rclone lsjson --stat` and the end of an upload may take
CHECK_TIMEOUT_S = 60.0
FINISH_TIMEOUT_S = 120.0


class _Upload:
    """rcat's stdin as a file object: a write that fails says what rclone said, in one line."""

    def __init__(self, child: Child, shown: str) -> None:
        self.child = child
        self.shown = shown
        assert child.proc.stdin is not None
        self.pipe: IO[bytes] = child.proc.stdin

    def write(self, data: bytes) -> int:
        try:
            return self.pipe.write(data)
        except OSError as exc:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.child.wait(timeout=5)
            raise JobFailed(f"{self.shown}: rclone rcat stopped taking data ({exc.strerror}): "
                            f"{last_error(self.child.tail())}", detail=self.child.tail(10) or None) from None

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self.pipe.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.pipe.close()


def check_destination(settings: RcloneSettings, target: RemotePath, shown: str, timeout: float) -> None:
    """Raise one clear error when `target` cannot take a new file; return when it can."""
    endpoint = find_endpoint(target.remote_name, settings.config, settings.environ)
    if endpoint is not None:
        check_reachable(endpoint, subject=shown, remote=target.remote_name, time_left=timeout)
    out, tail = _lsjson(settings, target, shown, timeout, "--stat")
    if out.returncode == 0:
        facts = _json(out.stdout)
        if isinstance(facts, dict) and facts.get("IsDir"):
            # on object storage every path is a folder to stat; a real one holds something
            listed, _ = _lsjson(settings, target, shown, timeout, "--max-depth", "1", "--no-modtime",
                                "--no-mimetype")
            if listed.returncode == 0 and _json(listed.stdout):
                raise BadInput(f"{shown}: is a folder; give a file name")
        return
    if out.returncode in _NOT_FOUND:
        return  # nothing there yet: rcat creates it (a missing bucket too, as rclone does)
    error = explain_storage_error(tail, subject=shown, remote_name=target.remote_name,
                                  config_hint=settings.config_hint(), scheme=target.scheme)
    raise error or JobFailed(f"{shown}: rclone cannot check the destination (exit {out.returncode}): "
                             f"{last_error(tail)}", detail=tail or None)


def _lsjson(settings: RcloneSettings, target: RemotePath, shown: str, timeout: float,
            *flags: str) -> tuple[subprocess.CompletedProcess[str], str]:
    env = settings.env()
    try:
        out = subprocess.run([settings.binary, "lsjson", *flags, "--low-level-retries", "2", "--retries", "1",
                              target.spec], capture_output=True, text=True, timeout=timeout, env=env,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Unreachable(f"{shown}: the storage of remote {target.remote_name!r} did not answer within "
                          f"{timeout:g}s", retryable=False) from None
    return out, _scrub(out.stderr, env)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _scrub(text: str, env: dict[str, str]) -> str:
    for secret in secret_values(env):
        text = text.replace(secret, "***")
    return text


@contextlib.contextmanager
def write_stream(destination: str, context: PrepareContext) -> Iterator[IO[bytes]]:
    """`StorageBackend.write` for rclone: check the destination, then stream into `rclone rcat`."""
    settings = RcloneSettings.from_context(context)
    target = settings.resolve(destination)
    shown = uri_to_display(destination)
    check_destination(settings, target, shown, max(context.seconds_left(CHECK_TIMEOUT_S), 1.0))
    env = settings.env()
    try:
        child = Child([settings.binary, "rcat", target.spec], name="rclone rcat", env=env,
                      stdin=subprocess.PIPE, secrets=secret_values(env))
    except OSError as exc:
        raise JobFailed(f"{shown}: rclone {settings.binary} does not run: {exc.strerror}") from None
    upload = _Upload(child, shown)
    try:
        yield upload  # type: ignore[misc]  # a write-only file object: write, flush, close
    except BaseException:
        upload.close()
        child.stop()
        raise
    upload.close()
    try:
        code = child.wait(timeout=FINISH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.stop()
        raise JobFailed(f"{shown}: rclone rcat did not finish the upload within {FINISH_TIMEOUT_S:g}s") from None
    finally:
        child.stop()
    if code != 0:
        tail = child.tail()
        error = explain_storage_error(tail, subject=shown, remote_name=target.remote_name,
                                      config_hint=settings.config_hint(), scheme=target.scheme)
        raise JobFailed(error.message if error else f"{shown}: rclone rcat failed (exit {code}): {last_error(tail)}",
                        detail=tail or None)
