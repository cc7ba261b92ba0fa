"""What runs inside a worker process: limits, warm converters, one job's targets.

Workers are long-lived (pebble ProcessPool, recycled after max_tasks_per_worker jobs) so
converters, fonts and templates load once. Each worker leads its own process group, so a
timeout or hard cancel kills the converter and anything it started. A worker never
publishes: it writes artifacts inside the running folder it was given, and when that
folder has been taken away (its daemon lost the claim) its writes simply fail.

Caveats: RLIMIT_CPU counts the worker's whole life, so the soft limit is moved up at
the start of each job; RLIMIT_AS bounds address space, not resident memory. Workers
serve every spool, so the hard RLIMIT_AS is the largest `memory_limit_mb` of them and
each job lowers the soft limit to its own spool's value for its duration.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .convert import (
    ConversionContext,
    ConvertOptions,
    get_converter,
    load_converters,
    pin_source_date_epoch,
)
from .convert.base import MEDIA_TYPES
from .convert.html.weasy import tune_gc_for_layout
from .convert.resources import RESOURCES_DIR, RESOURCES_ZIP, extract_resources
from .dedup import content_key, dedup_record, find_earlier, reuse, sha256_file
from .errors import ErrorCode, JobError, io_error_code
from .fonts import preload_fonts, use_private_fontconfig
from .stage import STAGE_FILE, StageReporter

if TYPE_CHECKING:
    from .convert.parts.tasks import PartResult, PartTask, SplitPlan

CANCEL_FLAG = ".spoold-cancel"
ARTIFACT_RECORDS = ".spoold-artifacts"
# In the running folder (outside the sandbox): resources/ came from this job's resources.zip.
RESOURCES_MARK = ".spoold-resources"
RESOURCES_STAGING = ".spoold-resources-tmp."
EXTENSIONS = {"pdf": "pdf", "docx": "docx", "html": "html"}


@dataclass(frozen=True)
class WorkerLimits:
    memory_mb: int = 2048
    cpu_s: float = 600
    max_output_mb: float = 1024


@dataclass(frozen=True)
class WorkerError:
    code: str
    message: str
    hint: str
    retryable: bool


@dataclass(frozen=True)
class ResourceUsage:
    cpu_s: float
    peak_rss_mb: float
    wall_s: float


@dataclass(frozen=True)
class PartsSpec:
    """PDF in parts (docs/conversion.md "Big documents"): when to split, or what to merge.

    Without `results` a worker splits a big document and hands the plan back
    (`WorkerResult.split`); with them (every part and stamp chunk laid out) it merges.
    """

    split_above: int
    part_cost: int
    workers: int
    results: tuple[PartResult, ...] = ()  # the parts', in document order
    stamps: tuple[PartResult, ...] = ()  # the stamp chunks', in page order


@dataclass
class WorkerResult:
    """What a worker hands back for one attempt (plain data: it crosses a pipe)."""

    artifacts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fetches: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    usage: ResourceUsage | None = None
    error: WorkerError | None = None
    idempotency_key: str | None = None
    input_sha256: str | None = None
    duplicate_of: str | None = None
    # The PDF target was split: lay these out, then run the job again to merge them.
    split: SplitPlan | None = None
    # A merged PDF: {"count", "pages", "cpu_s" (per part), "relaid"}: the manifest's `parts`.
    parts_info: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs; plain data so it pickles cheaply."""

    job_id: str
    attempt: int
    folder: str  # the running folder
    job_root: str  # sandbox root: nothing above it is read
    main: str  # the main document
    source_type: str
    targets: tuple[str, ...]
    stem: str
    options: dict[str, Any] = field(default_factory=dict)
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    durable: bool = True
    # Duplicates: the index folder, done/, the mode, and an explicit key if job.json had one.
    dedup_dir: str | None = None
    done_dir: str | None = None
    on_duplicate: str = "reuse"
    idempotency_key: str | None = None
    parts: PartsSpec | None = None  # None: every PDF is laid out whole


class PartsNeeded(Exception):
    """The PDF target was split; the job goes on with its part tasks (not an error)."""

    def __init__(self, plan: SplitPlan) -> None:
        super().__init__(f"{len(plan.parts)} parts")
        self.plan = plan


def _set_pdeathsig() -> None:
    # An orphaned worker (its daemon was SIGKILLed) should not go on burning CPU.
    # Correctness does not depend on it: fencing drops its results anyway.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _kill_group(signum: int, frame: object) -> None:
    # pebble stops a worker with SIGTERM (timeout, cancel): take its children along.
    os.killpg(os.getpgid(0), signal.SIGKILL)


def init_worker(limits: WorkerLimits, fontconfig_dir: str | None = None) -> None:
    """pebble initializer: own process group, converters and fonts loaded once, limits.

    `fontconfig_dir` is the daemon's private fontconfig directory (fonts.py): the
    worker's font caches go there, never to the system's.
    """
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    _set_pdeathsig()
    signal.signal(signal.SIGTERM, _kill_group)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the daemon, which drains
    if fontconfig_dir is not None:
        use_private_fontconfig(Path(fontconfig_dir))
    pin_source_date_epoch()
    load_converters()
    tune_gc_for_layout()
    # Before the address-space limit: fontconfig short of memory rewrites font caches
    # without the fonts it failed to open (fonts.py).
    preload_fonts()
    mem = limits.memory_mb * 1024 * 1024  # the largest of the spools' limits
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    fsize = int(limits.max_output_mb * 1024 * 1024)
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def artifact_name(stem: str, target: str) -> str:
    return f"{stem}.{EXTENSIONS[target]}"


def _convert_options(spec: JobSpec) -> ConvertOptions:
    opts = spec.options
    ref = opts.get("reference_docx")
    return ConvertOptions(
        theme=opts.get("theme", "auto"),
        page_size=opts.get("page_size", "A4"),
        margins=opts.get("margins", "theme"),
        metadata=dict(opts.get("metadata") or {}),
        reference_docx=Path(ref) if ref else None,
        allow_fetch=tuple(opts.get("allow_fetch") or ()),
    )


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


def _set_job_limits(limits: WorkerLimits, cpu0: float) -> tuple[int, int]:
    """This job's CPU and memory soft limits; returns the hard ones to restore."""
    soft_cpu = int(cpu0 + limits.cpu_s) + 1
    _, hard_cpu = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft_cpu, hard_cpu))
    _, hard_mem = resource.getrlimit(resource.RLIMIT_AS)
    mem = limits.memory_mb * 1024 * 1024
    if hard_mem != resource.RLIM_INFINITY:
        mem = min(mem, hard_mem)
    resource.setrlimit(resource.RLIMIT_AS, (mem, hard_mem))
    return hard_cpu, hard_mem


def run_job(spec: JobSpec) -> WorkerResult:
    """Convert every missing target of one job; return a plain-data result.

    Never raises for a job problem: errors come back in `WorkerResult.error` so that
    the daemon gets the code and message intact across the process boundary.
    """
    t0 = time.monotonic()
    cpu0 = _cpu_seconds()
    hard_cpu, hard_mem = _set_job_limits(spec.limits, cpu0)
    folder = Path(spec.folder)
    stage = StageReporter(folder, t0)
    ctx = ConversionContext(
        job_root=Path(spec.job_root),
        options=_convert_options(spec),
        on_stage=stage.report,
    )
    result = WorkerResult()
    try:
        # Before the key: the key then covers the extracted files on every attempt alike.
        if os.path.lexists(Path(spec.job_root) / RESOURCES_ZIP):
            stage.report("resources")
        prepare_resources(Path(spec.job_root), folder)
        if not _reuse_duplicate(spec, folder, result):
            for target in spec.targets:
                result.artifacts.append(_convert_target(spec, folder, target, ctx, result))
    except PartsNeeded as split:
        result.split = split.plan
    except Exception as exc:  # MemoryError and RecursionError too: the job's, not ours
        result.error = _error(_job_error(exc, spec))
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (hard_cpu, hard_cpu))
        resource.setrlimit(resource.RLIMIT_AS, (hard_mem, hard_mem))
        stage.close()
    return _finish(result, ctx, cpu0, t0)


def _reuse_duplicate(spec: JobSpec, folder: Path, result: WorkerResult) -> bool:
    """Compute the job's key; reuse an earlier job's artifacts when allowed (True)."""
    key, main_sha = content_key(Path(spec.job_root), Path(spec.main), spec.options)
    key = spec.idempotency_key or key
    result.idempotency_key = key
    result.input_sha256 = main_sha or None
    earlier = None
    if spec.on_duplicate != "rerun" and spec.dedup_dir and spec.done_dir:
        earlier = find_earlier(Path(spec.dedup_dir), Path(spec.done_dir), key)
    if earlier is None:
        return False
    if spec.on_duplicate == "reject":
        result.duplicate_of = earlier[0]
        raise JobError(
            ErrorCode.DUPLICATE,
            f"the same input and options were converted by job {earlier[0]}",
        )
    names = {t: artifact_name(spec.stem, t) for t in spec.targets}
    reused = reuse(earlier[1], folder, names, spec.attempt)
    if reused is None:
        return False  # a file of the earlier job is gone: convert again
    result.duplicate_of = earlier[0]
    result.artifacts.extend(reused)
    return True


def _convert_target(
    spec: JobSpec, folder: Path, target: str, ctx: ConversionContext, result: WorkerResult
) -> dict[str, Any]:
    """One target's artifact record: kept from an earlier attempt, or converted now."""
    name = artifact_name(spec.stem, target)
    record_path = folder / ARTIFACT_RECORDS / f"{target}.json"
    if (folder / name).exists() and record_path.exists():
        # Resume: an earlier attempt of this job produced it already.
        record: dict[str, Any] = json.loads(record_path.read_text())
        return record
    if (folder / CANCEL_FLAG).exists():
        raise JobError(ErrorCode.CANCELLED, "cancelled on request")
    converter = get_converter(spec.source_type, target)
    if converter is None:
        raise JobError(
            ErrorCode.INPUT_UNSUPPORTED,
            f"cannot convert {spec.source_type} to {target}",
            hint="Pick another target for this kind of document.",
        )
    start = time.monotonic()
    part = folder / f".{name}.part"
    pages = _pdf_in_parts(spec, folder, target, part, ctx)
    res = converter.convert(Path(spec.main), part, ctx) if pages is None else None
    if spec.durable:
        fd = os.open(part, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.rename(part, folder / name)
    result.timings[target] = round(time.monotonic() - start, 6)
    record = {
        "name": name,
        "path": name,
        "target": target,
        "media_type": MEDIA_TYPES.get(target, "text/html"),
        "size": (folder / name).stat().st_size,
        "sha256": sha256_file(folder / name),
        "pages": res.pages if res is not None else pages,
        "layout": res.layout if res is not None else None,
        "attempt": spec.attempt,
    }
    if len(spec.targets) > 1:
        # Only a job with several targets can resume with some of them done.
        record_path.parent.mkdir(exist_ok=True)
        record_path.write_text(json.dumps(record))
    return record


def _pdf_in_parts(
    spec: JobSpec, folder: Path, target: str, output: Path, ctx: ConversionContext
) -> int | None:
    """Merge the laid-out parts into `output` (pages), or split (raises PartsNeeded).

    None: the document is laid out whole, as usual.
    """
    from .convert.parts import route

    parts = spec.parts
    if parts is None or target != "pdf" or spec.source_type not in route.SPLIT_SOURCES:
        return None
    workdir = folder / route.PARTS_DIR
    if parts.results:
        try:
            return route.merge_source(parts.results, parts.stamps, output, ctx)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    from .convert.parts.plan import PartsPolicy

    policy = PartsPolicy(parts.split_above, parts.part_cost, parts.workers)
    text = route.source_html(spec.source_type, Path(spec.main), ctx)
    if not route.may_split(text, policy):
        return None
    plan = route.split_source(text, ctx, Path(spec.main).parent, workdir, policy)
    if plan is not None:
        raise PartsNeeded(plan)
    return None


def run_part(task: PartTask, limits: WorkerLimits) -> PartResult:
    """Lay out one part of a job in this worker, under the job's limits.

    Writes `<part>.pid` first: `spoold status` and the tests see which worker runs it.
    """
    from .convert.parts.layout import layout_part

    cpu0 = _cpu_seconds()
    hard_cpu, hard_mem = _set_job_limits(limits, cpu0)
    Path(task.output_path + ".pid").write_text(str(os.getpid()))
    try:
        return layout_part(task)
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (hard_cpu, hard_cpu))
        resource.setrlimit(resource.RLIMIT_AS, (hard_mem, hard_mem))


def _job_error(exc: BaseException, spec: JobSpec) -> JobError:
    """What an exception in a conversion means for the job."""
    if isinstance(exc, JobError):
        return exc
    if isinstance(exc, MemoryError):
        return JobError(
            ErrorCode.RESOURCE_LIMIT, f"the worker ran out of its {spec.limits.memory_mb} MB"
        )
    if isinstance(exc, RecursionError):
        return JobError(ErrorCode.INPUT_INVALID, "the document is nested too deeply to convert")
    if isinstance(exc, OSError):
        return JobError(io_error_code(exc), f"{exc.strerror or exc} while converting")
    # A converter bug must not take the worker down.
    message = f"conversion failed: {type(exc).__name__}: {exc}"[:500]
    return JobError(ErrorCode.CONVERSION_FAILED, message)


def _finish(result: WorkerResult, ctx: ConversionContext, cpu0: float, t0: float) -> WorkerResult:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    result.warnings = list(ctx.warnings)
    result.fetches = [asdict(f) for f in ctx.fetches]
    result.usage = ResourceUsage(
        cpu_s=round(_cpu_seconds() - cpu0, 6),
        peak_rss_mb=round(ru.ru_maxrss / 1024, 1),
        wall_s=round(time.monotonic() - t0, 6),
    )
    return result


def _error(exc: JobError) -> WorkerError:
    return WorkerError(exc.code.value, exc.message, exc.hint, exc.retryable)


__all__ = ["STAGE_FILE", "dedup_record", "sha256_file"]  # used by the daemon and api
