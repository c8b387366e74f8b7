"""The `vmafx` executable.

Signal handlers go in before anything but the standard library is imported, so Ctrl-C or SIGTERM
in the first milliseconds gives the same one line and exit code 130 as later ones.
"""

from __future__ import annotations

import sys

from vmafx_core import interrupts


def main() -> None:
    interrupts.install()
    try:
        from vmafx_core.cli import main as cli

        cli(prog_name="vmafx")
    except interrupts.Interruption:
        interrupted()


def interrupted() -> None:
    """Stop whatever was started, say so in one line, exit 130."""
    from vmafx_core.errors import ExitCode

    process = sys.modules.get("vmafx_core.process")
    if process is not None:
        process.stop_all(timeout=2.0)
    sys.stderr.write("vmafx: error: interrupted; stopped every process vmafx started and cleaned up\n")
    sys.exit(int(ExitCode.INTERRUPTED))
