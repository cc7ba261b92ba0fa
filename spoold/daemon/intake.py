"""What a claimed entry asks for: its main document, source type and effective options.

Runs in the daemon on the claimed folder before any worker sees it, using lstat only:
symlinks, FIFOs, devices and sockets are rejected without ever being opened, and
job.json is read with a size cap. Every problem is a JobError naming what to fix.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ErrorCode, JobError
from ..settings import JobDefaults, JobFile, describe_errors
from ..spool.after import AfterRef
from ..spool.entries import JOB_FILE, REFERENCE_DOCX
from ..spool.formats import SUFFIX_TYPES
from ..spool.jobjson import JOB_FILE_CAP, JobJson


@dataclass
class JobPlan:
    job_root: Path
    main: Path
    source_type: str
    options: dict[str, Any]
    targets: tuple[str, ...]
    priority: int
    timeout_s: float
    max_attempts: int
    idempotency_key: str | None = None
    reference: Path | None = None  # the job folder's reference.docx
    after: tuple[AfterRef, ...] = ()  # job.json `after` (daemon/waiting.py)
    requested_id: str | None = None  # job.json's `id` (spool/ids.py)


def _kind_word(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def reject_special(path: Path, label: str) -> os.stat_result:
    st = os.lstat(path)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"{label} is {_kind_word(st.st_mode)}; spoold never opens or follows those",
            hint="Drop a regular file or folder instead.",
        )
    return st


def _job_file(folder: Path, known: JobJson | None) -> JobFile | None:
    """The claimed folder's job.json (None: it has none): as read before the claim when
    the file is still that one (an lstat; spool/jobjson.py), else read now."""
    if known is not None and known.is_current(folder):
        return None if known.data is None else _validated(known.data)
    path = folder / JOB_FILE
    if not os.path.lexists(path):
        return None
    st = reject_special(path, JOB_FILE)
    if st.st_size > JOB_FILE_CAP:
        raise JobError(ErrorCode.INPUT_INVALID, f"{JOB_FILE} is larger than 1 MiB")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise JobError(ErrorCode.INPUT_INVALID, f"{JOB_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise JobError(ErrorCode.INPUT_INVALID, f"{JOB_FILE} must hold a JSON object")
    return _validated(data)


def _validated(data: dict[str, Any]) -> JobFile:
    try:
        return JobFile(**data)
    except ValidationError as exc:
        raise JobError(
            ErrorCode.INPUT_INVALID,
            describe_errors(exc, JOB_FILE),
            hint="Fix or remove the key named in the message; the keys are in docs/configuration.md.",
        ) from exc


def _candidates(folder: Path) -> list[str]:
    names = []
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or name == REFERENCE_DOCX:
            continue
        if Path(name).suffix.lower() in SUFFIX_TYPES:
            names.append(name)
    return names


def plan_job(
    entry_path: Path,
    defaults: JobDefaults,
    max_input_bytes: int,
    allow_fetch: list[str] | None = None,
    job_json: JobJson | None = None,
) -> JobPlan:
    """Inspect a claimed entry (a file, or a job folder) and decide what to do.

    `job_json`: the folder's job.json as read before the claim, used if unchanged."""
    st = reject_special(entry_path, entry_path.name)
    job_file: JobFile | None = None
    reference: Path | None = None
    if stat.S_ISDIR(st.st_mode):
        job_root = entry_path
        job_file, main, main_st = _folder_main(entry_path, job_json)
        if os.path.lexists(entry_path / REFERENCE_DOCX):
            reject_special(entry_path / REFERENCE_DOCX, REFERENCE_DOCX)
            reference = entry_path / REFERENCE_DOCX
    else:
        job_root, main, main_st = entry_path.parent, entry_path, st
    source_type = SUFFIX_TYPES.get(main.suffix.lower())
    if source_type is None:
        raise JobError(
            ErrorCode.INPUT_UNSUPPORTED,
            f"{main.name!r} is not a supported document type (by its name)",
        )
    if main_st.st_size > max_input_bytes:
        raise JobError(
            ErrorCode.INPUT_TOO_LARGE,
            f"{main.name} is {main_st.st_size} bytes; the limit is {max_input_bytes}",
        )
    jf = job_file or JobFile()
    options = _effective_options(jf, defaults, allow_fetch, reference is not None)
    return JobPlan(
        job_root=job_root,
        main=main,
        source_type=source_type,
        options=options,
        targets=tuple(options["targets"]),
        priority=options["priority"],
        timeout_s=options["timeout_s"],
        max_attempts=options["max_attempts"],
        idempotency_key=jf.idempotency_key,
        reference=reference,
        after=tuple(jf.after or ()),
        requested_id=jf.id,
    )


def _folder_main(
    folder: Path, known: JobJson | None
) -> tuple[JobFile | None, Path, os.stat_result]:
    """A job folder's job.json (if any), its main document and that document's lstat."""
    job_file = _job_file(folder, known)
    if job_file is not None and job_file.main is not None:
        main_name = job_file.main
        if "/" in main_name or main_name.startswith(".") or main_name in ("", ".."):
            raise JobError(
                ErrorCode.INPUT_INVALID,
                f"{JOB_FILE}: key 'main' must name a file at the top of the job folder",
            )
    else:
        found = _candidates(folder)
        if not found:
            raise JobError(
                ErrorCode.INPUT_UNSUPPORTED,
                "the job folder holds no Markdown, HTML or PDF document",
            )
        if len(found) > 1:
            raise JobError(
                ErrorCode.INPUT_INVALID,
                f"the job folder holds {len(found)} candidate main documents "
                f"({', '.join(found[:5])}); name one as 'main' in {JOB_FILE}",
            )
        main_name = found[0]
    main = folder / main_name
    try:
        main_st = reject_special(main, main_name)
    except (FileNotFoundError, ValueError):  # ValueError: a NUL in the name
        raise JobError(
            ErrorCode.INPUT_INVALID, f"{JOB_FILE}: key 'main': {main_name!r} is missing"
        ) from None
    if stat.S_ISDIR(main_st.st_mode):
        raise JobError(ErrorCode.INPUT_INVALID, f"the main document {main_name!r} is a folder")
    return job_file, main, main_st


def _effective_options(
    jf: JobFile, defaults: JobDefaults, allow_fetch: list[str] | None, has_reference: bool
) -> dict[str, Any]:
    """job.json over the spool's (or route's) defaults."""
    options: dict[str, Any] = {
        "targets": list(jf.targets or defaults.targets),
        "theme": jf.theme or defaults.theme,
        "page_size": jf.page_size or defaults.page_size,
        "margins": jf.margins or defaults.margins,
        "metadata": dict(jf.metadata or {}),
        "priority": jf.priority if jf.priority is not None else defaults.priority,
        "timeout_s": jf.timeout_s or defaults.timeout_s,
        "max_attempts": jf.max_attempts or defaults.max_attempts,
        "on_duplicate": defaults.on_duplicate,
    }
    if allow_fetch:
        options["allow_fetch"] = list(allow_fetch)
    if has_reference:
        options["reference_docx"] = REFERENCE_DOCX
    if jf.after:
        options["after"] = [ref.as_json() for ref in jf.after]
    return options
