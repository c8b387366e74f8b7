"""Expected failures of any `vmafx` command as one line and an exit code: shared by every command."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from vmafx_core import interrupts
from vmafx_core.errors import Interrupted, VmafxError
from vmafx_core.process import stop_all

INTERRUPTED = "interrupted; stopped every process vmafx started and cleaned up"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected failures into one line and an exit code; never a traceback.

    After Ctrl-C or SIGTERM whatever ended the command (the interruption itself, an error it
    caused, or nothing, if its exception was swallowed somewhere) is reported as interrupted.
    """
    try:
        yield
        if interrupts.pending() is not None:
            raise Interrupted(INTERRUPTED)
    except VmafxError as exc:
        interrupted = interrupts.pending() is not None
        if interrupted:
            stop_all(timeout=2.0)
        fail(Interrupted(INTERRUPTED) if interrupted else exc)
    except (KeyboardInterrupt, interrupts.Interruption):
        stop_all(timeout=2.0)  # children of helper threads (probes) the unwinding did not reach
        fail(Interrupted(INTERRUPTED))


def fail(exc: VmafxError) -> None:
    click.echo(f"vmafx: error: {exc.message}", err=True)
    if exc.detail and (logging.getLogger().isEnabledFor(logging.INFO) or hasattr(exc, "errors")):
        for line in exc.detail.splitlines():
            click.echo(f"  {line}", err=True)
    elif exc.detail:
        click.echo(f"  (run `{verbose_command()} ...` to see ffmpeg's/rclone's last lines)", err=True)
    sys.exit(int(exc.exit_code))


def verbose_command() -> str:
    """The command being run as it must be typed to get more logging: `vmafx -v run` (-v belongs to
    `vmafx` itself, before the subcommand: `vmafx run -v` is an unknown option)."""
    ctx = click.get_current_context(silent=True)
    path = ctx.command_path.split() if ctx is not None else ["vmafx"]
    return " ".join([path[0], "-v", *path[1:]])
