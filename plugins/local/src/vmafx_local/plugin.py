"""The `local` storage backend: hands ffmpeg the path itself.

Handles plain paths, `file://` URIs and `http(s)://` URLs (ffmpeg reads those by itself). Paths
are checked before anything runs, so a typo is one clear line rather than an ffmpeg error.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from vmafx_core import hookimpl
from vmafx_core.cache import local_identity
from vmafx_core.errors import BadInput, JobFailed
from vmafx_core.types import InputRequest, PrepareContext, PreparedInput, StorageBackend

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_RCLONE_REMOTE = re.compile(r"^[^/\\:]{2,}:")


def handles(uri: str) -> bool:
    """Local paths, file:// and http(s)://; not rclone `remote:path` nor other URL schemes."""
    if uri.startswith(("file://", "http://", "https://")):
        return True
    if _SCHEME.match(uri):
        return False
    return not _RCLONE_REMOTE.match(uri) or os.path.exists(uri)


def to_path(uri: str) -> str:
    if uri.startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise BadInput(f"{uri}: file:// URIs must name a local path (file:///path)")
        return unquote(parts.path)
    return uri


@contextlib.contextmanager
def prepare(inputs: Sequence[InputRequest], context: PrepareContext) -> Iterator[list[PreparedInput]]:
    prepared = []
    for request in inputs:
        if request.uri.startswith(("http://", "https://")):
            prepared.append(PreparedInput(role=request.role, url=request.uri, display=request.uri))
            continue
        path = to_path(request.uri)
        if not os.path.exists(path):
            raise BadInput(f"{request.role} {request.uri}: no such file")
        if os.path.isdir(path):
            raise BadInput(f"{request.role} {request.uri}: is a folder, not a video file")
        if not os.access(path, os.R_OK):
            raise BadInput(f"{request.role} {request.uri}: not readable (permission denied)")
        # "file:" keeps ffmpeg from reading a name like "a:b.mp4" as a protocol
        url = "file:" + os.path.abspath(path)
        prepared.append(PreparedInput(role=request.role, url=url, display=request.uri,
                                      size=os.path.getsize(path),
                                      identity=functools.partial(local_identity, path)))
    yield prepared


def canonical(uri: str) -> str:
    """The real path, `..` and symlinks resolved; URLs as given."""
    if uri.startswith(("http://", "https://")):
        return uri
    return os.path.realpath(to_path(uri))


@contextlib.contextmanager
def write(destination: str, context: PrepareContext) -> Iterator[IO[bytes]]:
    """Write a stream to a local file: into `.NAME.part` next to it, renamed into place at the end.

    The destination is checked (and the part file created) before the caller writes anything.
    """
    if destination.startswith(("http://", "https://")):
        raise BadInput(f"{destination}: cannot write to an http(s) URL; give a local path or a remote URI")
    path = os.path.abspath(to_path(destination))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise BadInput(f"{destination}: is a folder; give a file name")
    if not os.path.exists(folder):
        raise BadInput(f"{destination}: folder {folder} does not exist")
    if not os.path.isdir(folder):
        raise BadInput(f"{destination}: {folder} is not a folder")
    part = os.path.join(folder, f".{os.path.basename(path)}.part")
    try:
        out = open(part, "wb")  # noqa: SIM115 - closed below, whichever way the caller ends
    except OSError as exc:
        raise BadInput(f"{destination}: cannot write in {folder} ({exc.strerror})") from None
    try:
        yield out
    except BaseException:
        with contextlib.suppress(OSError):
            out.close()
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise
    try:
        out.close()
        os.replace(part, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise JobFailed(f"{destination}: writing failed ({exc.strerror})") from None


#: URL schemes that packages of this project read, and the package
_PUBLISHED_SCHEMES = {"zip": "vmafx-zip"}
#: URL schemes rclone reads out of the box (vmafx-rclone-http maps them to remotes)
_RCLONE_SCHEMES = ("s3", "gs", "azblob", "sftp")


def install_hint(uri: str) -> str | None:
    """What to install for a URI this backend does not read: rclone's remotes and the schemes it
    maps, or another package of this project (zip://)."""
    if handles(uri):
        return None
    scheme = uri.split("://", 1)[0].lower() if _SCHEME.match(uri) else None
    if scheme in _PUBLISHED_SCHEMES:
        package = _PUBLISHED_SCHEMES[scheme]
        return f"for {scheme}:// install {package} (pip install {package})"
    if scheme is None or scheme in _RCLONE_SCHEMES:
        return "for remote storage install vmafx-rclone-http (pip install vmafx-rclone-http)"
    return None


def list_files(folder: str, options: Mapping[str, Any]) -> list[str]:
    """Every file under a local folder, recursively (symlinked files included, symlinked folders not
    followed: a loop cannot make the listing endless)."""
    root = to_path(folder)
    if not os.path.isdir(root):
        raise BadInput(f"{folder}: no such folder" if not os.path.exists(root) else f"{folder}: is not a folder")
    found: list[str] = []
    for here, dirs, files in os.walk(root, onerror=None):
        dirs.sort()
        rel = os.path.relpath(here, root)
        for name in sorted(files):
            found.append(name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}")
    return found


BACKEND = StorageBackend(
    name="local",
    description="local files, file:// URIs and http(s):// URLs, read by ffmpeg directly",
    handles=handles,
    prepare=prepare,
    canonical=canonical,
    auto_priority=100,
    write=write,
    list=list_files,
    suggests={"rclone-http": "install vmafx-rclone-http (pip install vmafx-rclone-http)",
              "rclone-mount": "install vmafx-rclone-mount (pip install vmafx-rclone-mount)"},
    install_hint=install_hint,
)


@hookimpl
def vmafx_storage_backends() -> list[StorageBackend]:
    return [BACKEND]
