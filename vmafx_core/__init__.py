"""vmafx: VMAF at dataset scale, streaming inputs from wherever rclone reaches."""

from vmafx_core.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
