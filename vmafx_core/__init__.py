"""vmafx: VMAF at dataset scale, streaming inputs from wherever rclone reaches."""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]

if TYPE_CHECKING:
    from vmafx_core.hookspecs import hookimpl


def __getattr__(name: str) -> Any:
    # `hookimpl` (and with it pluggy) loads on first use: the command line installs its signal
    # handlers before anything but the standard library is imported
    if name == "hookimpl":
        from vmafx_core.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'vmafx_core' has no attribute {name!r}")
