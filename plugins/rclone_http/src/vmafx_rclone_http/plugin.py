"""The `rclone-http` storage backend: remote inputs through `rclone serve http` on loopback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import IO, Any

from vmafx_rclone_common.listing import list_files
from vmafx_rclone_common.options import RCLONE_CONFIG_FLAG
from vmafx_rclone_common.uris import canonical_uri, handles_uri, install_hint

from vmafx_core import hookimpl
from vmafx_core.types import Availability, CommandOption, InputRequest, PrepareContext, PreparedInput, StorageBackend
from vmafx_rclone_http.options import HttpStorageOptions


def prepare(inputs: Sequence[InputRequest], context: PrepareContext) -> AbstractContextManager[list[PreparedInput]]:
    """See `vmafx_rclone_http.serve.prepare`; imported on first use, so jobs that never touch a remote
    (and `vmafx plugins`) do not pay for loading it."""
    from vmafx_rclone_http.serve import prepare as prepare_inputs

    return prepare_inputs(inputs, context)


def write(destination: str, context: PrepareContext) -> AbstractContextManager[IO[bytes]]:
    """See `vmafx_rclone_common.rcat.write_stream` (`rclone rcat`), imported on first use."""
    from vmafx_rclone_common.rcat import write_stream

    return write_stream(destination, context)


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
    write=write,
    list=list_files,
    options_type=HttpStorageOptions,
    suggests={"local": "install vmafx-local (pip install vmafx-local)",
              "rclone-mount": "install vmafx-rclone-mount (pip install vmafx-rclone-mount)"},
    install_hint=install_hint,
    auto_priority=20,
)


@hookimpl
def vmafx_storage_backends() -> list[StorageBackend]:
    return [BACKEND]


@hookimpl
def vmafx_command_options() -> list[CommandOption]:
    return [RCLONE_CONFIG_FLAG]
