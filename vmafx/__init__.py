"""vmafx from Python: `import vmafx`, the name the package installs as and the command is called.

    import vmafx

    scored = vmafx.score("ref.mp4", "dis.mp4", features=["psnr"])
    scored.vmaf, scored.metrics["psnr_y"].mean, scored.to_pandas()

The functions live in `vmafx_core.api` (the command line's own code paths, README: Python API);
this package only names them, and loads them on first use so `import vmafx` stays cheap.
"""

from typing import TYPE_CHECKING, Any

from vmafx_core import __version__
from vmafx_core.errors import (
    BadInput,
    EnvironmentMissing,
    ExitCode,
    Interrupted,
    JobFailed,
    Unreachable,
    VmafxError,
)

if TYPE_CHECKING:
    from vmafx_core.api import (
        BatchResult,
        Failed,
        Scored,
        jobs_from_listing,
        load_job,
        make_job,
        read_batch,
        report,
        run_batch,
        score,
        score_ladder,
        score_many,
    )

_API = ("BatchResult", "Failed", "Scored", "jobs_from_listing", "load_job", "make_job", "read_batch", "report",
        "run_batch", "score", "score_ladder", "score_many")

__all__ = ["__version__", "BadInput", "EnvironmentMissing", "ExitCode", "Interrupted", "JobFailed", "Unreachable",
           "VmafxError", "BatchResult", "Failed", "Scored", "jobs_from_listing", "load_job", "make_job", "read_batch",
           "report", "run_batch", "score", "score_ladder", "score_many"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from vmafx_core import api

        return getattr(api, name)
    raise AttributeError(f"module 'vmafx' has no attribute {name!r}")
