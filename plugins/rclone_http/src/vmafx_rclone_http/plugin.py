"""The `rclone-http` storage backend: remote inputs through `rclone serve http` on loopback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from vmafx_rclone_common.uris import canonical_uri, handles_uri

from vmafx_core import hookimpl
from vmafx_core.types import Availability, InputRequest, PrepareContext, PreparedInput, StorageBackend


def prepare(inputs: Sequence[InputRequest], context: PrepareContext) -> AbstractContextManager[list[PreparedInput]]:
    """See `vmafx_rclone_http.serve.prepare`; imported on first use, so jobs that never touch a remote
    (and `vmafx plugins`) do not pay for loading it."""
    from vmafx_rclone_http.serve import prepare as prepare_inputs

    return prepare_inputs(inputs, context)


def availability(options: Mapping[str, Any] | None = None) -> Availability:
    """Usable when an rclone binary (the job's `rclone_binary` option, or the usual search) runs."""
    from vmafx_rclone_common.settings import rclone_availability

    return rclone_availability(options)


BACKEND = StorageBackend(
    name="rclone-http",
    description="remote:path, s3://, gs://, azblob://, sftp:// streamed through rclone serve http "
                "on 127.0.0.1",
    handles=handles_uri,
    canonical=canonical_uri,
    prepare=prepare,
    availability=availability,
    auto_priority=20,
)


@hookimpl
def vmafx_storage_backends() -> list[StorageBackend]:
    return [BACKEND]
