"""Storage choice and `--allow-root`'s canonical checks, in process, on a fresh plugin manager.

The backends are descriptors registered through plugin objects (`tests/unit/conftest.py`); the
local and rclone ones are the real plugins' own descriptors, so their `handles` and `canonical`
are what a user gets.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vmafx_local import plugin as local
from vmafx_rclone_http import plugin as rclone_http
from vmafx_rclone_mount import plugin as rclone_mount

from tests.unit.conftest import BackendsPlugin
from vmafx_core.errors import BadInput, EnvironmentMissing
from vmafx_core.lifecycle import check_allowed
from vmafx_core.plugins import Plugins
from vmafx_core.types import Availability, InputRequest, StorageBackend

Register = Callable[..., Any]


@contextlib.contextmanager
def _no_prepare(inputs: Any, context: Any) -> Iterator[list[Any]]:
    yield []


def remote(name: str, priority: int | None, usable: bool = True, asked: list[Any] | None = None) -> StorageBackend:
    """A backend for rclone-style URIs whose availability is fixed (and counted in `asked`)."""
    def availability(options: Any = None) -> Availability:
        if asked is not None:
            asked.append((name, options))
        return Availability(usable, "" if usable else f"{name} is switched off")

    return StorageBackend(name=name, description=name, handles=rclone_http.handles_uri, prepare=_no_prepare,
                          availability=availability, auto_priority=priority)


def test_auto_gives_local_files_to_local_and_remotes_to_the_favourite(fresh_plugins: Plugins,
                                                                      register: Register) -> None:
    register(local, "local")
    register(BackendsPlugin([remote("http", 20), remote("mount", 10)]), "remotes")
    chosen = fresh_plugins.choose_storage(["/data/ref.mp4", "s3://b/dis.mp4", "file:///x.mp4"], "auto")
    assert [b.name for b in chosen] == ["local", "http", "local"]


def test_auto_falls_back_when_the_favourite_is_unusable_and_asks_each_once(fresh_plugins: Plugins,
                                                                         register: Register) -> None:
    asked: list[Any] = []
    register(BackendsPlugin([remote("http", 20, usable=False, asked=asked), remote("mount", 10, asked=asked)]), "r")
    options = {"rclone_binary": "/opt/rclone"}
    chosen = fresh_plugins.choose_storage(["s3://b/ref.mp4", "s3://b/dis.mp4"], "auto", options)
    assert [b.name for b in chosen] == ["mount", "mount"]
    assert asked == [("http", options), ("mount", options)]  # once per job, with the job's options


def test_auto_with_nothing_usable_names_every_reason(fresh_plugins: Plugins, register: Register) -> None:
    register(BackendsPlugin([remote("http", 20, usable=False), remote("mount", 10, usable=False)]), "r")
    with pytest.raises(EnvironmentMissing, match=r"no usable storage for 's3://b/k' \(http: http is switched "
                                                 r"off; mount: mount is switched off\)"):
        fresh_plugins.choose_storage(["s3://b/k"], "auto")


def test_a_backend_without_priority_is_chosen_only_by_name(fresh_plugins: Plugins, register: Register) -> None:
    register(BackendsPlugin([remote("manual", None)]), "r")
    with pytest.raises(BadInput, match="no installed storage can read 's3://b/k'"):
        fresh_plugins.choose_storage(["s3://b/k"], "auto")
    assert [b.name for b in fresh_plugins.choose_storage(["s3://b/k"], "manual")] == ["manual"]


def test_a_named_storage_must_exist_be_usable_and_read_every_input(fresh_plugins: Plugins,
                                                                   register: Register) -> None:
    register(local, "local")
    register(BackendsPlugin([remote("off", 5, usable=False)]), "r")
    with pytest.raises(BadInput, match=r"unknown storage 'nope'; choose one of auto, local, off"):
        fresh_plugins.choose_storage(["/x.mp4"], "nope")
    with pytest.raises(EnvironmentMissing, match="storage 'off' is not usable here: off is switched off"):
        fresh_plugins.choose_storage(["s3://b/k"], "off")
    with pytest.raises(BadInput, match="storage 'local' cannot read 's3://b/k'"):
        fresh_plugins.choose_storage(["/x.mp4", "s3://b/k"], "local")


def test_install_hints_come_from_the_installed_backends(fresh_plugins: Plugins, register: Register) -> None:
    with pytest.raises(EnvironmentMissing, match="no storage plugin is installed; install vmafx-local"):
        fresh_plugins.choose_storage(["/x.mp4"], "auto")
    register(local, "local")
    with pytest.raises(EnvironmentMissing, match=r"storage 'rclone-mount' is not installed; install "
                                                 r"vmafx-rclone-mount \(pip install vmafx-rclone-mount\)"):
        fresh_plugins.choose_storage(["s3://b/k"], "rclone-mount")
    with pytest.raises(BadInput, match="no installed storage can read 's3://b/k'; for remote storage install "
                                       "vmafx-rclone-http"):
        fresh_plugins.choose_storage(["s3://b/k"], "auto")
    fresh_plugins.unregister("local")
    register(rclone_mount, "rclone-mount")
    with pytest.raises(BadInput, match="no installed storage can read '/x.mp4'; for local files install vmafx-local"):
        fresh_plugins.choose_storage(["/x.mp4"], "auto")
    with pytest.raises(EnvironmentMissing, match="storage 'rclone-http' is not installed; install vmafx-rclone-http"):
        fresh_plugins.choose_storage(["s3://b/k"], "rclone-http")


def test_the_writer_is_the_jobs_backend_or_the_favourite(fresh_plugins: Plugins, register: Register) -> None:
    register(local, "local")
    register(rclone_http, "rclone-http")
    register(rclone_mount, "rclone-mount")
    assert fresh_plugins.choose_writer("/out/e.nut", "auto").name == "local"
    assert fresh_plugins.choose_writer("s3://b/e.nut", "auto").name == "rclone-http"
    assert fresh_plugins.choose_writer("s3://b/e.nut", "rclone-mount").name == "rclone-mount"
    assert fresh_plugins.choose_writer("/out/e.nut", "rclone-mount").name == "local"  # mount cannot take a path


# ---- --allow-root ---------------------------------------------------------------------------------


def _allowed(plugins: Plugins, uri: str, roots: list[str]) -> bool:
    backends = plugins.choose_storage([uri], "auto")
    try:
        check_allowed([InputRequest("reference", uri)], backends, roots, plugins)
    except BadInput as exc:
        assert "outside the allowed roots" in exc.message and uri in exc.message
        return False
    return True


def test_allow_root_for_local_files_resolves_dotdot_and_symlinks(fresh_plugins: Plugins, register: Register,
                                                                 tmp_path: Path) -> None:
    register(local, "local")
    root, outside = tmp_path / "data", tmp_path / "secret"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "x.mp4").write_bytes(b"")
    os.symlink(outside / "x.mp4", root / "link.mp4")
    (tmp_path / "data-b").mkdir()
    assert _allowed(fresh_plugins, str(root / "sub" / "a.mp4"), [str(root)])
    assert _allowed(fresh_plugins, f"file://{root}/a.mp4", [str(root) + "/"])
    assert not _allowed(fresh_plugins, str(root / ".." / "secret" / "x.mp4"), [str(root)])
    assert not _allowed(fresh_plugins, str(root / "link.mp4"), [str(root)])  # a symlink out
    assert not _allowed(fresh_plugins, str(tmp_path / "data-b" / "a.mp4"), [str(root)])  # whole segments only
    assert _allowed(fresh_plugins, str(root / "link.mp4"), [str(root), str(outside)])


def test_allow_root_for_remotes_compares_one_spelling(fresh_plugins: Plugins, register: Register) -> None:
    register(local, "local")
    register(rclone_http, "rclone-http")
    assert _allowed(fresh_plugins, "s3://videos/a/x.mp4", ["s3:videos/a"])
    assert _allowed(fresh_plugins, "s3:videos/a/x.mp4", ["s3://videos/a/"])
    assert _allowed(fresh_plugins, "s3://videos/a/x.mp4", ["s3://videos"])
    assert not _allowed(fresh_plugins, "s3://videos/ab/x.mp4", ["s3://videos/a"])
    assert not _allowed(fresh_plugins, "s3://other/a/x.mp4", ["s3://videos", "/srv"])
    dotdot = "s3://videos/a/../../b/x.mp4"
    with pytest.raises(BadInput, match="path segments '..', '.' and empty ones are not allowed"):
        check_allowed([InputRequest("reference", dotdot)], fresh_plugins.choose_storage([dotdot], "auto"),
                      ["s3://videos/a"], fresh_plugins)


def test_allow_root_no_backend_understands(fresh_plugins: Plugins, register: Register) -> None:
    register(rclone_http, "rclone-http")
    backends = fresh_plugins.choose_storage(["s3://b/k"], "auto")
    with pytest.raises(BadInput, match=r"--allow-root '/srv': no installed storage backend understands it"):
        check_allowed([InputRequest("reference", "s3://b/k")], backends, ["/srv"], fresh_plugins)


# ---- scheme ownership -----------------------------------------------------------------------------


def _dummy(priority: int | None, *, schemes: tuple[str, ...] = ()) -> StorageBackend:
    """A third party's backend for `dummy://` URIs, at a priority below every built-in one."""
    return StorageBackend(name="dummy", description="dummy", handles=lambda uri: uri.lower().startswith("dummy://"),
                          prepare=_no_prepare, auto_priority=priority, schemes=schemes)


def test_rclone_backends_leave_a_third_party_scheme_to_its_own_low_priority_backend(
        fresh_plugins: Plugins, register: Register) -> None:
    register(local, "local")
    register(rclone_http, "rclone-http")
    register(rclone_mount, "rclone-mount")
    register(BackendsPlugin([_dummy(1)]), "dummy")
    chosen = fresh_plugins.choose_storage(["dummy://x/ref.mp4", "s3://b/dis.mp4", "myremote:b/k.mp4"], "auto")
    assert [b.name for b in chosen] == ["dummy", "rclone-http", "rclone-http"]
    assert not rclone_http.BACKEND.handles_for("dummy://x/ref.mp4", None)
    # a scheme mapped by the job's own remote_map is rclone's again
    assert rclone_http.BACKEND.handles_for("b2://bucket/k.mp4", {"remote_map": {"b2": "myb2"}})
    assert [b.name for b in fresh_plugins.choose_storage(["b2://bucket/k.mp4"], "auto",
                                                         {"remote_map": "b2=myb2"})] == ["rclone-http"]


def test_a_backend_that_owns_a_scheme_gets_it_whatever_the_priorities(fresh_plugins: Plugins,
                                                                      register: Register) -> None:
    greedy = StorageBackend(name="greedy", description="greedy", handles=lambda uri: True, prepare=_no_prepare,
                            auto_priority=1000)
    register(BackendsPlugin([greedy, _dummy(None, schemes=("dummy",))]), "both")
    assert [b.name for b in fresh_plugins.choose_storage(["DUMMY://x/a.mp4", "/x.mp4"], "auto")] == ["dummy", "greedy"]


def test_a_scheme_nobody_reads_gets_the_hint_of_every_backend_that_has_one(fresh_plugins: Plugins,
                                                                          register: Register) -> None:
    register(local, "local")
    register(rclone_http, "rclone-http")
    with pytest.raises(BadInput) as info:
        fresh_plugins.choose_storage(["zip:///data/set.zip!/ref.mp4"], "auto")
    assert info.value.message == (
        "no installed storage can read 'zip:///data/set.zip!/ref.mp4'; for zip:// install vmafx-zip "
        "(pip install vmafx-zip); to read zip:// through rclone, map it to a remote: VMAFX_REMOTE_MAP=zip=REMOTE "
        "or the storage option remote_map")
