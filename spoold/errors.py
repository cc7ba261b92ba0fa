"""The closed list of job error codes, and the exceptions that carry them.

Every failure a job can meet ends as one `JobError`: a code from `ErrorCode`, a
message for the person who dropped the file, a hint saying what to do, and whether
a retry could help. The manifest, ERROR.txt, events and exit codes all derive from it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    INPUT_UNSUPPORTED = "input_unsupported"
    INPUT_INVALID = "input_invalid"
    INPUT_TOO_LARGE = "input_too_large"
    RESOURCE_INVALID = "resource_invalid"
    DUPLICATE = "duplicate"
    CONVERSION_FAILED = "conversion_failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    WORKER_LOST = "worker_lost"
    RESOURCE_LIMIT = "resource_limit"
    IO_ERROR = "io_error"
    DISK_FULL = "disk_full"
    INTERNAL_ERROR = "internal_error"
    DEPENDENCY_FAILED = "dependency_failed"  # a job named in `after` failed or was cancelled


# Whether a retry can help, unless the spool says otherwise (timeouts are configurable).
RETRYABLE: dict[ErrorCode, bool] = {
    ErrorCode.INPUT_UNSUPPORTED: False,
    ErrorCode.INPUT_INVALID: False,
    ErrorCode.INPUT_TOO_LARGE: False,
    ErrorCode.RESOURCE_INVALID: False,
    ErrorCode.DUPLICATE: False,
    ErrorCode.CONVERSION_FAILED: False,
    ErrorCode.TIMEOUT: False,
    ErrorCode.CANCELLED: False,
    ErrorCode.WORKER_LOST: True,
    ErrorCode.RESOURCE_LIMIT: False,
    ErrorCode.IO_ERROR: True,
    ErrorCode.DISK_FULL: True,
    ErrorCode.INTERNAL_ERROR: False,
    ErrorCode.DEPENDENCY_FAILED: False,
}

DEFAULT_HINTS: dict[ErrorCode, str] = {
    ErrorCode.INPUT_UNSUPPORTED: "Drop a Markdown (.md), HTML (.html) or PDF (.pdf) file.",
    ErrorCode.INPUT_INVALID: "Fix the input named in the message and drop it again.",
    ErrorCode.INPUT_TOO_LARGE: "Split the document or ask the administrator to raise the limit.",
    ErrorCode.RESOURCE_INVALID: "Rebuild resources.zip with plain relative paths and drop again.",
    ErrorCode.DUPLICATE: "This input was converted before; see duplicate_of in the manifest.",
    ErrorCode.CONVERSION_FAILED: "Check the document for errors; the message says where.",
    ErrorCode.TIMEOUT: "Simplify the document or raise timeout_s in job.json or spool.toml.",
    ErrorCode.CANCELLED: "The job was cancelled on request; to run it again, run `spoold retry` "
    "on this spool with the job's id (job_id in manifest.json).",
    ErrorCode.WORKER_LOST: "The worker stopped unexpectedly; to try again, run `spoold retry` "
    "on this spool with the job's id (job_id in manifest.json).",
    ErrorCode.RESOURCE_LIMIT: "The document needs more memory or CPU than allowed; simplify it.",
    ErrorCode.IO_ERROR: "A disk or network filesystem error occurred; retry when it is healthy.",
    ErrorCode.DISK_FULL: "Free disk space on the spool, then run `spoold retry` on this spool "
    "with the job's id (job_id in manifest.json).",
    ErrorCode.INTERNAL_ERROR: "This is a bug in spoold; please report it with the job's manifest.",
    ErrorCode.DEPENDENCY_FAILED: "A job named in `after` failed or was cancelled: fix and retry "
    'that job, then drop this one again (or give the reference "on_failure": "run").',
}


# The default hints that name a command on the job, with the job's real id (job_hint).
_JOB_HINTS: dict[ErrorCode, str] = {
    ErrorCode.CANCELLED: "The job was cancelled on request; to run it again, run `spoold retry` "
    "on this spool with job id {job_id}.",
    ErrorCode.WORKER_LOST: "The worker stopped unexpectedly; to try again, run `spoold retry` "
    "on this spool with job id {job_id}.",
    ErrorCode.DISK_FULL: "Free disk space on the spool, then run `spoold retry` on this spool "
    "with job id {job_id}.",
}


def job_hint(code: ErrorCode, hint: str, job_id: str) -> str:
    """`hint` for one job: a default hint that names a command gets the job's real id.

    Errors are made where they are found, often before a job id exists; the code that
    records the error for a job (manifest, ERROR.txt) calls this with the id."""
    template = _JOB_HINTS.get(code)
    if template is None or hint != DEFAULT_HINTS[code]:
        return hint
    return template.format(job_id=job_id)


@dataclass(frozen=True)
class ErrorInfo:
    """A job's error as data: what the worker hands back, the parts report, the manifest
    and the job record show. Frozen and picklable; `JobError.info()` makes one."""

    # The manifest's models validate it as it is.
    __pydantic_config__: ClassVar[dict[str, object]] = {"extra": "forbid"}

    code: ErrorCode
    message: str
    hint: str
    retryable: bool

    def for_job(self, job_id: str) -> ErrorInfo:
        """The error as recorded for one job: a default hint names the job's real id."""
        hint = job_hint(self.code, self.hint, job_id)
        return self if hint == self.hint else replace(self, hint=hint)


class SpooldError(Exception):
    """Base class for errors spoold raises on purpose."""


class ConfigError(SpooldError):
    """Invalid settings: names the file, the key and the allowed values (exit 78)."""


class SpoolError(SpooldError):
    """A spool that cannot be used as it is (missing, split across filesystems...)."""


class JobError(SpooldError):
    """A job failure with a closed error code, safe to show to the job's owner."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        hint: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.hint = hint if hint is not None else DEFAULT_HINTS[self.code]
        self.retryable = RETRYABLE[self.code] if retryable is None else retryable

    def __repr__(self) -> str:
        return f"JobError({self.code.value!r}, {self.message!r})"

    def info(self) -> ErrorInfo:
        return ErrorInfo(self.code, self.message, self.hint, self.retryable)


def io_error_code(exc: OSError) -> ErrorCode:
    """Map an OSError met while working on a job to its error code."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ErrorCode.DISK_FULL
    return ErrorCode.IO_ERROR
