"""Which rclone config file to use, and the environment every rclone child gets.

rclone reads secrets from its config file or from `RCLONE_CONFIG_<REMOTE>_<KEY>` variables; both
reach the child through its environment, which only its owner can read (/proc/PID/environ), never
through argv, which every local user can read (/proc/PID/cmdline).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from vmafx_core.errors import BadInput, EnvironmentMissing

ENV_CONFIG = "VMAFX_RCLONE_CONFIG"
OPTION_CONFIG = "rclone_config"

#: variables that would move rclone's log away from stderr, change its format or hide the NOTICE
#: lines readiness is read from, or wire the child to a service manager meant for vmafx itself
_DROPPED = frozenset({
    "RCLONE_LOG_FILE", "RCLONE_LOG_LEVEL", "RCLONE_LOG_FORMAT", "RCLONE_USE_JSON_LOG", "RCLONE_SYSLOG",
    "RCLONE_SYSLOG_FACILITY", "RCLONE_LOG_SYSTEMD", "RCLONE_QUIET", "RCLONE_VERBOSE", "RCLONE_DAEMON",
    "RCLONE_DAEMON_TIMEOUT", "RCLONE_DAEMON_WAIT", "RCLONE_RC", "RCLONE_ASK_PASSWORD", "RCLONE_CONFIG",
    "RCLONE_PROGRESS", "RCLONE_INTERACTIVE",
    "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_PIDS", "LISTEN_FDNAMES",
})
_DROPPED_PREFIXES = ("RCLONE_RC_",)


@attrs.frozen
class ConfigChoice:
    """The config file handed to rclone and where the choice came from (for messages)."""

    path: str  #: os.devnull when there is none: remotes then come from RCLONE_CONFIG_* only
    source: str

    @property
    def has_file(self) -> bool:
        return self.path != os.devnull

    def describe(self) -> str:
        if not self.has_file:
            return "no rclone config file (remotes only from RCLONE_CONFIG_<NAME>_* variables)"
        return f"rclone config {self.path} (from {self.source})"


def rclone_default_configs(binary: str | None, environ: Mapping[str, str]) -> list[Path]:
    """The files rclone itself would try, in its order: next to the binary, XDG, legacy dotfile."""
    candidates: list[Path] = []
    if binary:
        candidates.append(Path(binary).resolve().parent / "rclone.conf")
    home = Path(environ.get("HOME") or Path.home())
    xdg = environ.get("XDG_CONFIG_HOME")
    candidates.append((Path(xdg) if xdg else home / ".config") / "rclone" / "rclone.conf")
    candidates.append(home / ".rclone.conf")
    return candidates


def choose_config(options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                  binary: str | None = None) -> ConfigChoice:
    """The config file: option `rclone_config`, `$VMAFX_RCLONE_CONFIG`, `$RCLONE_CONFIG`, rclone's default.

    With none of them and no default file, rclone gets /dev/null so it never creates
    ~/.config/rclone on a machine that configures remotes through the environment only.
    """
    environ = os.environ if environ is None else environ
    given = [(f"storage option {OPTION_CONFIG}", (options or {}).get(OPTION_CONFIG), BadInput),
             (ENV_CONFIG, environ.get(ENV_CONFIG), EnvironmentMissing),
             ("RCLONE_CONFIG", environ.get("RCLONE_CONFIG"), EnvironmentMissing)]
    for source, value, error in given:
        if not value:
            continue
        path = os.path.expanduser(str(value))
        if path == os.devnull:
            return ConfigChoice(os.devnull, source)
        if not os.path.isfile(path):
            raise error(f"rclone config {path} (from {source}) does not exist or is not a file")
        if not os.access(path, os.R_OK):
            raise error(f"rclone config {path} (from {source}) is not readable")
        return ConfigChoice(os.path.abspath(path), source)
    for candidate in rclone_default_configs(binary, environ):
        if candidate.is_file():
            return ConfigChoice(str(candidate), "rclone's default location")
    return ConfigChoice(os.devnull, "none")


def child_environment(config: ConfigChoice, extra: Mapping[str, str] | None = None,
                      drop: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an rclone child: ours, less what would break supervision, plus `extra`.

    `RCLONE_CONFIG_*`, cloud SDK variables (AWS_*, GOOGLE_*, AZURE_*), SSH_AUTH_SOCK and proxies
    pass through. rclone never prompts: stdin is not a terminal, and an encrypted config needs
    `RCLONE_CONFIG_PASS` or `RCLONE_PASSWORD_COMMAND`.
    """
    environ = os.environ if environ is None else environ
    dropped = _DROPPED | set(drop)
    env = {k: v for k, v in environ.items() if k not in dropped and not k.startswith(_DROPPED_PREFIXES)}
    env["RCLONE_CONFIG"] = config.path
    env["RCLONE_ASK_PASSWORD"] = "false"  # noqa: S105 - a flag, not a password
    env.update(extra or {})
    return env
