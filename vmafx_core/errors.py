"""Exit codes and the errors that map to them.

Every failure a user can cause or meet is one of these: the CLI prints the message on one line and
exits with the code. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented exit codes of every `vmafx` command."""

    OK = 0
    JOB_FAILED = 1  #: the job ran and failed: unreadable stream, ffmpeg error, truncated input
    BAD_INPUT = 2  #: the user's input is wrong: usage, job file, missing object, frame mismatch
    ENVIRONMENT = 3  #: something the job needs is missing here: ffmpeg, libvmaf, rclone, a plugin
    CORRUPT = 4  #: the storage reported that what it served is not what was stored (size, checksum)
    INTERRUPTED = 130  #: stopped by Ctrl-C (SIGINT) or SIGTERM; everything was cleaned up


class VmafxError(Exception):
    """An expected failure: one line for the user and an exit code."""

    exit_code: ExitCode = ExitCode.JOB_FAILED

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: extra lines (e.g. the tail of a child's stderr), shown under the message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class JobFailed(VmafxError):
    exit_code = ExitCode.JOB_FAILED


class BadInput(VmafxError):
    exit_code = ExitCode.BAD_INPUT


class EnvironmentMissing(VmafxError):
    exit_code = ExitCode.ENVIRONMENT


class Unreachable(EnvironmentMissing):
    """The storage did not answer (refused, timed out, no such host): the environment, exit 3.

    While preparing, it is retried as long as the job's preparation time is left, unless
    `retryable` is false (the check that raised it retried already).
    """

    def __init__(self, message: str, *, detail: str | None = None, retryable: bool = True) -> None:
        super().__init__(message, detail=detail)
        self.retryable = retryable


class Corrupt(JobFailed):
    """What a storage backend served is not what was stored: a size or checksum mismatch, a member
    that fails its archive's CRC. No score is reported; scoring the same input again will not help
    until the stored copy is fixed, which is why it has its own exit code."""

    exit_code = ExitCode.CORRUPT


class Interrupted(VmafxError):
    exit_code = ExitCode.INTERRUPTED
