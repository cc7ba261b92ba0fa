"""Publishing an outcome: the manifest is built by a pure function, then written and the
folder renamed into done/ or failed/ by the protocol (manifest first, then the rename).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .. import __version__
from ..errors import ErrorInfo
from ..share.outputs import apply_output_permissions, dir_mode, error_text, parse_mode
from ..spool.dedup import sha256_file
from ..spool.formats import media_type_of
from ..spool.job import JobState, JobStatus
from ..spool.manifest import InputInfo, Manifest
from ..spool.protocol import MANIFEST, atomic_write, publish, unlink_quiet
from ..worker.spec import CANCEL_FLAG, WorkerResult
from .crashpoints import crash_point
from .jobfolder import ATTEMPT_HINT, save_state


def input_info(main: Path, digest: str | None) -> InputInfo | None:
    """The main document as the manifest describes it (None when it cannot be read)."""
    try:
        st = os.lstat(main)
        if not os.path.isfile(main) or os.path.islink(main):
            return InputInfo(
                name=main.name, media_type="application/octet-stream", size=0, sha256=""
            )
        digest = digest or sha256_file(main)
    except OSError:
        return None
    return InputInfo(name=main.name, media_type=media_type_of(main), size=st.st_size, sha256=digest)


def build_manifest(
    state: JobState,
    spool: str,
    status: JobStatus,
    error: ErrorInfo | None,
    options: dict[str, object],
    input: InputInfo | None,
    result: WorkerResult | None,
    finished_at: str,
) -> Manifest:
    """The manifest of a job's outcome: a pure function of what the lifecycle knows."""
    result = result or WorkerResult()
    return Manifest(
        job_id=state.job_id,
        name=state.name,
        spool=spool,
        route=state.route,
        submitted_by=state.submitted_by,
        status=status,
        input=input,
        options=dict(options),
        artifacts=list(result.artifacts),
        attempts=state.attempts,
        error=error,
        warnings=result.warnings,
        fetches=list(result.fetches),
        timings=dict(result.timings),
        duplicate_of=result.duplicate_of,
        parts=result.parts,
        versions=versions(),
        created_at=state.arrived_at,
        finished_at=finished_at,
    )


class PublishRace(StrEnum):
    """Why a publish rename did not happen (a defined outcome, not an error)."""

    CLAIM_LOST = "claim lost"  # the running folder is gone: another daemon recovered it
    ALREADY_PUBLISHED = "already published"  # done/ or failed/ holds the job already


@dataclass(frozen=True)
class PublishSpec:
    folder: Path
    state: JobState
    dest_dir: Path
    durable: bool
    cancel_flag: bool  # a graceful cancel left its flag in the folder
    output_mode: str | None = None
    output_group: str | None = None


def modes_before_rename(spec: PublishSpec) -> bool:
    """Whether output_mode/output_group can be applied before the publish rename.

    Then the folder lands in done/ with its final modes: no moment in which a person
    could read a result the spool means to keep private. Moving a folder to another
    parent needs write permission on it (its '..' changes), so a mode without u+w
    (0440, say) is applied after the rename instead.
    """
    if spec.output_mode is None:
        return spec.output_group is not None
    return bool(dir_mode(parse_mode(spec.output_mode)) & stat.S_IWUSR)


def write_outcome(spec: PublishSpec, manifest: Manifest) -> Path | PublishRace:
    """ERROR.txt and manifest.json, then the rename. OSError (disk full) is raised."""
    folder, state = spec.folder, spec.state
    if spec.cancel_flag:
        unlink_quiet(folder / CANCEL_FLAG)
    # The manifest now records the attempt numbers: the hints are not for readers.
    for n in range(1, state.attempt_floor + 1):
        unlink_quiet(folder / f"{ATTEMPT_HINT}{n}")
    try:
        if len(state.attempts) > 1:
            # Requeued before: keep the state (owner, history) for `spoold retry`.
            save_state(folder, state, durable=spec.durable)
        if manifest.error is not None:
            e = manifest.error
            text = error_text(manifest.status.value, state.name, e.code, e.message, e.hint)
            atomic_write(folder / "ERROR.txt", text.encode(), durable=spec.durable)
        crash_point("before_manifest_write")
        data = manifest.model_dump_json(indent=2, exclude_none=True).encode() + b"\n"
        atomic_write(folder / MANIFEST, data, durable=spec.durable)
        crash_point("after_manifest_write")
        if modes_before_rename(spec):
            apply_output_permissions([folder], spec.output_mode, spec.output_group, recursive=True)
        dest = publish(folder, spec.dest_dir, state.jobdir, durable=spec.durable)
    except FileNotFoundError:
        return PublishRace.CLAIM_LOST
    except FileExistsError:
        return PublishRace.ALREADY_PUBLISHED
    crash_point("after_publish_rename")
    return dest if dest is not None else PublishRace.CLAIM_LOST


_VERSIONS: dict[str, str] | None = None


def versions() -> dict[str, str]:
    global _VERSIONS
    if _VERSIONS is None:
        from importlib.metadata import PackageNotFoundError, version

        out = {"spoold": __version__}
        for pkg in ("weasyprint", "python-docx", "markdown-it-py", "pypdf", "pdfminer.six"):
            try:
                out[pkg] = version(pkg)
            except PackageNotFoundError:
                pass
        _VERSIONS = out
    return _VERSIONS
