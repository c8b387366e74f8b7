"""`StorageBackend.list` for rclone: every file under a remote folder in one `rclone lsjson -R`.

One recursive listing of the folder (rclone pages through the storage's own listing, one request
per page of keys on S3), never one request per file, so pairing a bucket of ten thousand encodes
costs one rclone process. The child is owned (`process.Child`), bounded in time and reaped, and
its credentials are only in its environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vmafx_core.errors import BadInput, Unreachable
from vmafx_rclone_common.launch import explain_storage_error, last_error
from vmafx_rclone_common.settings import RcloneSettings
from vmafx_rclone_common.uris import uri_to_display

#: seconds one listing may take before the storage counts as not answering
LIST_TIMEOUT_S = 300.0


def list_files(folder: str, options: Mapping[str, Any], timeout: float = LIST_TIMEOUT_S) -> list[str]:
    """Paths (relative to `folder`, "/" between folders) of every file under the remote `folder`."""
    settings = RcloneSettings.from_options(options)
    target = settings.resolve(folder.rstrip("/"))
    shown = uri_to_display(folder)
    code, out, child = settings.output(["lsjson", "-R", "--files-only", "--no-mimetype", "--no-modtime",
                                        "--low-level-retries", "2", "--retries", "1", target.spec], timeout)
    if code is None:
        raise Unreachable(f"{shown}: the storage did not list the folder within {timeout:g}s", retryable=False)
    if code != 0:
        tail = child.tail()
        if "directory not found" in tail.lower():
            raise BadInput(f"{shown}: no such folder")
        raise explain_storage_error(tail, subject=shown, remote_name=target.remote_name,
                                    config_hint=settings.config_hint(), scheme=target.scheme) or \
            Unreachable(f"{shown}: rclone could not list the folder: {last_error(tail)}", retryable=False)
    try:
        entries = json.loads(out or b"[]")
    except ValueError:
        raise Unreachable(f"{shown}: rclone's listing was not JSON", retryable=False) from None
    return sorted(str(e["Path"]) for e in entries if isinstance(e, dict) and not e.get("IsDir"))
