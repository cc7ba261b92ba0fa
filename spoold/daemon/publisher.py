"""Publishing an outcome: the manifest is built by a pure function, then written and the
folder renamed into done/ or failed/ by the protocol (manifest first, then the rename).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .. import __version__
from ..errors import ErrorInfo
from ..share.outputs import apply_output_permissions, dir_mode, error_text, parse_mode
from ..spool.dedup import sha256_file
from ..spool.durability import make_durable
from ..spool.formats import media_type_of
from ..spool.job import JobState, JobStatus
from ..spool.manifest import InputInfo, Manifest
from ..spool.protocol import MANIFEST, atomic_write, publish, unlink_quiet
from ..worker.spec import CANCEL_FLAG, WorkerResult
from .crashpoints import crash_point
from .jobfolder import ATTEMPT_HINT, save_state

log = logging.getLogger("spoold")


def input_info(main: Path, digest: str | None) -> InputInfo | None:
    """The main document as the manifest describes it (None when it cannot be read)."""
    try:
        st = os.lstat(main)
        # One lstat: a regular file that is not a link (isfile and not islink, alike).
        if not stat.S_ISREG(st.st_mode):
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


@dataclass
class PendingPublish:
    """A job whose files are written and wait for the group's first sync, then for
    `rename` (the publish rename and what follows it); `lost` if its folder is gone
    (another daemon recovered the claim), `failed` if its sync fails otherwise."""

    files: list[Path]
    folder: Path
    rename: Callable[[], None]
    lost: Callable[[], None]
    failed: Callable[[OSError], None]

    def publish_alone(self) -> None:
        """Its own sync, then its rename: what each job does when the group's failed."""
        try:
            make_durable(self.files, [self.folder])
        except FileNotFoundError:
            self.lost()
            return
        except OSError as exc:
            self.failed(exc)  # not durable: nothing is renamed (the input is safe)
            return
        self.rename()


class GroupCommit:
    """The jobs published in one pass of the loop share their syncs
    (docs/performance.md "Durability of a published job").

    1. Each job's files are written (manifest, ERROR.txt, artifacts: `pending`).
    2. One sync makes them all durable (spool/durability.py: one syncfs, or an fsync
       each), then each job folder is renamed into done/ or failed/: every folder there
       is complete, as alone.
    3. One sync of the renamed-into and renamed-from folders (`folders`), and only
       then is each job reported (its event, hooks, notifications): a job reported
       done is in done/ after a power cut.
    """

    def __init__(self) -> None:
        self.pending: list[PendingPublish] = []  # written, to sync before their renames
        self.folders: set[Path] = set()  # to fsync before any report
        self.reports: list[Callable[[], None]] = []

    def commit(self) -> None:
        self._rename_pending()
        if self.reports:
            crash_point("before_group_commit")
        try:
            make_durable(folders=sorted(self.folders))
        except OSError as exc:  # an I/O error: the jobs are published all the same
            log.error("could not sync %s: %s", exc.filename, exc.strerror)
        self.folders.clear()
        reports, self.reports = self.reports, []
        for report in reports:
            try:
                report()
            except Exception:
                # One job's report must not cost the others theirs.
                log.exception("reporting a published job failed")

    def _rename_pending(self) -> None:
        pending, self.pending = self.pending, []
        if not pending:
            return
        try:
            make_durable([f for p in pending for f in p.files], [p.folder for p in pending])
            steps = [p.rename for p in pending]
        except OSError:
            # One job's folder gone (another daemon recovered its claim) or one bad file
            # must not cost the others their publish: each one's own sync tells which.
            steps = [p.publish_alone for p in pending]
        for step in steps:
            try:
                step()
            except Exception:
                # Not the others' publish either; the job's claim, forgotten, is
                # requeued by recovery (daemon/recovery.py `_forgotten`).
                log.exception("publishing a job failed")


@dataclass(frozen=True)
class PublishSpec:
    folder: Path
    state: JobState
    dest_dir: Path
    durable: bool
    cancel_flag: bool  # a graceful cancel left its flag in the folder
    output_mode: str | None = None
    output_group: str | None = None
    group: GroupCommit | None = None  # the folders' fsyncs are the group's


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
    try:
        files = write_files(spec, manifest)
        if spec.durable:
            make_durable(files, [spec.folder])
    except FileNotFoundError:
        return PublishRace.CLAIM_LOST
    return rename_outcome(spec)


def write_files(spec: PublishSpec, manifest: Manifest) -> list[Path]:
    """ERROR.txt and manifest.json, not yet durable; the files the publish must make
    durable before its rename. OSError (disk full, the folder gone) is raised."""
    folder, state = spec.folder, spec.state
    if spec.cancel_flag:
        unlink_quiet(folder / CANCEL_FLAG)
    # The manifest now records the attempt numbers: the hints are not for readers.
    for n in range(1, state.attempt_floor + 1):
        unlink_quiet(folder / f"{ATTEMPT_HINT}{n}")
    if len(state.attempts) > 1:
        # Requeued before: keep the state (owner, history) for `spoold retry`.
        save_state(folder, state, durable=spec.durable)
    if manifest.error is not None:
        e = manifest.error
        text = error_text(manifest.status.value, state.name, e.code, e.message, e.hint)
        atomic_write(folder / "ERROR.txt", text.encode(), durable=False)
    crash_point("before_manifest_write")
    data = manifest.model_dump_json(indent=2, exclude_none=True).encode() + b"\n"
    atomic_write(folder / MANIFEST, data, durable=False)
    return _written(folder, manifest)


def rename_outcome(spec: PublishSpec) -> Path | PublishRace:
    """The publish rename of a folder whose files are durable. OSError is raised."""
    folder, state = spec.folder, spec.state
    crash_point("after_manifest_write")
    try:
        if modes_before_rename(spec):
            apply_output_permissions([folder], spec.output_mode, spec.output_group, recursive=True)
        to_sync = spec.group.folders if spec.group is not None else None
        dest = publish(folder, spec.dest_dir, state.jobdir, durable=spec.durable, to_sync=to_sync)
    except FileNotFoundError:
        return PublishRace.CLAIM_LOST
    except FileExistsError:
        return PublishRace.ALREADY_PUBLISHED
    crash_point("after_publish_rename")
    return dest if dest is not None else PublishRace.CLAIM_LOST


def _written(folder: Path, manifest: Manifest) -> list[Path]:
    """The files of the folder that must be durable before the publish rename: the
    manifest, ERROR.txt and the artifacts (a worker leaves their fsync to this step when
    its spool can sync them all at once: JobSpec.sync_artifacts)."""
    files = [folder / MANIFEST]
    if manifest.error is not None:
        files.append(folder / "ERROR.txt")
    for artifact in manifest.artifacts:
        path = folder / artifact.path
        if os.path.isfile(path):  # listed yet missing would be a bug elsewhere: not ours
            files.append(path)
    return files


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
