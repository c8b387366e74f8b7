"""The core imports no plugin: only itself, the standard library and its declared dependencies.

Read with `ast` from the source, so an import inside a function (lazy) or through
`importlib.import_module("...")` with a literal name counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "vmafx_core"
#: import names of distributions whose import name differs from the distribution's
IMPORT_NAMES = {"imageio-ffmpeg": {"imageio_ffmpeg"}, "distributed": {"distributed", "dask"}}


def _declared() -> set[str]:
    """Import names of the core's dependencies and optional extras (not the dev tools)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra, deps in project.get("optional-dependencies", {}).items():
        if extra != "dev":
            specs += deps
    names: set[str] = set()
    for spec in specs:
        dist = spec.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].split("!")[0].strip()
        names |= IMPORT_NAMES.get(dist.lower(), {dist.lower().replace("-", "_")})
    return names


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level module) of every import in a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, "vmafx_core" if node.level else (node.module or "").split(".")[0]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):
                yield node.lineno, node.args[0].value.split(".")[0]


def foreign_imports(folder: Path, allowed: set[str]) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for line, module in imports(path):
            if module not in allowed:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def test_the_core_imports_only_itself_the_stdlib_and_its_dependencies() -> None:
    allowed = {"vmafx_core", "__future__", *sys.stdlib_module_names, *_declared()}
    assert not any(name.startswith("vmafx_") for name in allowed - {"vmafx_core"})
    assert foreign_imports(CORE, allowed) == []


def test_the_check_sees_a_plugin_import_however_it_is_written(tmp_path: Path) -> None:
    """The walker itself: a lazy import, a from-import and import_module of a plugin are all found."""
    (tmp_path / "m.py").write_text("import os\n"
                                   "def f():\n    import vmafx_rclone_common.uris\n"
                                   "from vmafx_local import plugin\n"
                                   "import importlib\nimportlib.import_module('vmafx_rclone_http.serve')\n")
    allowed = {"vmafx_core", *sys.stdlib_module_names}
    found = sorted(module for _, module in imports(tmp_path / "m.py") if module not in allowed)
    assert found == ["vmafx_local", "vmafx_rclone_common", "vmafx_rclone_http"]


def _scorer_names() -> set[str]:
    from vmafx_core.plugins import Plugins

    return set(Plugins().scorers())


def test_no_core_module_outside_the_scorers_imports_or_compares_a_scorer() -> None:
    """What the core knows of a scorer comes from its descriptor (`types.Scorer`): no module outside
    vmafx_core/scorers imports one, or branches on a scorer's name."""
    names = _scorer_names() | {"libvmaf"}
    found = []
    for path in sorted(CORE.rglob("*.py")):
        relative = path.relative_to(CORE)
        if relative.parts[0] == "scorers":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vmafx_core.scorers"):
                found.append(f"{relative}:{node.lineno} imports {node.module}")
            elif isinstance(node, ast.Import) and any(a.name.startswith("vmafx_core.scorers") for a in node.names):
                found.append(f"{relative}:{node.lineno} imports a scorer")
            elif isinstance(node, ast.Compare):
                for value in [node.left, *node.comparators]:
                    if isinstance(value, ast.Constant) and value.value in names:
                        found.append(f"{relative}:{node.lineno} compares with {value.value!r}")
    assert found == []


def test_plugins_never_import_each_other() -> None:
    """A plugin package imports the core and itself, and the rclone ones their shared library
    (vmafx_rclone_common): never another plugin, so each installs and fails on its own."""
    found = []
    for source in sorted((ROOT / "plugins").glob("*/src/*")):
        if not source.is_dir():
            continue
        own = source.name
        allowed_plugins = {own, "vmafx_core"} | ({"vmafx_rclone_common"} if own.startswith("vmafx_rclone_") else set())
        for path in sorted(source.rglob("*.py")):
            for line, module in imports(path):
                if module.startswith("vmafx_") and module not in allowed_plugins:
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert len(list((ROOT / "plugins").glob("*/src/*"))) >= 5  # the plugins were found at all
    assert found == []
