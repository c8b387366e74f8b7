"""Private temp folders that name their owner, so a later run can remove what a killed one left.

A folder is `vmafx-<kind>-<pid>-<random>` in the system temp dir, mode 0700. Its owner removes it
when done; if the owner was SIGKILLed, the next run of the same kind removes it once that pid is
gone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile

log = logging.getLogger(__name__)


def make(kind: str) -> str:
    """A new private folder owned by this process."""
    clean_stale(kind)
    return tempfile.mkdtemp(prefix=f"vmafx-{kind}-{os.getpid()}-")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def clean_stale(kind: str) -> list[str]:
    """Remove folders of `kind` whose owning process no longer exists; return what was removed."""
    pattern = re.compile(rf"^vmafx-{re.escape(kind)}-(\d+)-")
    root = tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match and not pid_alive(int(match.group(1))):
            path = os.path.join(root, name)
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.exists(path):
                log.info("removed %s, left by a vmafx run that was killed", path)
                removed.append(path)
    return removed
