"""What the storage behind an input says went wrong while ffmpeg read it, for every backend alike.

`PreparedInput.health` is polled while ffmpeg reads (a probe or the scoring run) and asked once more
when ffmpeg fails: a read the store failed reaches ffmpeg only as "Input/output error" (a mount)
or a dropped connection (http), while the backend knows the cause (rclone's own error naming the
remote). The job then fails with one line of one shape whichever backend read the input:
`ROLE URI: CAUSE WHEN; no score is reported`, the error's class giving the exit code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from vmafx_core.errors import JobFailed, VmafxError
from vmafx_core.types import PreparedInput


def storage_failure(inputs: Sequence[PreparedInput], when: str, detail: str | None = None) -> VmafxError | None:
    """The error of the first input whose storage reports it broke, or None. `when` says where the
    job was ("while scoring (after frame 9)"); `detail` is shown under a cause that has none."""
    for prepared in inputs:
        problem = prepared.health() if prepared.health is not None else None
        if not problem:
            continue
        kind = type(problem) if isinstance(problem, VmafxError) else JobFailed
        cause = problem.message if isinstance(problem, VmafxError) else problem
        more = problem.detail if isinstance(problem, VmafxError) and problem.detail else detail
        return kind(f"{prepared.role} {prepared.display}: {cause} {when}; no score is reported", detail=more)
    return None


def await_storage_failure(inputs: Sequence[PreparedInput], when: str, detail: str | None = None,
                          grace: float = 1.0) -> VmafxError | None:
    """`storage_failure`, asked for up to `grace` seconds: called once ffmpeg failed, whose failure
    may reach vmafx a moment before the storage's log line saying why."""
    if not any(p.health is not None for p in inputs):
        return None
    deadline = time.monotonic() + grace
    while True:
        failure = storage_failure(inputs, when, detail)
        if failure is not None or time.monotonic() >= deadline:
            return failure
        time.sleep(0.05)
