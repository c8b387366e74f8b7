"""The `zip` storage backend: members of zip archives scored in place, `zip:///data/set.zip!/ref.mp4`.

Datasets such as BVI-DVC ship as zip archives of stored (uncompressed) video files; unpacking one
doubles its disk use. This backend serves each member from a loopback HTTP server in this process
(`vmafx_zip.server`), which ffmpeg reads with range requests, and checks every served byte against
the member's CRC-32 (`vmafx_zip.members`). It is the second worked example of docs/PLUGINS.md:
written against the documented contract only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import attrs

from vmafx_core import hookimpl
from vmafx_core.errors import BadInput
from vmafx_core.types import InputRequest, PrepareContext, PreparedInput, StorageBackend
from vmafx_zip.members import Member, split_uri
from vmafx_zip.server import MemberServer


@attrs.frozen
class ZipOptions:
    """`--storage-option zip_rw_timeout=SECONDS`: how long ffmpeg waits on a silent connection."""

    zip_rw_timeout: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))


def handles(uri: str) -> bool:
    return uri.lower().startswith("zip://")


def canonical(uri: str) -> str:
    """`/real/path/set.zip/member`: under `--allow-root /real/path` and `--allow-root zip:///real/path/set.zip`."""
    if "!/" not in uri:  # an allowed root: the archive (or a folder) itself
        path = uri[len("zip://"):]
        if not path.startswith("/"):
            raise BadInput(f"{uri}: expected zip:///ABSOLUTE/PATH")
        return os.path.realpath(path)
    archive, member = split_uri(uri)
    return f"{os.path.realpath(archive)}/{member}"


@contextlib.contextmanager
def prepare(inputs: Sequence[InputRequest], context: PrepareContext) -> Iterator[list[PreparedInput]]:
    """Open every member (a missing archive or member is BadInput), serve them all from one server,
    and stop it and close the archives when the job ends, however it ends."""
    timeout = float(context.options.get("zip_rw_timeout", ZipOptions().zip_rw_timeout))
    members: list[Member] = []
    try:
        for request in inputs:
            members.append(Member(request.uri, request.role))
        server = MemberServer(members)
        try:
            yield [PreparedInput(role=request.role, url=server.url(index), display=request.uri,
                                 size=member.size, url_has_secret=True, secrets=(server.password,),
                                 input_options=("-rw_timeout", str(int(timeout * 1_000_000)),
                                                "-http_proxy", "none"),
                                 health=server.problem, integrity=member.integrity, identity=member.identity)
                   for index, (request, member) in enumerate(zip(inputs, members, strict=True))]
        finally:
            server.stop()
    finally:
        for member in members:
            member.close()


BACKEND = StorageBackend(
    name="zip",
    description="members of zip archives, zip:///data/set.zip!/ref.mp4, served in place on 127.0.0.1",
    handles=handles,
    schemes=("zip",),
    prepare=prepare,
    canonical=canonical,
    options_type=ZipOptions,
    auto_priority=5,
)


@hookimpl
def vmafx_storage_backends() -> list[StorageBackend]:
    return [BACKEND]
