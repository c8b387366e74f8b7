"""The hooks a vmafx plugin can implement.

A plugin is a module (or object) with functions decorated by `vmafx_core.hookimpl`, registered
under the entry-point group ``vmafx`` of its package. See docs/PLUGINS.md for the whole guide.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from vmafx_core.types import Scorer, StorageBackend

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
