"""From the URIs users write to rclone remotes and paths, and which inputs can share one rclone.

Accepted forms:

- rclone syntax `remote:path`, `remote,param=value:path`, `:backend:path`. A single letter before
  the colon is a Windows drive, and anything with a slash before the colon is a local path: neither
  is ours.
- URL style `s3://bucket/key`, `gs://bucket/key`, `azblob://container/key`: the scheme is mapped
  to a named remote (defaults s3->s3, gs->gcs, azblob->azblob; option `remote_map`, env
  `VMAFX_REMOTE_MAP="s3=myminio,gs=gcs"`). Keys are taken literally, as the AWS and gcloud CLIs
  do: no percent-decoding, and `#`, `?` and `%` are part of the key.
- `sftp://user@host[:port]/abs/path` (`/~/rel` for a path under the home folder): an on-the-fly
  `:sftp,host=H,user=U:` remote authenticating with the ssh agent or key settings from the
  environment, or, with `sftp=NAME` in the map, the named remote with host and user taken from the
  URI. A password in the URI is refused: it would end up in rclone's argv.

Connection-string parameters that look like secrets are refused for the same reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from vmafx_core.errors import BadInput

ENV_REMOTE_MAP = "VMAFX_REMOTE_MAP"
OPTION_REMOTE_MAP = "remote_map"
DEFAULT_REMOTE_MAP: Mapping[str, str] = {"s3": "s3", "gs": "gcs", "azblob": "azblob"}

#: schemes other backends (or ffmpeg itself) read; never claimed by the rclone backends
FOREIGN_SCHEMES = frozenset({"file", "http", "https"})

_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
#: a remote name as rclone allows it: letters, digits, `_ . + @ -` and inner spaces
_NAME = re.compile(r"^[\w.+@-](?:[\w.+@ -]*[\w.+@-])?$")
_BACKEND = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")
_SECRET_PARAM = re.compile(r"pass|secret|token|credential|sas|(^|_)key$|_key_|cookie|session|private|"
                           r"bearer|authorization")


@attrs.frozen
class RemotePath:
    """One input as rclone sees it: `remote` (without its colon) and a path inside it."""

    remote: str  #: e.g. "s3", ":sftp,host=h,user=u", "localt"
    path: str  #: e.g. "bucket/dir/key.mp4" or "/abs/dir/key.mp4"; never empty, never a folder
    uri: str  #: as the user wrote it
    scheme: str | None = None  #: the URL scheme the remote was mapped from, e.g. "s3"

    @property
    def spec(self) -> str:
        """What rclone is given: `remote:path`."""
        return f"{self.remote}:{self.path}"

    @property
    def remote_name(self) -> str:
        """The remote's name (or `:backend`) without connection-string parameters, for messages."""
        return self.remote.split(",", 1)[0]

    @property
    def segments(self) -> list[str]:
        return self.path.lstrip("/").split("/")

    @property
    def absolute(self) -> bool:
        return self.path.startswith("/")


# -- the scheme map ---------------------------------------------------------------------------------


def parse_remote_map(text: str, source: str = ENV_REMOTE_MAP) -> dict[str, str]:
    """`"s3=myminio,gs=gcs"` -> {"s3": "myminio", "gs": "gcs"}; BadInput naming `source` if malformed."""
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        scheme, sep, remote = item.partition("=")
        _add_mapping(mapping, scheme, remote if sep else None, source)
    return mapping


def _add_mapping(mapping: dict[str, str], scheme: Any, remote: Any, source: str) -> None:
    scheme = str(scheme).strip().lower().removesuffix("://")
    remote = None if remote is None else str(remote).strip().removesuffix(":")
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) or not remote:
        raise BadInput(f"{source}: expected SCHEME=REMOTE pairs like s3=myminio, got {scheme!r}={remote!r}")
    if scheme in FOREIGN_SCHEMES:
        raise BadInput(f"{source}: {scheme}:// is not read through rclone and cannot be mapped")
    if not _NAME.match(remote):
        raise BadInput(f"{source}: {remote!r} is not an rclone remote name")
    mapping[scheme] = remote


def remote_map(options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
               ) -> dict[str, str]:
    """The scheme -> remote map: defaults, then `$VMAFX_REMOTE_MAP`, then the `remote_map` option."""
    environ = os.environ if environ is None else environ
    mapping = dict(DEFAULT_REMOTE_MAP)
    if environ.get(ENV_REMOTE_MAP):
        mapping.update(parse_remote_map(environ[ENV_REMOTE_MAP], ENV_REMOTE_MAP))
    given = (options or {}).get(OPTION_REMOTE_MAP)
    source = f"storage option {OPTION_REMOTE_MAP}"
    if isinstance(given, str):
        mapping.update(parse_remote_map(given, source))
    elif isinstance(given, Mapping):
        for scheme, remote in given.items():
            _add_mapping(mapping, scheme, remote, source)
    elif given is not None:
        raise BadInput(f"{source}: expected a table scheme -> remote or a string like 's3=myminio'")
    return mapping


# -- recognising and parsing ------------------------------------------------------------------------


def _split_remote(uri: str) -> tuple[str, str] | None:
    """Split rclone syntax into (remote, path) at the first colon outside quotes, or None.

    A slash in the name (before any `,param=`) makes it a local path, as rclone decides.
    """
    quote = ""
    in_params = False
    for i, ch in enumerate(uri):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'" and in_params:
            quote = ch
        elif ch == ",":
            in_params = True
        elif ch in "/\\" and not in_params:
            return None
        elif ch == ":" and i > 0:
            return uri[:i], uri[i + 1:]
    return None


def _params(remote: str) -> tuple[str, list[tuple[str, str]]]:
    """`name,k=v,k2="a,b"` -> ("name", [("k", "v"), ("k2", "a,b")])."""
    parts, current, quote = [], "", ""
    for ch in remote:
        if quote:
            if ch == quote:
                quote = ""
            else:
                current += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    pairs = []
    for part in parts[1:]:
        key, _, value = part.partition("=")
        pairs.append((key.strip().lower().replace("-", "_"), value))
    return parts[0], pairs


def _is_secret_param(key: str) -> bool:
    return bool(_SECRET_PARAM.search(key)) and not key.endswith("_file") and key != "env_auth"


def _rclone_syntax(uri: str) -> tuple[str, str] | None:
    """(remote, path) when `uri` is rclone's `remote:path` syntax, else None."""
    split = _split_remote(uri)
    if split is None:
        return None
    remote, path = split
    name, _ = _params(remote.removeprefix(":"))
    if remote.startswith(":"):
        return (remote, path) if _BACKEND.match(name) else None
    if len(name) < 2 or not _NAME.match(name):  # "C:" is a drive letter, not a remote
        return None
    return remote, path


def handles_uri(uri: str, options: Mapping[str, Any] | None = None) -> bool:
    """Whether an rclone backend should read `uri`: rclone syntax, `sftp://`, or a URL whose scheme
    is mapped to a remote (the defaults, `$VMAFX_REMOTE_MAP`, the job's `remote_map` option).

    Other schemes are left to the backends that own them (a third party's `zip://`): an unmapped
    one gets `install_hint`'s "map this scheme" line when no installed backend reads it.
    """
    url = _URL.match(uri)
    if url:
        scheme = url.group("scheme").lower()
        if scheme in FOREIGN_SCHEMES:
            return False
        return scheme == "sftp" or scheme in _known_schemes(options)
    return _rclone_syntax(uri) is not None


def _known_schemes(options: Mapping[str, Any] | None) -> set[str]:
    """The mapped schemes; with a malformed map, only the defaults (prepare then reports the map)."""
    try:
        return set(remote_map(options))
    except BadInput:
        return set(DEFAULT_REMOTE_MAP)


def _check_path(uri: str, path: str, *, what: str = "path") -> str:
    if not path or path == "/":
        raise BadInput(f"{uri_to_display(uri)}: no object named: the {what} is empty")
    if path.endswith("/"):
        raise BadInput(f"{uri_to_display(uri)}: names a folder (ends with '/'), not a video file")
    for segment in path.lstrip("/").split("/"):
        if segment in ("", ".", ".."):
            raise BadInput(f"{uri_to_display(uri)}: path segments '..', '.' and empty ones are not allowed")
    if "\n" in path or "\r" in path or "\0" in path:
        raise BadInput(f"{uri_to_display(uri)}: the path holds a control character")
    return path


def _check_params(uri: str, remote: str) -> None:
    _, pairs = _params(remote.removeprefix(":"))
    for key, _value in pairs:
        if _is_secret_param(key):
            raise BadInput(f"{uri_to_display(uri)}: connection-string parameter {key!r} looks like a secret, "
                           "which would be visible to every local user in rclone's command line; define "
                           "the remote in the rclone config or with RCLONE_CONFIG_<NAME>_* variables")


def parse_uri(uri: str, mapping: Mapping[str, str] | None = None) -> RemotePath:
    """The rclone remote and path for `uri`; BadInput with one line when it cannot be one."""
    mapping = DEFAULT_REMOTE_MAP if mapping is None else mapping
    url = _URL.match(uri)
    if url:
        scheme, rest = url.group("scheme").lower(), url.group("rest")
        if scheme in FOREIGN_SCHEMES:
            raise BadInput(f"{uri_to_display(uri)}: {scheme}:// is not read through rclone; "
                           "use the local storage")
        if scheme == "sftp":
            return _parse_sftp(uri, rest, mapping.get("sftp"))
        if scheme not in mapping:
            known = ", ".join(f"{s}://" for s in sorted(mapping))
            raise BadInput(f"{uri_to_display(uri)}: no rclone remote is mapped to {scheme}:// "
                           f"(mapped: {known}); add one with {ENV_REMOTE_MAP}={scheme}=REMOTE or the storage "
                           f"option {OPTION_REMOTE_MAP}")
        bucket, _, key = rest.partition("/")
        if not bucket or "@" in bucket or ":" in bucket:
            raise BadInput(f"{uri_to_display(uri)}: expected {scheme}://BUCKET/KEY")
        _check_path(uri, key, what="key")
        return RemotePath(mapping[scheme], f"{bucket}/{key}", uri, scheme)
    syntax = _rclone_syntax(uri)
    if syntax is None:
        raise BadInput(f"{uri!r} is neither rclone's remote:path nor a URL like s3://bucket/key")
    remote, path = syntax
    _check_params(uri, remote)
    return RemotePath(remote, _check_path(uri, path), uri)


def _parse_sftp(uri: str, rest: str, mapped: str | None) -> RemotePath:
    authority, slash, path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if ":" in userinfo:
        raise BadInput(f"{uri_to_display(uri)}: a password in an sftp:// URI would be visible in rclone's "
                       "command line; use an ssh key or agent, or a named remote "
                       "(VMAFX_REMOTE_MAP=sftp=NAME)")
    host, port = hostport, ""
    port_match = re.match(r"^(.*):(\d+)$", hostport)
    if port_match:
        host, port = port_match.groups()
    if not _HOST.match(host) or (at and not _USER.match(userinfo)):
        raise BadInput(f"{uri_to_display(uri)}: expected sftp://USER@HOST[:PORT]/PATH")
    if not slash:
        raise BadInput(f"{uri_to_display(uri)}: no path after the host")
    # sftp://host/abs/path is absolute; sftp://host/~/path is under the login's home folder
    path = path[2:] if path.startswith("~/") else "/" + path
    params = [f"host={host}"] + ([f"user={userinfo}"] if at else []) + ([f"port={port}"] if port else [])
    remote = f"{mapped},{','.join(params)}" if mapped else f":sftp,{','.join(params)}"
    return RemotePath(remote, _check_path(uri, path), uri, "sftp" if mapped else None)


def uri_to_display(uri: str) -> str:
    """`uri` as it may be shown, logged or stored: passwords in URLs and secret parameters masked."""
    url = _URL.match(uri)
    if url:
        rest = url.group("rest")
        authority, slash, tail = rest.partition("/")
        userinfo, at, hostport = authority.rpartition("@")
        if at and ":" in userinfo:
            authority = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
        return f"{url.group('scheme')}://{authority}{slash}{tail}"
    split = _split_remote(uri)
    if split is None:
        return uri
    remote, path = split
    name, pairs = _params(remote.removeprefix(":"))
    if not any(_is_secret_param(k) for k, _ in pairs):
        return uri
    shown = ",".join([name] + [f"{k}=***" if _is_secret_param(k) else f"{k}={v}" for k, v in pairs])
    return f"{':' if remote.startswith(':') else ''}{shown}:{path}"


# -- sharing one rclone between inputs --------------------------------------------------------------


@attrs.frozen
class RemoteRoot:
    """A folder one rclone serves or mounts, and which of the job's inputs live under it."""

    remote: str
    folder: str  #: "" (the remote's root), "bucket/dir" or "/abs/dir"
    members: tuple[int, ...]  #: indexes into the list given to `group_by_root`

    @property
    def spec(self) -> str:
        """What rclone is given: `remote:folder`."""
        return f"{self.remote}:{self.folder}"

    @property
    def folder_spec(self) -> str:
        """`spec` with a trailing slash, which tells rclone the root is a folder.

        Without it, object-store backends first HEAD the root to see whether it is a file; a store
        that refuses the credentials then makes `rclone mount` exit with "is a file not a
        directory" instead of reporting the refusal. The slash also saves that request.
        """
        return self.spec if self.spec.endswith((":", "/")) else self.spec + "/"

    def relative(self, target: RemotePath) -> str:
        """`target`'s path below this folder, with '/' separators and no leading slash."""
        folder = self.folder.strip("/")
        path = target.path.lstrip("/")
        if not folder:
            return path
        assert path.startswith(folder + "/"), (path, folder)
        return path[len(folder) + 1:]


def group_by_root(targets: Sequence[RemotePath]) -> list[RemoteRoot]:
    """Group inputs by remote and top folder (the bucket, for object stores); each group gets the
    deepest folder holding all its members.

    Inputs in one bucket share one rclone. Different buckets do not: a common root above them
    would be the account, which may not be listable with a bucket-scoped credential. Serving the
    deepest common folder matters because rclone lists every folder on the way to a file it opens.
    """
    groups: dict[tuple[str, bool, str], list[int]] = {}
    for index, target in enumerate(targets):
        parent = target.segments[:-1]
        key = (target.remote, target.absolute, parent[0] if parent else "")
        groups.setdefault(key, []).append(index)
    roots = []
    for (remote, absolute, _top), members in groups.items():
        common = targets[members[0]].segments[:-1]
        for index in members[1:]:
            parent = targets[index].segments[:-1]
            n = 0
            while n < min(len(common), len(parent)) and common[n] == parent[n]:
                n += 1
            common = common[:n]
        folder = ("/" if absolute else "") + "/".join(common)
        roots.append(RemoteRoot(remote, folder, tuple(members)))
    return roots


def canonical_uri(uri: str, environ: Mapping[str, str] | None = None) -> str:
    """`remote:path` for an object or a prefix of objects (for `--allow-root` checks).

    `s3://videos/a/` and `s3:videos/a` both become `s3:videos/a`; a bare bucket `s3://videos`
    becomes `s3:videos`. `..` and `.` segments are refused here as everywhere.
    """
    mapping = remote_map(None, environ)
    trimmed = uri.rstrip("/")
    try:
        return parse_uri(trimmed, mapping).spec
    except BadInput as first:
        # a bare bucket has no key to map: map it with one, then take the key off again
        try:
            spec = parse_uri(trimmed + "/_", mapping).spec
        except BadInput:  # not a bare bucket: say what is wrong with what the user wrote
            shown, given = uri_to_display(trimmed), uri_to_display(uri)
            raise BadInput(given + first.message[len(shown):] if first.message.startswith(shown)
                           else first.message) from None
        return spec[: -len("/_")]


def install_hint(uri: str) -> str | None:
    """`StorageBackend.install_hint`: for a URL scheme no remote is mapped to, how to map one; for
    a local path, to install vmafx-local."""
    url = _URL.match(uri)
    if url and url.group("scheme").lower() not in FOREIGN_SCHEMES and not handles_uri(uri):
        scheme = url.group("scheme").lower()
        return (f"to read {scheme}:// through rclone, map it to a remote: {ENV_REMOTE_MAP}={scheme}=REMOTE "
                f"or the storage option {OPTION_REMOTE_MAP}")
    if not url and not handles_uri(uri):
        return "for local files install vmafx-local (pip install vmafx-local)"
    return None
