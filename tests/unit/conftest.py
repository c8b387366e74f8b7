"""In-process plugin fixtures: a fresh plugin manager per test, and plugin objects registered on it.

A plugin here is any object with `@hookimpl` methods, registered by name and unregistered when the
test ends, so storage choice, `--allow-root` and job parsing are tested without building packages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from vmafx_core import hookimpl
from vmafx_core.plugins import Plugins
from vmafx_core.types import StorageBackend


class BackendsPlugin:
    """A plugin object providing `backends`; counts how often its hook is called."""

    def __init__(self, backends: Sequence[StorageBackend]) -> None:
        self.backends = list(backends)
        self.calls = 0

    @hookimpl
    def vmafx_storage_backends(self) -> list[StorageBackend]:
        self.calls += 1
        return self.backends


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """A test that calls the command line in-process (`cli.main`) installs vmafx's SIGINT/SIGTERM
    handlers; they are taken out again, so later tests (in this process) see Python's own."""
    from vmafx_core import interrupts

    before = interrupts.installed()
    yield
    if not before:
        interrupts.uninstall()


@pytest.fixture
def fresh_plugins() -> Plugins:
    """Only the builtin libvmaf scorer: no installed entry point is loaded."""
    return Plugins(entry_points=[], allow=None)


@pytest.fixture
def register(fresh_plugins: Plugins) -> Iterator[Callable[..., Any]]:
    """`register(plugin, name)` on `fresh_plugins`; every plugin registered is unregistered afterwards."""
    names: list[str] = []

    def add(plugin: object, name: str) -> object:
        fresh_plugins.register(plugin, name, package=f"test-{name}", version="0")
        names.append(name)
        return plugin

    yield add
    for name in names:
        if fresh_plugins.pm.has_plugin(name):
            fresh_plugins.unregister(name)
