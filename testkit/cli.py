"""Running the real `vmafx` CLI in a child process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vmafx_core.testing import CliRun  # the one shipped to plugin authors


def run_vmafx(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 300) -> CliRun:
    """Run the real `vmafx` CLI in a child process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "vmafx_core", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)
