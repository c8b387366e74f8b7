"""`RcloneSettings`: everything an rclone backend decides once per job, in one object.

Both rclone plugins build one from the job's `PrepareContext` and then ask it to resolve URIs and
start rclone children, so binary lookup, config choice, the scheme map and the child environment
behave identically whichever plugin runs.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from vmafx_core.errors import VmafxError
from vmafx_core.types import Availability, PrepareContext
from vmafx_rclone_common.binary import find_rclone, rclone_version
from vmafx_rclone_common.config import ConfigChoice, child_environment, choose_config
from vmafx_rclone_common.endpoint import check_reachable, find_endpoint
from vmafx_rclone_common.launch import RcloneProcess, explain_storage_error, secret_values, start_rclone
from vmafx_rclone_common.options import DEFAULT_IO_TIMEOUT, LOW_LEVEL_RETRIES, io_timeout
from vmafx_rclone_common.uris import RemotePath, RemoteRoot, parse_uri, remote_map

log = logging.getLogger(__name__)


@attrs.frozen
class RcloneSettings:
    binary: str
    config: ConfigChoice
    remote_map: Mapping[str, str]
    environ: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ), repr=False)
    io_timeout: float = DEFAULT_IO_TIMEOUT  #: storage option `rclone_io_timeout`

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> RcloneSettings:
        """Resolve binary, config and scheme map from storage options and the environment."""
        environ = dict(os.environ if environ is None else environ)
        binary = find_rclone(options, environ)
        return cls(binary=binary, config=choose_config(options, environ, binary),
                   remote_map=remote_map(options, environ), environ=environ, io_timeout=io_timeout(options))

    @classmethod
    def from_context(cls, context: PrepareContext) -> RcloneSettings:
        return cls.from_options(context.options)

    def version(self) -> str:
        return rclone_version(self.binary)

    def resolve(self, uri: str) -> RemotePath:
        """The remote and path of `uri` under this job's scheme map; BadInput if it is not one."""
        return parse_uri(uri, self.remote_map)

    def network_args(self) -> list[str]:
        """How rclone waits on and retries the store, the same for a mount and a serve.

        rclone's own idle timeout is 5 minutes: a connection that went silent mid-stream (a
        dropped NAT entry, a reset that never arrived, a stalled server) held a FUSE read for that
        long, while ffmpeg's http client gave up on its own and reconnected. With `--timeout` a
        silent connection fails in `io_timeout` seconds and rclone re-reads from where it was
        (`--low-level-retries`); when every retry fails, rclone logs why and gives up, and the
        backend reports that (`RcloneProcess.read_failure`).
        """
        seconds = f"{self.io_timeout:g}s"
        return ["--timeout", seconds, "--contimeout", seconds, "--low-level-retries", str(LOW_LEVEL_RETRIES)]

    def config_hint(self) -> str:
        """Where remotes were looked up, for messages."""
        if self.config.has_file:
            return f"rclone config {self.config.path} from {self.config.source}"
        return "no rclone config file was found; remotes come only from RCLONE_CONFIG_* variables"

    def env(self, extra: Mapping[str, str] | None = None, drop: Iterable[str] = ()) -> dict[str, str]:
        """The child's environment; put secrets in `extra`, never in argv."""
        return child_environment(self.config, extra, drop, self.environ)

    def start(self, args: Sequence[str], *, root: RemoteRoot, targets: Sequence[RemotePath], name: str,
              timeout: float, subject: str | None = None, ready_line: re.Pattern[str] | None = None,
              notify: bool = False, ready_check: Callable[[], bool] | None = None,
              extra_env: Mapping[str, str] | None = None, drop_env: Iterable[str] = (),
              secrets: Sequence[str] = (), term_timeout: float = 5.0) -> RcloneProcess:
        """Start `rclone ARGS...` for `root` and wait until it is ready (see `start_rclone`).

        `targets` are the inputs under `root`; they only shape error messages (which remote and
        which URL scheme to name).
        """
        scheme = next((t.scheme for t in targets if t.scheme), None)
        remote_name = root.remote.split(",", 1)[0]
        endpoint = find_endpoint(remote_name, self.config, self.environ)
        if endpoint is not None:  # a refused connection is told in moments, not after rclone's retries
            check_reachable(endpoint, subject=subject or root.spec, remote=remote_name, time_left=timeout)
        return start_rclone([self.binary, *args], env=self.env(extra_env, drop_env), name=name,
                            target=root.spec, timeout=timeout, remote_name=root.remote.split(",", 1)[0],
                            ready_line=ready_line, notify=notify, ready_check=ready_check, secrets=secrets,
                            subject=subject, config_hint=self.config_hint(), scheme=scheme,
                            term_timeout=term_timeout)

    def identity(self, target: RemotePath, timeout: float = 30.0) -> str | None:
        """The object's identity as rclone lists it: remote path, size, server modification time, hashes.

        For the result cache (`PreparedInput.identity`): `rclone lsjson --stat --hash
        --use-server-modtime`, one listing request, no read of the object. On S3 the modification
        time is the object's LastModified (a re-upload changes it) and the MD5 is its ETag. None
        when rclone cannot say (then the job is not cached).
        """
        import json

        code, out, child = self.output(["lsjson", "--stat", "--hash", "--use-server-modtime", "--no-mimetype",
                                         "--low-level-retries", "2", target.spec], timeout)
        if code is None:
            log.warning("rclone did not list %s within %gs; not using the result cache", target.spec, timeout)
            return None
        if code != 0:
            log.warning("rclone could not list %s for the result cache: %s", target.spec, child.tail(3))
            return None
        try:
            entry = json.loads(out)
        except ValueError:
            return None
        return identity_line(target, entry) if isinstance(entry, dict) else None

    def output(self, args: Sequence[str], timeout: float, name: str = "rclone lsjson") -> tuple[int | None, bytes, Any]:
        """Run `rclone ARGS...` (credentials in its environment only) and read its stdout: (exit code,
        stdout, the `Child`, for its stderr tail); the code is None when it did not end within
        `timeout` (it is stopped then)."""
        import subprocess

        from vmafx_core.process import Child

        env = self.env()
        chunks: list[bytes] = []
        with Child([self.binary, *args], name=name, env=env, stdout=subprocess.PIPE,
                   secrets=secret_values(env)) as child:
            stdout = child.proc.stdout
            assert stdout is not None
            reader = threading.Thread(target=lambda: chunks.append(stdout.read()), daemon=True)
            reader.start()
            try:
                code: int | None = child.wait(timeout)
            except subprocess.TimeoutExpired:
                return None, b"", child  # the context's exit stops it
            reader.join(timeout=5)
        return code, b"".join(chunks), child

    def identities(self, targets: Sequence[RemotePath], timeout: float = 30.0) -> Identities:
        """The identities of one preparation's inputs, looked up together (see `Identities`)."""
        return Identities(self, list(targets), timeout)

    def explain(self, tail: str, *, subject: str, target: RemotePath) -> VmafxError | None:
        """`explain_storage_error` with this job's config hint; None when nothing is recognised."""
        return explain_storage_error(tail, subject=subject, remote_name=target.remote_name,
                                     config_hint=self.config_hint(), scheme=target.scheme)


def rclone_availability(options: Mapping[str, Any] | None = None) -> Availability:
    """Usable when the rclone binary is found and `rclone version` runs; the reason says why not."""
    try:
        binary = find_rclone(options)
        version = rclone_version(binary)
    except VmafxError as exc:
        return Availability(False, exc.message)
    return Availability(True, f"rclone {version} at {binary}")


class Identities:
    """`RcloneSettings.identity` for all inputs of one preparation, asked of rclone at once.

    Several distorted scored against one reference are prepared together; the first identity asked
    for lists every target that shares its folder with another in one `rclone lsjson --files-from-raw
    -` (rclone then looks each named object up directly, as `--stat` does, instead of listing the
    folder), so a group of N objects costs one rclone process, not N. A target the listing did not
    give (alone in its folder, or the listing failed) is asked on its own; the identity string is
    the same either way.
    """

    def __init__(self, settings: RcloneSettings, targets: list[RemotePath], timeout: float) -> None:
        self.settings = settings
        self.targets = targets
        self.timeout = timeout
        self._lock = threading.Lock()
        self._listed: dict[str, str] | None = None

    def __call__(self, target: RemotePath) -> str | None:
        with self._lock:
            if self._listed is None:
                self._listed = self._list_together()
            found = self._listed.get(target.spec)
        return found if found is not None else self.settings.identity(target, self.timeout)

    def _list_together(self) -> dict[str, str]:
        folders: dict[str, list[RemotePath]] = {}
        for target in self.targets:
            folder, _, name = target.path.rpartition("/")
            if folder and name:
                folders.setdefault(f"{target.remote}:{folder}", []).append(target)
        found: dict[str, str] = {}
        for folder, members in folders.items():
            names = sorted({t.path.rpartition("/")[2] for t in members})
            if len(names) < 2:
                continue
            entries = self._lsjson(folder, names)
            for target in members:
                entry = entries.get(target.path.rpartition("/")[2])
                line = identity_line(target, entry) if entry is not None else None
                if line is not None:
                    found[target.spec] = line
        return found

    def _lsjson(self, folder: str, names: list[str]) -> dict[str, dict[str, Any]]:
        import json
        import subprocess

        from vmafx_core.process import Child

        argv = [self.settings.binary, "lsjson", "--files-only", "--hash", "--use-server-modtime", "--no-mimetype",
                "--low-level-retries", "2", "--files-from-raw", "-", folder]
        chunks: list[bytes] = []
        with Child(argv, name="rclone lsjson", env=self.settings.env(), stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE) as child:
            stdin, stdout = child.proc.stdin, child.proc.stdout
            assert stdin is not None and stdout is not None
            reader = threading.Thread(target=lambda: chunks.append(stdout.read()), daemon=True)
            reader.start()
            try:
                stdin.write("".join(n + "\n" for n in names).encode("utf-8"))
                stdin.close()
                code = child.wait(self.timeout)
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.info("rclone could not list %s together (%s); asking for each", folder, exc)
                return {}
            reader.join(timeout=5)
        if code != 0:
            log.info("rclone could not list %s together: %s; asking for each", folder, child.tail(3))
            return {}
        try:
            listing = json.loads(b"".join(chunks))
        except ValueError:
            return {}
        if not isinstance(listing, list):
            return {}
        return {e["Path"]: e for e in listing if isinstance(e, dict) and isinstance(e.get("Path"), str)}


def identity_line(target: RemotePath, entry: Mapping[str, Any]) -> str | None:
    """The identity string of one `rclone lsjson` entry, or None when it does not pin the object down."""
    import json

    if entry.get("IsDir") or "Size" not in entry or not entry.get("ModTime"):
        return None
    hashes = entry.get("Hashes") if isinstance(entry.get("Hashes"), dict) else {}
    return (f"rclone:{target.spec}|size={entry['Size']}|modtime={entry['ModTime']}"
            f"|hashes={json.dumps(hashes, sort_keys=True)}")
