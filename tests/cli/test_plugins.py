"""Plugins as a third party ships them: a real package, built and pip-installed from a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from testkit.cli import run_vmafx
from testkit.media import Media

DEMO_PLUGIN = '''
"""A third-party storage backend: demo:NAME reads NAME from the folder in $DEMO_ROOT."""
import contextlib
import os

from vmafx_core import hookimpl
from vmafx_core.types import PreparedInput, StorageBackend


@contextlib.contextmanager
def _prepare(inputs, context):
    root = os.environ["DEMO_ROOT"]
    with open(os.path.join(root, "prepared.log"), "a") as log:
        log.write(",".join(i.role for i in inputs) + "\\n")
    yield [PreparedInput(role=i.role, url=os.path.join(root, i.uri[5:]), display=i.uri,
                         size=os.path.getsize(os.path.join(root, i.uri[5:]))) for i in inputs]


@hookimpl
def vmafx_storage_backends():
    return [StorageBackend(name="demo", description="files under $DEMO_ROOT as demo:NAME",
                           handles=lambda uri: uri.startswith("demo:"), prepare=_prepare, auto_priority=5)]
'''


def _package(root: Path, dist: str, module: str, body: str, entry_name: str) -> Path:
    pkg = root / dist
    (pkg / module).mkdir(parents=True)
    (pkg / module / "__init__.py").write_text(body)
    (pkg / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{dist}"
        version = "1.2.3"
        dependencies = ["vmafx"]
        [project.entry-points.vmafx]
        {entry_name} = "{module}"
        [tool.setuptools]
        packages = ["{module}"]
    '''))
    return pkg


def _install(pkg: Path, target: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(pkg)], check=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with pip-installed plugin packages: a good one, a broken one, a clashing one, and one whose
    hook implementation has a misspelt name."""
    root = tmp_path_factory.mktemp("plugins")
    target = root / "site"
    _install(_package(root, "vmafx-demo-storage", "vmafx_demo_storage", DEMO_PLUGIN, "demo"), target)
    _install(_package(root, "vmafx-broken", "vmafx_broken", "raise ImportError('needs libfoo 9')\n", "broken"),
             target)
    clash = DEMO_PLUGIN.replace('name="demo"', 'name="local"')
    _install(_package(root, "vmafx-clash", "vmafx_clash", clash, "clash"), target)
    misspelt = DEMO_PLUGIN.replace('name="demo"', 'name="misspelt"').replace(
        "def vmafx_storage_backends():", "def vmafx_storage_backend():")
    _install(_package(root, "vmafx-misspelt", "vmafx_misspelt", misspelt, "misspelt"), target)
    return target


def _env(site: Path, media: Media, allow: str | None) -> dict[str, str]:
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "DEMO_ROOT": str(media.folder)}
    if allow is not None:
        env["VMAFX_PLUGINS"] = allow
    return env


def test_third_party_plugin_is_listed_and_used(site: Path, media: Media) -> None:
    env = _env(site, media, "libvmaf,local,demo,broken")
    listed = run_vmafx("plugins", "--json", env=env)
    assert listed.code == 0, listed.stderr
    plugins = {p["name"]: p for p in listed.json()["plugins"]}
    assert plugins["demo"]["package"] == "vmafx-demo-storage" and plugins["demo"]["version"] == "1.2.3"
    assert plugins["demo"]["storage_backends"][0]["name"] == "demo"
    assert plugins["broken"]["loaded"] is False and "needs libfoo 9" in plugins["broken"]["error"]

    (media.folder / "prepared.log").unlink(missing_ok=True)
    out = run_vmafx("run", "demo:ref.mp4", "demo:dis.mp4", "--json", env=env)
    assert out.code == 0, out.stderr
    result = out.json()
    assert result["provenance"]["storage"] == {"reference": "demo", "distorted": "demo"}
    assert result["reference"]["uri"] == "demo:ref.mp4"
    # both inputs went to the backend in one call
    assert (media.folder / "prepared.log").read_text() == "reference,distorted\n"
    local = run_vmafx("run", str(media.ref), str(media.dis), "--json")
    assert local.json()["metrics"]["vmaf"] == result["metrics"]["vmaf"]


def test_broken_plugin_does_not_break_the_cli(site: Path, media: Media) -> None:
    env = _env(site, media, "libvmaf,local,broken")
    doctor = run_vmafx("doctor", "--json", env=env)
    assert doctor.code == 3
    checks = {c["check"]: c for c in doctor.json()["checks"]}
    assert checks["plugin broken"]["ok"] is False and "vmafx-broken" in checks["plugin broken"]["detail"]
    out = run_vmafx("run", str(media.ref), str(media.dis), "--json", env=env)
    assert out.code == 0, out.stderr


def test_two_plugins_claiming_one_name_is_an_error_naming_both(site: Path, media: Media) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), env=_env(site, media, None))
    assert out.code == 3
    assert "vmafx-local" in out.stderr and "vmafx-clash" in out.stderr
    assert "storage backend 'local'" in out.stderr
    listed = run_vmafx("plugins", "--json", env=_env(site, media, None))
    assert listed.code == 3 and "vmafx-clash" in listed.json()["error"]


def test_allow_list_limits_plugins(media: Media) -> None:
    out = run_vmafx("plugins", "--json", env={"VMAFX_PLUGINS": "libvmaf"})
    names = [p["name"] for p in out.json()["plugins"]]
    assert names == ["libvmaf"]
    run = run_vmafx("run", str(media.ref), str(media.dis), env={"VMAFX_PLUGINS": "libvmaf"})
    assert run.code == 3
    assert "no storage plugin is installed" in run.stderr


def test_doctor_reports_ffmpeg_and_plugins() -> None:
    out = run_vmafx("doctor", "--json")
    data = json.loads(out.stdout)
    checks = {c["check"]: c for c in data["checks"]}
    assert checks["ffmpeg"]["ok"] and checks["libvmaf"]["ok"]
    assert checks["storage local"]["ok"]
    bad = run_vmafx("doctor", "--ffmpeg", "/nonexistent/ffmpeg")
    assert bad.code == 3 and "not an executable file" in bad.stdout


def test_auto_storage_honours_the_jobs_rclone_binary(media: Media, tmp_path: Path) -> None:
    """`--storage auto` asks each backend with the job's storage options: an rclone named only there counts."""
    rclone_common = pytest.importorskip("vmafx_rclone_common")
    env = {"VMAFX_RCLONE": str(tmp_path / "no-rclone-here"), "RCLONE_CONFIG_LOCALT_TYPE": "local",
           "VMAFX_PLUGINS": "libvmaf,local,rclone-http"}
    job = {"reference": {"uri": f"localt:{media.ref}"}, "distorted": {"uri": f"localt:{media.dis}"}}
    without = tmp_path / "without.json"
    without.write_text(json.dumps(job))
    refused = run_vmafx("run", "--job", str(without), env=env)
    assert refused.code == 3 and "no usable storage" in refused.stderr and "VMAFX_RCLONE" in refused.stderr
    with_binary = tmp_path / "with.json"
    with_binary.write_text(json.dumps({**job, "storage_options": {"rclone_binary": rclone_common.find_rclone()}}))
    done = run_vmafx("run", "--job", str(with_binary), "--json", env=env)
    assert done.code == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reference"]["storage"] == "rclone-http" and result["frames_scored"] == media.frames


def test_a_misspelt_hook_is_a_broken_plugin_not_a_broken_cli(site: Path, media: Media) -> None:
    env = _env(site, media, "libvmaf,local,misspelt")
    listed = run_vmafx("plugins", "--json", env=env)
    assert listed.code == 0, listed.stderr
    misspelt = {p["name"]: p for p in listed.json()["plugins"]}["misspelt"]
    assert misspelt["loaded"] is False and misspelt["package"] == "vmafx-misspelt"
    assert "vmafx_storage_backend" in misspelt["error"] and "vmafx_storage_backends" in misspelt["error"]
    doctor = run_vmafx("doctor", "--json", env=env)
    checks = {c["check"]: c for c in doctor.json()["checks"]}
    assert doctor.code == 3 and checks["plugin misspelt"]["ok"] is False
    out = run_vmafx("run", str(media.ref), str(media.dis), "--json", env=env)
    assert out.code == 0, out.stderr
