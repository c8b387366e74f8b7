"""The storage options of the rclone-http backend: the common rclone ones and its own two."""

from __future__ import annotations

import math
import re
from typing import Any

import attrs
from vmafx_rclone_common.options import RcloneOptions

OPTION_BUFFER_SIZE = "rclone_buffer_size"
OPTION_RW_TIMEOUT = "http_rw_timeout"
DEFAULT_BUFFER_SIZE = "4Mi"
DEFAULT_RW_TIMEOUT = 20.0
SIZE = re.compile(r"^(?:off|\d+(?:\.\d+)?[KMGTP]?i?B?)$", re.IGNORECASE)


def _check_size(_: Any, __: Any, value: str) -> None:
    if not SIZE.match(value):
        raise ValueError(f"{value!r} is not a size like 4Mi")


def _check_timeout(_: Any, __: Any, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{value!r} is not a positive number of seconds")


@attrs.frozen
class HttpStorageOptions(RcloneOptions):
    """`StorageBackend.options_type` of rclone-http."""

    #: rclone's in-memory read-ahead per open file
    rclone_buffer_size: str = attrs.field(default=DEFAULT_BUFFER_SIZE, validator=_check_size)
    #: seconds ffmpeg waits on a silent connection
    http_rw_timeout: float = attrs.field(default=DEFAULT_RW_TIMEOUT, validator=_check_timeout)
