"""The `local` storage backend: hands ffmpeg the path itself.

Handles plain paths, `file://` URIs and `http(s)://` URLs (ffmpeg reads those by itself). Paths
are checked before anything runs, so a typo is one clear line rather than an ffmpeg error.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator, Sequence
from urllib.parse import unquote, urlsplit

from vmafx_core import hookimpl
from vmafx_core.cache import local_identity
from vmafx_core.errors import BadInput
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


BACKEND = StorageBackend(
    name="local",
    description="local files, file:// URIs and http(s):// URLs, read by ffmpeg directly",
    handles=handles,
    prepare=prepare,
    canonical=canonical,
    auto_priority=100,
)


@hookimpl
def vmafx_storage_backends() -> list[StorageBackend]:
    return [BACKEND]
