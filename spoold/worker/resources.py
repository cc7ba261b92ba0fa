"""A job's resources.zip, extracted once per job into resources/ beside it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..convert.resources import RESOURCES_DIR, RESOURCES_ZIP, extract_resources
from ..errors import ErrorCode, JobError

# In the running folder (outside the sandbox): resources/ came from this job's resources.zip.
RESOURCES_MARK = ".spoold-resources"
RESOURCES_STAGING = ".spoold-resources-tmp."


def has_archive(job_root: Path) -> bool:
    return os.path.lexists(job_root / RESOURCES_ZIP)


def prepare_resources(job_root: Path, folder: Path) -> None:
    """Extract the job's resources.zip into resources/ beside it, once per job.

    Runs before anything is converted or hashed. A bad archive raises
    JobError(resource_invalid) with nothing written. Later attempts of the same job
    (retries, resume, `spoold retry`) find the mark in the running folder and reuse
    the folder: extraction goes to a staging folder in the running folder and is
    renamed into place, so resources/ is either complete or absent.
    """
    archive = job_root / RESOURCES_ZIP
    if not os.path.lexists(archive):
        return
    dest = job_root / RESOURCES_DIR
    mark = folder / RESOURCES_MARK
    for stale in folder.glob(RESOURCES_STAGING + "*"):
        shutil.rmtree(stale, ignore_errors=True)  # an attempt killed mid-extraction
    if mark.exists() and dest.is_dir() and not dest.is_symlink():
        return
    if os.path.lexists(dest):
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"the job folder holds both {RESOURCES_DIR}/ and {RESOURCES_ZIP}; keep only one",
            hint=f"Put every resource in {RESOURCES_ZIP} or in {RESOURCES_DIR}/, then drop again.",
        )
    # The mark goes down before the rename: after a crash between the two, the next
    # attempt sees the mark and no folder, and simply extracts again.
    mark.write_text(f"{RESOURCES_DIR}/ is extracted from {RESOURCES_ZIP}\n")
    try:
        extract_resources(archive, dest, staging=folder, staging_prefix=RESOURCES_STAGING)
    except JobError:
        mark.unlink(missing_ok=True)
        raise
    except PermissionError as exc:
        # A folder dropped read-only stays read-only: retrying cannot help.
        mark.unlink(missing_ok=True)
        raise JobError(
            ErrorCode.IO_ERROR,
            f"cannot extract {RESOURCES_ZIP} into the job folder: {exc.strerror}",
            hint=f"Make the job folder writable for spoold, or ship {RESOURCES_DIR}/ instead.",
            retryable=False,
        ) from exc
