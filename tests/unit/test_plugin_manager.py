"""The plugin manager in process: hooks called once, misspelt hooks reported, one manager per process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from vmafx_local import plugin as local

from testkit.media import Media
from tests.unit.conftest import BackendsPlugin
from vmafx_core import hookimpl
from vmafx_core.errors import BadInput, EnvironmentMissing
from vmafx_core.executor import run_job
from vmafx_core.job import parse_job
from vmafx_core.plugins import Plugins, shared
from vmafx_core.types import StorageBackend


def _counted_local() -> BackendsPlugin:
    return BackendsPlugin([StorageBackend(name="counted", description="local files, counted",
                                          handles=local.handles, prepare=local.prepare, canonical=local.canonical,
                                          auto_priority=1)])


def test_a_job_calls_the_storage_hook_once(fresh_plugins: Plugins, register: Callable[..., Any],
                                           media: Media) -> None:
    """Before, a job asked the hook at least three times (stale cleanup, choice, --allow-root)."""
    counted = register(_counted_local(), "counted")
    data = {"reference": {"uri": str(media.ref)}, "distorted": {"uri": str(media.dis)},
            "allow_roots": [str(media.folder)]}
    job, options = parse_job(data, "test", lambda n: fresh_plugins.scorers()[n].item.options_type,
                             fresh_plugins.storage_option_types)
    result, _ = run_job(job, options, fresh_plugins)
    assert result.reference.storage == "counted" and result.frames_scored == media.frames
    fresh_plugins.storage_backends()
    assert counted.calls == 1


def test_registering_a_plugin_is_seen_at_once(fresh_plugins: Plugins, register: Callable[..., Any]) -> None:
    assert fresh_plugins.storage_backends() == {}
    register(_counted_local(), "counted")
    assert list(fresh_plugins.storage_backends()) == ["counted"]
    fresh_plugins.unregister("counted")
    assert fresh_plugins.storage_backends() == {}


class Misspelt:
    @hookimpl
    def vmafx_storage_backend(self) -> list[StorageBackend]:  # no "s": no such hook
        return []


def test_a_misspelt_hook_is_reported_like_a_broken_plugin(fresh_plugins: Plugins,
                                                          register: Callable[..., Any]) -> None:
    register(Misspelt(), "misspelt")
    register(_counted_local(), "counted")
    (failed,) = fresh_plugins.failures()
    assert failed.name == "misspelt" and failed.package == "test-misspelt"
    assert "vmafx_storage_backend" in (failed.error or "") and "vmafx_storage_backends" in (failed.error or "")
    assert not fresh_plugins.pm.has_plugin("misspelt")
    assert list(fresh_plugins.storage_backends()) == ["counted"]  # the others keep working


def test_a_misspelt_hook_in_an_entry_point_does_not_stop_loading() -> None:
    class EntryPoint:
        def __init__(self, name: str, plugin: object) -> None:
            self.name, self.plugin, self.dist = name, plugin, None

        def load(self) -> object:
            return self.plugin

    plugins = Plugins(entry_points=[EntryPoint("misspelt", Misspelt()), EntryPoint("counted", _counted_local())])
    assert [f.name for f in plugins.failures()] == ["misspelt"]
    assert list(plugins.storage_backends()) == ["counted"]


def test_a_clash_is_reported_each_time_it_is_asked(fresh_plugins: Plugins, register: Callable[..., Any]) -> None:
    first, second = _counted_local(), _counted_local()
    register(first, "one")
    register(second, "two")
    for _ in range(2):
        with pytest.raises(EnvironmentMissing, match="two plugins provide the storage backend 'counted'"):
            fresh_plugins.storage_backends()
    assert first.calls == second.calls == 1


def test_one_plugin_manager_per_process() -> None:
    assert shared() is shared()


def test_no_write_capability_means_no_writer(fresh_plugins: Plugins, register: Callable[..., Any]) -> None:
    register(_counted_local(), "counted")
    with pytest.raises(BadInput, match="no installed storage can write there"):
        fresh_plugins.choose_writer("/tmp/x.nut", "auto")
