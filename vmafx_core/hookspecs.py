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
    inputs of a job at once inside a context manager that always cleans up.

    Example: a backend that serves files from a fixed folder for ``demo:NAME`` URIs::

        import contextlib, os
        from vmafx_core import hookimpl
        from vmafx_core.types import PreparedInput, StorageBackend

        @contextlib.contextmanager
        def _prepare(inputs, context):
            root = context.options.get("demo_root", "/srv/videos")
            yield [
                PreparedInput(role=i.role, url=os.path.join(root, i.uri[5:]), display=i.uri)
                for i in inputs
            ]

        @hookimpl
        def vmafx_storage_backends():
            return [
                StorageBackend(
                    name="demo",
                    description="files under /srv/videos as demo:NAME",
                    handles=lambda uri: uri.startswith("demo:"),
                    prepare=_prepare,
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
