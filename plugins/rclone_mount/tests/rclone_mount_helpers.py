"""Helpers shared by the rclone-mount tests: what runs, what is mounted, and test media."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from vmafx_rclone_mount.folders import PREFIX, Owner, temp_root

from vmafx_core.ffmpeg import find_ffmpeg
from vmafx_core.process import Child, live_children

WEIRD_NAMES = ["with space.mp4", "ünïcödé ✓.mp4", "hash#1.mp4", "what?.mp4", "100%.mp4", "%41 literal.mp4",
               "plus+amp&semi;eq=.mp4", "quote'.mp4", "colon:in.mp4", "dir with space/inner #2.mp4"]


def ffmpeg_run(*args: str) -> None:
    subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True)


def children_named(name: str, parent: int | None = None) -> set[int]:
    """Live processes called `name` whose parent is `parent` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if comm == name and int(ppid) == parent and state != "Z":
            found.add(int(entry.name))
    return found


def processes_mentioning(text: str, parent: int | None = None) -> set[int]:
    """Live processes whose command line contains `text` (only children of `parent`, when given)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            if text.encode() not in (entry / "cmdline").read_bytes():
                continue
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if state != "Z" and (parent is None or int(ppid) == parent):
            found.add(int(entry.name))
    return found


def mounts_under(prefix: str) -> list[str]:
    """Mount points in /proc/mounts that start with `prefix`."""
    with open("/proc/mounts", encoding="utf-8") as table:
        points = [line.split()[1].replace("\\040", " ") for line in table]
    return [p for p in points if p.startswith(prefix)]


def folders_of(pid: int) -> list[str]:
    """Mount folders in the temp dir named after process `pid`."""
    return sorted(n for n in os.listdir(temp_root()) if n.startswith(f"{PREFIX}{pid}-"))


def my_prefix() -> str:
    return os.path.join(temp_root(), Owner.me().prefix())


def mount_children() -> list[Child]:
    return [c for c in live_children() if c.name == "rclone mount"]
