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
from vmafx_rclone_common.launch import RcloneProcess, explain_storage_error, start_rclone
from vmafx_rclone_common.uris import RemotePath, RemoteRoot, parse_uri, remote_map

log = logging.getLogger(__name__)


@attrs.frozen
class RcloneSettings:
    binary: str
    config: ConfigChoice
    remote_map: Mapping[str, str]
    environ: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ), repr=False)

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> RcloneSettings:
        """Resolve binary, config and scheme map from storage options and the environment."""
        environ = dict(os.environ if environ is None else environ)
        binary = find_rclone(options, environ)
        return cls(binary=binary, config=choose_config(options, environ, binary),
                   remote_map=remote_map(options, environ), environ=environ)

    @classmethod
    def from_context(cls, context: PrepareContext) -> RcloneSettings:
        return cls.from_options(context.options)

    def version(self) -> str:
        return rclone_version(self.binary)

    def resolve(self, uri: str) -> RemotePath:
        """The remote and path of `uri` under this job's scheme map; BadInput if it is not one."""
        return parse_uri(uri, self.remote_map)

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
        import subprocess

        from vmafx_core.process import Child

        argv = [self.binary, "lsjson", "--stat", "--hash", "--use-server-modtime", "--no-mimetype",
                "--low-level-retries", "2", target.spec]
        chunks: list[bytes] = []
        with Child(argv, name="rclone lsjson", env=self.env(), stdout=subprocess.PIPE) as child:
            stdout = child.proc.stdout
            assert stdout is not None
            reader = threading.Thread(target=lambda: chunks.append(stdout.read()), daemon=True)
            reader.start()
            try:
                code = child.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("rclone did not list %s within %gs; not using the result cache", target.spec, timeout)
                return None  # the context's exit stops it
            reader.join(timeout=5)
        out = b"".join(chunks)
        if code != 0:
            log.warning("rclone could not list %s for the result cache: %s", target.spec, child.tail(3))
            return None
        try:
            entry = json.loads(out)
        except ValueError:
            return None
        if not isinstance(entry, dict) or entry.get("IsDir") or "Size" not in entry or not entry.get("ModTime"):
            return None
        hashes = entry.get("Hashes") if isinstance(entry.get("Hashes"), dict) else {}
        return (f"rclone:{target.spec}|size={entry['Size']}|modtime={entry['ModTime']}"
                f"|hashes={json.dumps(hashes, sort_keys=True)}")

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
