"""The plugin contract in process: a hook that fails is a broken plugin, not a traceback; plugins
own their command-line flags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import pytest
from click.testing import CliRunner

from vmafx_core import cli, hookimpl
from vmafx_core.errors import BadInput
from vmafx_core.plugins import Plugins
from vmafx_core.types import CommandOption, StorageBackend


class Raises:
    @hookimpl
    def vmafx_storage_backends(self) -> list[StorageBackend]:
        raise RuntimeError("the plugin's own bug")


class WrongType:
    @hookimpl
    def vmafx_scorers(self) -> list[str]:
        return ["not a Scorer"]


class NotIterable:
    @hookimpl
    def vmafx_command_options(self) -> int:
        return 3


@pytest.mark.parametrize(("plugin", "hook", "says"), [
    (Raises(), "storage_backends", "vmafx_storage_backends: RuntimeError: the plugin's own bug"),
    (WrongType(), "scorers", "vmafx_scorers: TypeError: it returned a str, not a Scorer"),
    (NotIterable(), "command_options", "vmafx_command_options: TypeError"),
])
def test_a_hook_that_raises_or_returns_the_wrong_type_is_a_broken_plugin(
        fresh_plugins: Plugins, register: Callable[..., Any], plugin: object, hook: str, says: str) -> None:
    register(plugin, "bad")
    got = getattr(fresh_plugins, hook)()  # no traceback: the others' descriptors
    assert "bad" not in {p.plugin for p in got.values()}
    (failed,) = fresh_plugins.failures()
    assert failed.name == "bad" and failed.package == "test-bad"
    assert says in (failed.error or "")
    assert not fresh_plugins.pm.has_plugin("bad")
    assert "libvmaf" in fresh_plugins.scorers()  # the builtin scorer still works


class Commands:
    @hookimpl
    def vmafx_register_commands(self, cli: click.Group) -> None:
        @cli.command(name="hello")
        def hello() -> None:
            click.echo("hello from a plugin")


class BrokenCommands:
    @hookimpl
    def vmafx_register_commands(self, cli: click.Group) -> None:
        raise ValueError("no")


class Shadows:
    @hookimpl
    def vmafx_register_commands(self, cli: click.Group) -> None:
        @cli.command(name="run")
        def run() -> None:
            click.echo("not vmafx's run")


def test_a_plugin_command_never_replaces_vmafxs_own(fresh_plugins: Plugins, register: Callable[..., Any]) -> None:
    register(Shadows(), "shadows")
    group = cli._Commands()
    group.add_command(cli.run)
    group.adding_plugins = True
    fresh_plugins.register_commands(group)
    assert group.commands["run"] is cli.run


def test_register_commands_adds_a_command_and_a_failing_one_is_a_broken_plugin(
        fresh_plugins: Plugins, register: Callable[..., Any]) -> None:
    register(Commands(), "commands")
    register(BrokenCommands(), "broken")
    group = click.Group()
    fresh_plugins.register_commands(group)
    assert CliRunner().invoke(group, ["hello"]).output == "hello from a plugin\n"
    assert [(f.name, f.error) for f in fresh_plugins.failures()] == [
        ("broken", "vmafx_register_commands: ValueError: no")]


FLAG = CommandOption(flag="--demo-root", key="demo_root", target="storage", value_type="path", help="Demo.")


class Flags:
    @hookimpl
    def vmafx_command_options(self) -> list[CommandOption]:
        return [FLAG]


def test_one_flag_offered_alike_by_two_plugins_is_listed_once(fresh_plugins: Plugins,
                                                              register: Callable[..., Any]) -> None:
    register(Flags(), "one")
    register(Flags(), "two")
    offered = fresh_plugins.command_options()
    assert offered["--demo-root"].item == FLAG
    assert {"--model", "--feature", "--n-subsample", "--n-threads"} <= set(offered)  # libvmaf's own
    assert offered["--model"].plugin == "libvmaf"


def test_vmafx_run_help_lists_the_installed_plugins_flags() -> None:
    out = CliRunner().invoke(cli.main, ["run", "--help"]).output
    for flag in ("--model", "--feature", "--n-subsample", "--n-threads", "--rclone-config"):
        assert flag in out
    assert "[the libvmaf scorer]" in out and "[storage option rclone_config]" in out


def test_a_plugin_flag_goes_where_its_descriptor_says(monkeypatch: pytest.MonkeyPatch) -> None:
    model = CommandOption(flag="--model", key="model", target="scorer", scorer="libvmaf", multiple=True)
    monkeypatch.setattr(cli, "_plugin_flags", {"plugin_model": model, "plugin_demo_root": FLAG})
    data: dict[str, Any] = {}
    scorer: dict[str, Any] = {"name": "libvmaf"}
    cli.apply_plugin_flags(data, scorer, {"plugin_model": ("a", "b"), "plugin_demo_root": "/srv"})
    assert scorer == {"name": "libvmaf", "model": ["a", "b"]}
    assert data == {"storage_options": {"demo_root": "/srv"}}
    cli.apply_plugin_flags(data, {"name": "ffmpeg-metrics"}, {"plugin_model": ()})  # not given: nothing
    with pytest.raises(BadInput, match="--model is an option of the libvmaf scorer and this job's scorer is "
                                       "'ffmpeg-metrics'"):
        cli.apply_plugin_flags(data, {"name": "ffmpeg-metrics"}, {"plugin_model": ("a",)})
