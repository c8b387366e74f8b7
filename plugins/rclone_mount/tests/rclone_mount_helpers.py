"""Helpers of the rclone-mount tests alone: its mount folders and children (the rest is in testkit/)."""

from __future__ import annotations

import os

from vmafx_rclone_mount.folders import PREFIX, Owner, temp_root

from vmafx_core.process import Child, live_children

WEIRD_NAMES = ["with space.mp4", "ünïcödé ✓.mp4", "hash#1.mp4", "what?.mp4", "100%.mp4", "%41 literal.mp4",
               "plus+amp&semi;eq=.mp4", "quote'.mp4", "colon:in.mp4", "dir with space/inner #2.mp4"]


def folders_of(pid: int) -> list[str]:
    """Mount folders in the temp dir named after process `pid`."""
    return sorted(n for n in os.listdir(temp_root()) if n.startswith(f"{PREFIX}{pid}-"))


def my_prefix() -> str:
    return os.path.join(temp_root(), Owner.me().prefix())


def mount_children() -> list[Child]:
    return [c for c in live_children() if c.name == "rclone mount"]
