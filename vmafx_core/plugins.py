"""Loading plugins and choosing among them.

`Plugins` is the typed facade the rest of vmafx uses: it loads each entry point of the group
``vmafx`` on its own (a plugin that fails to import is recorded, not fatal), honours
`VMAFX_PLUGINS` (a comma-separated allow-list of plugin names), and refuses two plugins that claim
one backend or scorer name, naming both packages. `VMAFX_STORAGE_MODE` is this machine's storage
mode: what a job that says ``auto`` uses (a Helm chart's `storage.mode` on its nodes).

one backend or scorer name, naming both packages. A plugin with a hook implementation that matches
no hook (a misspelt name) is reported like one that failed to import: pluggy's pending-hook check.

Entry points are loaded once per process (`shared()`), and each hook is called once per `Plugins`:
its descriptors are kept, so a job asking for its backends several times costs one call.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

import attrs
import pluggy

from vmafx_core import hookspecs, tempdirs
from vmafx_core.entrypoints import entry_points as installed_entry_points
from vmafx_core.errors import BadInput, EnvironmentMissing, VmafxError
from vmafx_core.published import SUGGESTED_SCORERS
from vmafx_core.types import Availability, CommandOption, Scorer, StorageBackend

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "vmafx"
ENV_ALLOW = "VMAFX_PLUGINS"
#: this machine's storage mode: a job that says "auto" uses it (unset or "auto": chosen per input)
ENV_STORAGE_MODE = "VMAFX_STORAGE_MODE"
BUILTINS: dict[str, str] = {"libvmaf": "vmafx_core.scorers.libvmaf.scorer"}
CORE_PACKAGE = "vmafx"
#: what each descriptor hook returns: anything else is the plugin's bug, reported as its failure
DESCRIPTORS: dict[str, type] = {"vmafx_storage_backends": StorageBackend, "vmafx_scorers": Scorer,
                                "vmafx_command_options": CommandOption}
#: the one hint the core gives itself: with no storage plugin at all, no backend can give one
NO_STORAGE = ("no storage plugin is installed; install vmafx-local "
              "(and vmafx-rclone-http for remote storage)")


@attrs.frozen
class PluginInfo:
    name: str
    package: str
    version: str
    builtin: bool
    error: str | None = None  #: why it failed to load


@attrs.frozen
class Provided:
    """A backend or scorer with the plugin and package it came from."""

    item: Any
    plugin: str
    package: str


class Plugins:
    def __init__(self, *, entry_points: Iterable[Any] | None = None,
                 allow: Sequence[str] | None = None, builtins: bool = True, fresh: bool = False) -> None:
        """Load the builtins and the installed plugins (`entry_points` replaces the installed ones).

        `fresh` scans the installed packages even when the kept list of entry points is current.
        """
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self._packages: dict[str, str] = {}
        #: each hook's descriptors (or the error they gave), computed on first use
        self._collected: dict[str, dict[str, Provided] | VmafxError] = {}
        if allow is None and os.environ.get(ENV_ALLOW) is not None:
            allow = [n.strip() for n in os.environ[ENV_ALLOW].split(",") if n.strip()]
        self.allow = None if allow is None else set(allow)
        if builtins:
            from vmafx_core import __version__
            for name, module in BUILTINS.items():
                if self.allow is None or name in self.allow:
                    mod = importlib.import_module(module)
                    self._register(mod, name, CORE_PACKAGE, __version__, builtin=True)
        if entry_points is None:
            entry_points = installed_entry_points(ENTRY_POINT_GROUP, fresh=fresh)
        for ep in sorted(entry_points, key=lambda e: e.name):
            self._load(ep)
        self._check_pending()

    def register(self, plugin: ModuleType | object, name: str, package: str = "?", version: str = "?") -> None:
        """Register a plugin module or object in this process (tests, embedding applications).

        It is checked like an installed plugin: a failure is recorded in `failures()`, not raised.
        """
        self._register(plugin, name, package, version, builtin=False)
        self._check_pending()
        self._collected.clear()

    def unregister(self, name: str) -> None:
        """Remove the plugin registered under `name` (what `register` added)."""
        self.pm.unregister(name=name)
        self._packages.pop(name, None)
        self.infos = [i for i in self.infos if i.name != name]
        self._collected.clear()

    def _check_pending(self) -> None:
        """Unregister, and report as broken, each plugin with a hook implementation no hook specifies."""
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin) or "?"
                self.pm.unregister(exc.plugin)
                known = ", ".join(sorted(n for n in dir(self.pm.hook) if n.startswith("vmafx_")))
                error = f"PluginValidationError: {exc} (the hooks are: {known})"
                log.warning("plugin %s from %s is broken: %s", name, self._packages.get(name, "?"), error)
                self.infos = [attrs.evolve(i, error=error) if i.name == name and i.error is None else i
                              for i in self.infos]
                self._packages.pop(name, None)

    def _load(self, ep: Any) -> None:
        """Load one entry point (an `importlib.metadata.EntryPoint` or `vmafx_core.entrypoints.EntryPoint`)."""
        dist = getattr(ep, "dist", None)
        package = dist.name if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        if self.allow is not None and ep.name not in self.allow:
            log.debug("plugin %s skipped: not in %s", ep.name, ENV_ALLOW)
            return
        if self.pm.has_plugin(ep.name):
            other = self._packages.get(ep.name, "?")
            self.infos.append(PluginInfo(ep.name, package, version, False,
                                         f"plugin name {ep.name!r} is already taken by package {other}"))
            return
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not break the CLI
            log.warning("plugin %s from %s failed to load: %s", ep.name, package, exc)
            self.infos.append(PluginInfo(ep.name, package, version, False, f"{type(exc).__name__}: {exc}"))
            return
        self._register(plugin, ep.name, package, version, builtin=False)

    def _register(self, plugin: ModuleType | object, name: str, package: str, version: str, *,
                  builtin: bool) -> None:
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self.infos.append(PluginInfo(name, package, version, builtin, f"{type(exc).__name__}: {exc}"))
            return
        self._packages[name] = package
        self.infos.append(PluginInfo(name, package, version, builtin))

    def _collect(self, hook_name: str, kind: str) -> dict[str, Provided]:
        """The descriptors every plugin returns from `hook_name`, by name: computed once, then kept."""
        kept = self._collected.get(hook_name)
        if kept is None:
            try:
                kept = self._call(hook_name, kind)
            except VmafxError as exc:
                kept = exc
            self._collected[hook_name] = kept
        if isinstance(kept, VmafxError):
            raise kept
        return dict(kept)

    def _call(self, hook_name: str, kind: str) -> dict[str, Provided]:
        """Each plugin's descriptors from `hook_name`. A hook that raises, or returns anything but
        descriptors of its kind, is reported like a plugin that failed to import (`_broken`)."""
        found: dict[str, Provided] = {}
        hook = getattr(self.pm.hook, hook_name)
        expected = DESCRIPTORS[hook_name]
        for impl in hook.get_hookimpls():
            package = self._packages.get(impl.plugin_name, "?")
            try:
                items = list(impl.function() or ())
                wrong = next((i for i in items if not isinstance(i, expected)), None)
                if wrong is not None:
                    raise TypeError(f"it returned a {type(wrong).__name__}, not a {expected.__name__}")
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
                self._broken(impl.plugin_name, f"{hook_name}: {type(exc).__name__}: {exc}")
                continue
            for item in items:
                if item.name in found:
                    first = found[item.name]
                    if expected is CommandOption and first.item == item:
                        continue  # one flag offered alike by several plugins (the rclone backends)
                    raise EnvironmentMissing(
                        f"two plugins provide the {kind} {item.name!r}: package {first.package} "
                        f"(plugin {first.plugin}) and package {package} (plugin {impl.plugin_name}); "
                        f"uninstall one or limit plugins with {ENV_ALLOW}")
                found[item.name] = Provided(item, impl.plugin_name, package)
        return found

    def _broken(self, name: str, error: str) -> None:
        """A plugin whose hook failed: unregistered and listed in `failures()` with why, as one
        that failed to import is; what it gave other hooks is forgotten."""
        log.warning("plugin %s from %s is broken: %s", name, self._packages.get(name, "?"), error)
        self.infos = [attrs.evolve(i, error=error) if i.name == name and i.error is None else i for i in self.infos]
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self._packages.pop(name, None)
        self._collected.clear()

    def command_options(self) -> dict[str, Provided]:
        """The command-line options plugins add to `vmafx run`, by flag (`vmafx_command_options`)."""
        return self._collect("vmafx_command_options", "command-line option")

    def register_commands(self, cli: Any) -> None:
        """Let each plugin add its commands to the click group `cli` (`vmafx_register_commands`); a
        plugin whose hook fails is reported like one that failed to import."""
        for impl in self.pm.hook.vmafx_register_commands.get_hookimpls():
            try:
                impl.function(cli)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
                self._broken(impl.plugin_name, f"vmafx_register_commands: {type(exc).__name__}: {exc}")

    def storage_backends(self) -> dict[str, Provided]:
        return self._collect("vmafx_storage_backends", "storage backend")

    def storage_option_types(self) -> dict[str, type] | None:
        """Each installed backend's `options_type`, for checking a job's storage options; None when
        the backends cannot be listed (that error is reported when the job chooses its storage)."""
        try:
            backends = self.storage_backends()
        except VmafxError:
            return None
        return {name: p.item.options_type for name, p in backends.items() if p.item.options_type is not None}

    def scorers(self) -> dict[str, Provided]:
        return self._collect("vmafx_scorers", "scorer")

    def options_type(self, name: str) -> type | None:
        """The options class of scorer `name`, or None when no such scorer is loaded."""
        provided = self.scorers().get(name)
        return provided.item.options_type if provided else None

    def parse_job(self, data: Mapping[str, Any], origin: str) -> tuple[Any, Any]:
        """`job.parse_job` with these plugins' scorer options and storage options: the job and its
        structured scorer options, or InvalidJob listing every bad field."""
        from vmafx_core.job import parse_job

        return parse_job(data, origin, self.options_type, self.storage_option_types)

    def scorer(self, name: str) -> Scorer:
        scorers = self.scorers()
        if name not in scorers:
            missing_scorer(name, self.allow)
            raise BadInput(f"no scorer named {name!r}; installed: {', '.join(sorted(scorers)) or 'none'}")
        item: Scorer = scorers[name].item
        return item

    def scorer_release(self, name: str) -> str:
        """`package version` of what provides scorer `name`: its results and cache entries name it,
        since a plugin upgrade may change its numbers."""
        provided = self.scorers().get(name)
        info = next((i for i in self.infos if provided is not None and i.name == provided.plugin and not i.error),
                    None)
        return f"{info.package} {info.version}" if info is not None else "unknown"

    def failures(self) -> list[PluginInfo]:
        return [i for i in self.infos if i.error]

    def machine_storage_mode(self) -> str:
        """This machine's storage mode (`$VMAFX_STORAGE_MODE`, "auto" when unset); EnvironmentMissing if unknown."""
        return _node_storage_mode({name: p.item for name, p in self.storage_backends().items()})

    def clean_stale(self) -> list[str]:
        """Remove what vmafx runs that died left behind: each backend's leftovers (mounts first),
        then the temp folders of dead owners. Never raises; returns what was removed."""
        removed: list[str] = []
        try:
            backends = [p.item for p in self.storage_backends().values()]
        except VmafxError:
            backends = []
        for backend in backends:
            if backend.clean_stale is None:
                continue
            try:
                removed += backend.clean_stale()
            except Exception as exc:  # noqa: BLE001 - a broken cleanup must not stop a job
                log.warning("storage %s could not clean what dead runs left: %s", backend.name, exc)
        return removed + tempdirs.sweep()

    def choose_storage(self, uris: Sequence[str], mode: str,
                       options: Mapping[str, Any] | None = None) -> list[StorageBackend]:
        """The backend for each URI: the one named by `mode`, or per URI under "auto".

        `options` are the job's storage options: they may change what is usable (`rclone_binary`).
        Under "auto" the candidates are asked in priority order and the first usable one wins, so
        a usable favourite spares the others' checks.
        """
        backends = {name: p.item for name, p in self.storage_backends().items()}
        if not backends:
            raise EnvironmentMissing(NO_STORAGE)
        node_mode = _node_storage_mode(backends)  # checked on every job: a wrong value is never ignored
        via = ""
        if mode == "auto" and node_mode != "auto":
            mode, via = node_mode, f" (the {ENV_STORAGE_MODE} of this machine)"
        if mode != "auto":
            if mode not in backends:
                hint = next((b.suggests[mode] for b in backends.values() if mode in b.suggests), None)
                known = ", ".join(["auto", *sorted(backends)])
                if hint:
                    raise EnvironmentMissing(f"storage {mode!r}{via} is not installed; {hint} (installed: {known})")
                raise BadInput(f"unknown storage {mode!r}; choose one of {known}")
            backend = backends[mode]
            _require_usable(backend, options, via)
            for uri in uris:
                if not backend.handles_for(uri, options):
                    readers = [b.name for b in backends.values() if b.name != mode and b.handles_for(uri, options)]
                    where = (f"; the installed storage {' and '.join(readers)} reads it (--storage {readers[0]}, or "
                             "auto)" if readers else _install_hint(backends.values(), uri))
                    raise BadInput(f"storage {mode!r}{via} cannot read {uri!r}{where}")
            return [backend] * len(uris)
        chosen: list[StorageBackend] = []
        answers: dict[str, Availability] = {}  # asked once per job, not once per input
        for uri in uris:
            candidates = _auto_candidates(backends.values(), uri, options)
            if not candidates:
                raise BadInput(f"no installed storage can read {uri!r}" + _install_hint(backends.values(), uri))
            refused: list[str] = []
            for backend in candidates:
                if backend.name not in answers:
                    answers[backend.name] = backend.availability_for(options)
                if answers[backend.name].usable:
                    chosen.append(backend)
                    break
                refused.append(f"{backend.name}: {answers[backend.name].reason}")
            else:
                raise EnvironmentMissing(f"no usable storage for {uri!r} ({'; '.join(refused)})")
        return chosen

    def choose_writer(self, destination: str, mode: str, options: Mapping[str, Any] | None = None
                      ) -> StorageBackend:
        """The backend that writes a stream to `destination` (`--save-encode`).

        The job's own backend when it names one that handles the destination and can write;
        otherwise the usable writing backend of highest `auto_priority` that handles it.
        """
        backends = {name: p.item for name, p in self.storage_backends().items()}
        if not backends:
            raise EnvironmentMissing(NO_STORAGE)
        writers = [b for b in backends.values() if b.write is not None and b.handles_for(destination, options)]
        named = backends.get(mode)
        if named is not None and named in writers:
            _require_usable(named, options)
            return named
        if not writers:
            raise BadInput(f"--save-encode {destination}: no installed storage can write there"
                           + _install_hint(backends.values(), destination))
        refused: list[str] = []
        for backend in sorted(writers, key=lambda b: -(b.auto_priority or 0)):
            availability = backend.availability_for(options)
            if availability.usable:
                return backend
            refused.append(f"{backend.name}: {availability.reason}")
        raise EnvironmentMissing(f"--save-encode {destination}: no usable storage can write there "
                                 f"({'; '.join(refused)})")


_shared: Plugins | None = None
_shared_lock = threading.Lock()
#: the operator chose this process's plugins (--plugins): a job's own `plugins` list is not used
_operator_chose = False
#: the plugins of the allow-lists jobs named, loaded once each
_by_allow: dict[tuple[str, ...], Plugins] = {}


def allow_list(names: str) -> list[str]:
    """`--plugins a,b` (the flag form of $VMAFX_PLUGINS) as a list of plugin names."""
    return [n.strip() for n in names.split(",") if n.strip()]


def use_only(names: Sequence[str]) -> Plugins:
    """From now on this process's plugins are those the allow-list `names` admits (`--plugins`)."""
    global _shared, _operator_chose
    with _shared_lock:
        _shared = Plugins(allow=names)
        _operator_chose = True
        return _shared


def for_job(data: Any) -> Plugins:
    """The plugins a job (as given, before parsing) loads: its own `plugins` allow-list, unless the
    operator limited this process's (--plugins, $VMAFX_PLUGINS), which wins as --allow-root does;
    else this process's. An ill-typed `plugins` field is left to `parse_job` to report."""
    names = data.get("plugins") if isinstance(data, Mapping) else None
    if (names is None or _operator_chose or os.environ.get(ENV_ALLOW) is not None
            or not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names)):
        return shared()
    key = tuple(sorted({n.strip() for n in names if n.strip()}))
    with _shared_lock:
        if key not in _by_allow:
            _by_allow[key] = Plugins(allow=key)
        return _by_allow[key]


def shared() -> Plugins:
    """This process's plugins, loaded on first use: a batch, a Dask worker, a command load them once."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Plugins()
        return _shared


def _require_usable(backend: StorageBackend, options: Mapping[str, Any] | None, via: str = "") -> None:
    availability = backend.availability_for(options)
    if not availability.usable:
        raise EnvironmentMissing(f"storage {backend.name!r}{via} is not usable here: {availability.reason}")


def _node_storage_mode(backends: Mapping[str, Any]) -> str:
    """`$VMAFX_STORAGE_MODE`: "auto" when unset or empty, else a storage mode vmafx knows (exit 3 if not)."""
    value = os.environ.get(ENV_STORAGE_MODE, "").strip()
    if not value:
        return "auto"
    suggested = {name for backend in backends.values() for name in backend.suggests}
    if value == "auto" or value in backends or value in suggested:
        return value
    known = ", ".join(["auto", *sorted({*suggested, *backends})])
    raise EnvironmentMissing(f"{ENV_STORAGE_MODE}={value!r} is not a storage mode; set it to one of {known}, "
                             "or unset it")


def _scheme(uri: str) -> str | None:
    """The URL scheme of `uri` in lower case ("zip" of zip:///a.zip!/b), or None for a path or remote:path."""
    scheme, sep, _ = uri.partition("://")
    if not sep or not scheme[:1].isalpha() or not all(c.isalnum() or c in "+.-" for c in scheme):
        return None
    return scheme.lower()


def _auto_candidates(backends: Iterable[StorageBackend], uri: str, options: Mapping[str, Any] | None
                     ) -> list[StorageBackend]:
    """The backends `--storage auto` asks for `uri`, best first: those that own its scheme when any
    does (`StorageBackend.schemes`, whatever their priority), else every backend with a priority."""
    scheme = _scheme(uri)
    backends = list(backends)
    owners = [b for b in backends if scheme is not None and scheme in b.schemes]
    pool = owners or [b for b in backends if b.auto_priority is not None]
    return sorted((b for b in pool if b.handles_for(uri, options)), key=lambda b: -(b.auto_priority or 0))


def _install_hint(backends: Iterable[StorageBackend], uri: str) -> str:
    """"; " and what every installed backend says to install for `uri` (each hint once), or nothing."""
    hints: list[str] = []
    for backend in backends:
        if backend.install_hint is None:
            continue
        try:
            hint = backend.install_hint(uri)
        except Exception as exc:  # noqa: BLE001 - a broken hint must not hide the error it explains
            log.debug("storage %s could not give an install hint: %s", backend.name, exc)
            continue
        if hint and hint not in hints:
            hints.append(hint)
    return "".join("; " + hint for hint in hints)


def missing_scorer(name: str, allow: set[str] | None) -> None:
    """Raise EnvironmentMissing (exit 3) naming the package to install for a scorer this project
    publishes, or the allow-list that left it out; return for any other name."""
    package = SUGGESTED_SCORERS.get(name)
    if package is None:
        return
    if allow is not None:
        raise EnvironmentMissing(f"scorer {name!r} is not loaded: its plugin is not in the allowed plugins "
                                 f"({', '.join(sorted(allow)) or 'none'}; set by --plugins, {ENV_ALLOW} or the "
                                 f"job's plugins); add {name}, or install {package} if it is missing")
    raise EnvironmentMissing(f"scorer {name!r} is not installed; install {package} "
                             f"(pip install {package}, or -e plugins/{name.replace('-', '_')} from a checkout)")


def describe_options(options_type: type) -> list[dict[str, Any]]:
    """A scorer's options as `vmafx plugins` shows them: name, type and default of each field."""
    import typing

    from vmafx_core.job import converter

    try:
        hints = typing.get_type_hints(options_type)
    except Exception:  # noqa: BLE001 - a name the plugin's module cannot resolve: show it as written
        hints = {}
    rows: list[dict[str, Any]] = []
    for field in attrs.fields(options_type):
        kind = hints.get(field.name, field.type)
        supertype = getattr(kind, "__supertype__", None)  # a NewType: its name and what it is made of
        text = (f"{kind.__name__}({getattr(supertype, '__name__', supertype)})" if supertype is not None
                else getattr(kind, "__name__", None) or str(kind))
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()  # type: ignore[call-arg]
        try:
            default = converter.unstructure(default)
        except Exception:  # noqa: BLE001 - shown as it is
            default = repr(default)
        rows.append({"name": field.name, "type": text, "default": default})
    return rows


def scorer_options_from_flags(plugins: Plugins, scorer: dict[str, Any], args: Sequence[str]) -> None:
    """The chosen scorer must be loaded (exit 3 naming its package), and each --scorer-option
    KEY=VALUE is typed by its options class: a wrong one is one line naming it, before anything runs."""
    from vmafx_core.job import DEFAULT_SCORER, structure

    name = str(scorer.get("name", DEFAULT_SCORER))
    provided = plugins.scorers().get(name)
    if provided is None:
        missing_scorer(name, plugins.allow)
        if not args:
            return  # parse_job names the unknown scorer with the other bad fields
        raise BadInput(f"no scorer named {name!r}; installed: {', '.join(sorted(plugins.scorers())) or 'none'}")
    options_type = provided.item.options_type
    fields = [f.name for f in attrs.fields(options_type)]
    for arg in args:
        key, sep, text = arg.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"--scorer-option {arg!r}: give KEY=VALUE")
        if key not in fields:
            raise BadInput(f"--scorer-option {key}: scorer {name!r} has no option {key!r}; its options: "
                           f"{', '.join(fields) or 'none'} (`vmafx plugins` shows their types)")
        value = option_value(text)
        _, errors = structure({key: value}, options_type, "")
        if errors:
            raise BadInput(f"--scorer-option {key}: {errors[0].split(': ', 1)[-1]}")
        scorer[key] = value


def option_value(text: str) -> Any:
    """A --scorer-option value: a TOML value when it is one (4, true, ["a", "b"]), else the text."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
