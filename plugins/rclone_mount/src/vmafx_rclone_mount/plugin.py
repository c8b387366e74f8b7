"""The `rclone-mount` storage backend: remote inputs through a private, read-only rclone FUSE mount."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import IO, Any

from vmafx_rclone_common.listing import list_files
from vmafx_rclone_common.options import RCLONE_CONFIG_FLAG, RcloneOptions
from vmafx_rclone_common.uris import canonical_uri, handles_uri, install_hint

from vmafx_core import hookimpl
from vmafx_core.types import Availability, CommandOption, InputRequest, PrepareContext, PreparedInput, StorageBackend
from vmafx_rclone_mount.fuse import FUSERMOUNT, find_fusermount, fuse_device_problem


def prepare(inputs: Sequence[InputRequest], context: PrepareContext) -> AbstractContextManager[list[PreparedInput]]:
    """See `vmafx_rclone_mount.mount.prepare`; imported on first use, so jobs that never touch a remote
    (and `vmafx plugins`) do not pay for loading it."""
    from vmafx_rclone_mount.mount import prepare as prepare_inputs

    return prepare_inputs(inputs, context)


def write(destination: str, context: PrepareContext) -> AbstractContextManager[IO[bytes]]:
    """See `vmafx_rclone_common.rcat.write_stream` (`rclone rcat`), imported on first use."""
    from vmafx_rclone_common.rcat import write_stream

    return write_stream(destination, context)


def availability(options: Mapping[str, Any] | None = None) -> Availability:
    """Usable when /dev/fuse opens, fusermount3 is on PATH and rclone runs; the reason names each gap.

    Cheap enough for every `--storage auto` choice, and never raises: a broken check is a reason.
    """
    try:
        problems = []
        device = fuse_device_problem()
        if device:
            problems.append(device)
        fusermount = find_fusermount()
        if fusermount is None:
            problems.append(f"{FUSERMOUNT} is not on PATH (Debian: apt-get install fuse3)")
        from vmafx_rclone_common.settings import rclone_availability

        rclone = rclone_availability(options)
        if not rclone.usable:
            problems.append(rclone.reason)
        if problems:
            return Availability(False, "; ".join(problems))
        return Availability(True, f"{rclone.reason}; {FUSERMOUNT} at {fusermount}")
    except Exception as exc:  # noqa: BLE001 - availability must answer, not raise
        return Availability(False, f"could not check FUSE and rclone: {exc}")


def clean_stale() -> list[str]:
    """Unmount and remove the mount folders of vmafx runs that died (whichever storage this run uses)."""
    fusermount = find_fusermount()
    if fusermount is None:
        return []
    from vmafx_rclone_mount.folders import clean_leftovers

    return clean_leftovers(fusermount)


BACKEND = StorageBackend(
    name="rclone-mount",
    description="remote:path, s3://, gs://, azblob://, sftp:// read through a private read-only rclone "
                "FUSE mount",
    handles=handles_uri,
    canonical=canonical_uri,
    prepare=prepare,
    availability=availability,
    write=write,
    list=list_files,
    options_type=RcloneOptions,
    suggests={"local": "install vmafx-local (pip install vmafx-local)",
              "rclone-http": "install vmafx-rclone-http (pip install vmafx-rclone-http)"},
    install_hint=install_hint,
    auto_priority=10,
    clean_stale=clean_stale,
)


@hookimpl
def vmafx_storage_backends() -> list[StorageBackend]:
    return [BACKEND]


@hookimpl
def vmafx_command_options() -> list[CommandOption]:
    return [RCLONE_CONFIG_FLAG]
