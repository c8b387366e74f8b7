"""The hooks a vmafx plugin can implement.

A plugin is a module (or object) with functions decorated by `vmafx_core.hookimpl`, registered
under the entry-point group ``vmafx`` of its package. See docs/PLUGINS.md for the whole guide.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pluggy

from vmafx_core.types import CommandOption, Scorer, StorageBackend

PROJECT = "vmafx"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def vmafx_storage_backends() -> Iterable[StorageBackend]:  # type: ignore[empty-body]
    """Return the storage backends this plugin provides.

    Each backend says which URIs it handles, whether it is usable here, and prepares all the
    inputs of a job at once inside a context manager that always cleans up. docs/PLUGINS.md ("The
    storage contract in full") says when each callable is called, from which thread, and what it
    may raise; `vmafx_core.testing.storage.StorageBackendTests` checks a backend against it.

    Example: a backend that serves files from a folder (option ``demo_root``) for ``demo:NAME`` URIs::

        import contextlib, os
        import attrs
        from vmafx_core import hookimpl
        from vmafx_core.errors import BadInput
        from vmafx_core.types import PreparedInput, StorageBackend

        @attrs.frozen
        class DemoOptions:  # declared, so `--storage-option demo_root=/data` is accepted and checked
            demo_root: str = "/srv/videos"

        @contextlib.contextmanager
        def _prepare(inputs, context):
            root = context.options.get("demo_root", DemoOptions().demo_root)  # given as is: no defaults
            prepared = []
            for i in inputs:
                path = os.path.join(root, i.uri[5:])
                if not os.path.isfile(path):
                    raise BadInput(f"{i.role} {i.uri}: no such file under {root}")
                prepared.append(PreparedInput(role=i.role, url="file:" + path, display=i.uri,
                                              size=os.path.getsize(path)))
            yield prepared

        @hookimpl
        def vmafx_storage_backends():
            return [
                StorageBackend(
                    name="demo",
                    description="files under a folder as demo:NAME",
                    handles=lambda uri: uri.startswith("demo:"),
                    prepare=_prepare,
                    options_type=DemoOptions,
                    auto_priority=10,
                )
            ]
    """


@hookspec
def vmafx_scorers() -> Iterable[Scorer]:  # type: ignore[empty-body]
    """Return the scorers this plugin provides.

    A scorer names the metrics it produces, an attrs class for its options, and a function that
    scores one prepared pair and returns per-frame values.

    This hook is called once per plugin manager (once per process for `vmafx run`, a batch or a
    Dask worker; afresh by `vmafx plugins` and `vmafx doctor`). The descriptor's callables are
    called by the core as follows. "The job's thread" is the main thread under `vmafx run`, one
    of `vmafx batch`'s worker threads (several jobs at once) and a Dask worker's task thread, so
    every callable must be safe to call from several threads at once.

    - ``availability()``: once per job, group or ladder before anything is read, in the job's
      thread; once by each `vmafx plugins` and `vmafx doctor`. Cheap and never raising.
    - ``check(options, ffmpeg)``: once per job, group or ladder (and again for a member re-run
      alone), after ffmpeg is found and before any input is prepared, in the job's thread.
    - ``score(request)``: once per pair, in the job's thread; again for a pair of a shared pass
      that failed its checks or whose pass failed. It may start threads and processes but returns
      (or raises) only after reaping them. ``request.progress`` and ``request.cancelled`` may be
      called from any thread the scorer starts.
    - ``score_shared(requests, shared=None, reference_info=None)``: once per group of distorted
      (`vmafx run REF D1 D2`, a batch group) or ladder, with two or more requests, in the job's
      thread; the requests' inputs are already prepared. `CannotShare` is expected before any
      input is read.
    - ``cache_facts(options)``: once per job or group member while the result cache is in use,
      after its inputs are prepared and before it is scored, in the job's thread.
    - ``summary_metric(name)``: by `vmafx run` (main thread) once per metric of the result.
    - ``threads_option`` is read by `vmafx batch` when it parses each job.

    Example: a scorer that reports the frame index as its only metric::

        import attrs
        from vmafx_core import hookimpl
        from vmafx_core.types import Scorer, ScoreOutput

        @attrs.frozen
        class CountOptions:
            start: int = 0

        def _score(request):
            n = 10
            frames = [{"index": float(request.options.start + i)} for i in range(n)]
            return ScoreOutput(frames=frames, reference_frames=n, distorted_frames=n)

        @hookimpl
        def vmafx_scorers():
            return [Scorer(name="count", description="frame index", metrics=("index",),
                           options_type=CountOptions, score=_score)]
    """


@hookspec
def vmafx_command_options() -> Iterable[CommandOption]:  # type: ignore[empty-body]
    """Return the command-line options this plugin adds to `vmafx run`.

    A scorer or a backend owns its flags: each sets one of its options in the job, exactly as
    the same key in a job file would, and `vmafx run --help` lists it. Called once per process,
    when the `run` command is built (before its arguments are parsed), in the main thread.

    Example: the demo backend's `demo_root` as `--demo-root`::

        from vmafx_core import hookimpl
        from vmafx_core.types import CommandOption

        @hookimpl
        def vmafx_command_options():
            return [CommandOption(flag="--demo-root", key="demo_root", target="storage",
                                  value_type="path", help="Folder demo:NAME URIs are read from.")]
    """


@hookspec
def vmafx_register_commands(cli: Any) -> None:
    """Add commands to `vmafx` (after llm's `register_commands`): `cli` is the click group.

    Called once per process, when `vmafx` lists its commands or is asked for one it does not
    define itself, in the main thread. Keep the command's click code in the plugin's own
    command-line module, imported by this hook. A command that raises a
    `vmafx_core.errors.VmafxError` for a user's mistake should print it with
    `vmafx_core.clierrors.user_errors`.

    Example: the builtin libvmaf scorer adds `vmafx models`::

        from vmafx_core import hookimpl

        @hookimpl
        def vmafx_register_commands(cli):
            from vmafx_core.scorers.libvmaf.command import models
            cli.add_command(models)
    """
