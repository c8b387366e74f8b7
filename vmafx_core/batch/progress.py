"""The batch's progress: counts and a one-line bar on stderr."""

from __future__ import annotations

import threading
import time

import click


class BatchProgress:
    """Counts and a one-line bar on stderr (on a terminal): done, failed, running, total, ETA."""

    def __init__(self, total: int, ok: int, failed: int, enabled: bool) -> None:
        self.total = total
        self.ok = ok
        self.failed = failed
        self.running = 0
        self.finished_here = 0  #: jobs ended in this run, the base of the ETA
        self.last_finish = 0.0
        self.enabled = enabled
        self.started_at = time.monotonic()
        self._lock = threading.Lock()
        self._shown = False
        self._last = 0.0

    def start(self) -> None:
        with self._lock:
            self.running += 1
            self._render()

    def finish(self, ok: bool, running: bool = True) -> None:
        with self._lock:
            if running:  # lines refused before running take no time: they would skew the ETA
                self.running = max(0, self.running - 1)
                self.finished_here += 1
                self.last_finish = time.monotonic()
            if ok:
                self.ok += 1
            else:
                self.failed += 1
            self._render()

    def note(self, text: str) -> None:
        """A line for the user above the bar."""
        with self._lock:
            if self._shown:
                click.echo("\r\033[K", err=True, nl=False)
            click.echo(text, err=True)
            self._render(force=True)

    def refresh(self) -> None:
        with self._lock:
            self._render()

    def eta(self) -> str:
        remaining = self.total - self.ok - self.failed
        if not self.finished_here:
            return "-:--"
        per_job = (self.last_finish - self.started_at) / self.finished_here
        # counts down between completions instead of growing with the wait for the next one
        seconds = int(max(0.0, per_job * remaining - (time.monotonic() - self.last_finish)))
        hours, rest = divmod(seconds, 3600)
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"

    def _render(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        done = self.ok + self.failed
        filled = int(30 * done / self.total) if self.total else 30
        running = f"  running {self.running}" if self.running else ""
        click.echo(f"\r[{'#' * filled:<30}] {done}/{self.total}  failed {self.failed}{running}  "
                   f"ETA {self.eta()}\033[K", err=True, nl=False)
        self._shown = True

    def close(self) -> None:
        with self._lock:
            if self._shown:
                click.echo("\r\033[K", err=True, nl=False)
                self._shown = False
