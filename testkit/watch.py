"""Watching what vmafx's child processes do while it runs: argv, bytes written, peak memory."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from testkit.procs import children


class Watcher:
    """Samples vmafx's child processes while it runs: argv, bytes written, peak memory."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cmdlines: dict[int, bytes] = {}
        self.write_bytes: dict[int, int] = {}
        self.peak_rss_kib: dict[int, int] = {}
        #: every environment each child was seen with (read after exec: its argv is not ours)
        self.environs: dict[int, list[bytes]] = {}
        try:
            self._parent_cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            self._parent_cmdline = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for kid in children(self.pid):
                try:
                    # read every time: right after fork, before exec, it is still the parent's argv;
                    # once exec'd, the argv read here names the environment read next (reading the
                    # argv once before and once after would let an exec fall in between, and
                    # rclone's own environment be filed under vmafx's argv)
                    now = Path(f"/proc/{kid}/cmdline").read_bytes()
                    if now and now != self._parent_cmdline:
                        self.cmdlines[kid] = now
                        environ = Path(f"/proc/{kid}/environ").read_bytes()
                        seen = self.environs.setdefault(kid, [])
                        if environ and environ not in seen:
                            seen.append(environ)
                    elif kid not in self.cmdlines:
                        self.cmdlines[kid] = now
                    io = dict(line.split(": ") for line in Path(f"/proc/{kid}/io").read_text().splitlines())
                    self.write_bytes[kid] = int(io["write_bytes"])
                    for line in Path(f"/proc/{kid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_rss_kib[kid] = int(line.split()[1])
                except (OSError, KeyError, ValueError):
                    pass
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def named(self, name: bytes) -> list[int]:
        return [pid for pid, cmd in self.cmdlines.items() if os.path.basename(cmd.split(b"\0")[0]).startswith(name)]

