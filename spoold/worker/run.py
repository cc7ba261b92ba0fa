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
import signal
import time
from dataclasses import asdict
from pathlib import Path

from ..convert import (
    ConversionContext,
    ConvertOptions,
    get_converter,
    load_converters,
    pin_source_date_epoch,
)
from ..convert.html.weasy import tune_gc_for_layout
from ..errors import ErrorCode, JobError, io_error_code
from ..spool.dedup import content_key, find_earlier, reuse, sha256_file
from ..spool.durability import fsync_file
from ..spool.formats import MEDIA_TYPES, artifact_name
from ..spool.parts import SPLIT_SOURCES, PartResult, PartTask
from ..spool.records import Artifact, Usage
from .fonts import preload_fonts, use_private_fontconfig
from .resources import has_archive, prepare_resources
from .spec import (
    ARTIFACT_RECORDS,
    CANCEL_FLAG,
    JobSpec,
    PrivateFontconfig,
    WorkerLimits,
    WorkerResult,
)
from .split import PartsNeeded, pdf_in_parts
from .stage import StageReporter


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


def init_worker(limits: WorkerLimits, fontconfig: PrivateFontconfig | None = None) -> None:
    """pebble initializer: own process group, converters and fonts loaded once, limits.

    `fontconfig` is the daemon's private fontconfig folder (fonts.py): the worker's
    font caches go there, never to the system's.
    """
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    _set_pdeathsig()
    signal.signal(signal.SIGTERM, _kill_group)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the daemon, which drains
    if fontconfig is not None:
        use_private_fontconfig(fontconfig)
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


def _restore_limits(hard_cpu: int, hard_mem: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (hard_cpu, hard_cpu))
    resource.setrlimit(resource.RLIMIT_AS, (hard_mem, hard_mem))


def run_job(spec: JobSpec) -> WorkerResult:
    """Convert every missing target of one job; return a plain-data result.

    Never raises for a job problem: errors come back in `WorkerResult.error` so that
    the daemon gets the code and message intact across the process boundary.
    """
    t0 = time.monotonic()
    cpu0 = _cpu_seconds()
    hard = _set_job_limits(spec.limits, cpu0)
    folder = Path(spec.folder)
    stage = StageReporter(folder, t0)
    ctx = ConversionContext(
        job_root=Path(spec.job_root), options=_convert_options(spec), on_stage=stage.report
    )
    result = WorkerResult()
    try:
        # Before the key: the key then covers the extracted files on every attempt alike.
        if has_archive(Path(spec.job_root)):
            stage.report("resources")
        prepare_resources(Path(spec.job_root), folder)
        if not _reuse_duplicate(spec, folder, result):
            for target in spec.targets:
                result.artifacts.append(_convert_target(spec, folder, target, ctx, result))
    except PartsNeeded as split:
        result.split = split.plan
    except Exception as exc:  # MemoryError and RecursionError too: the job's, not ours
        result.error = _job_error(exc, spec).info()
    finally:
        _restore_limits(*hard)
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
) -> Artifact:
    """One target's artifact: kept from an earlier attempt, or converted now."""
    name = artifact_name(spec.stem, target)
    record_path = folder / ARTIFACT_RECORDS / f"{target}.json"
    if (folder / name).exists() and record_path.exists():
        # Resume: an earlier attempt of this job produced it already.
        return Artifact(**json.loads(record_path.read_text()))
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
    pages, layout = None, None
    if target == "pdf" and spec.parts is not None and spec.source_type in SPLIT_SOURCES:
        pages = pdf_in_parts(spec, folder, part, ctx)
    if pages is None:
        converted = converter.convert(Path(spec.main), part, ctx)
        pages, layout = converted.pages, converted.layout
    if spec.durable and (spec.sync_artifacts or _keeps_records(spec)):
        fsync_file(part)
    os.rename(part, folder / name)
    result.timings[target] = round(time.monotonic() - start, 6)
    artifact = Artifact(
        name=name,
        path=name,
        target=target,
        media_type=MEDIA_TYPES.get(target, "text/html"),
        size=(folder / name).stat().st_size,
        sha256=sha256_file(folder / name),
        pages=pages,
        layout=layout,
        attempt=spec.attempt,
    )
    if _keeps_records(spec):
        record_path.parent.mkdir(exist_ok=True)
        record_path.write_text(json.dumps(asdict(artifact)))
    return artifact


def _keeps_records(spec: JobSpec) -> bool:
    """Only a job with several targets can resume with some of them done, or one whose
    result may be held unpublished (finish_to_finish) and requeued meanwhile."""
    return len(spec.targets) > 1 or _may_be_held(spec)


def _may_be_held(spec: JobSpec) -> bool:
    after = spec.options.get("after") or []
    return any(isinstance(r, dict) and r.get("kind") == "finish_to_finish" for r in after)


def run_part(task: PartTask, limits: WorkerLimits) -> PartResult:
    """Lay out one part of a job in this worker, under the job's limits.

    Writes `<part>.pid` first: `spoold status` and the tests see which worker runs it.
    """
    from ..convert.parts.layout import layout_part

    hard = _set_job_limits(limits, _cpu_seconds())
    Path(task.output_path + ".pid").write_text(str(os.getpid()))
    try:
        return layout_part(task)
    finally:
        _restore_limits(*hard)


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
    result.fetches = list(ctx.fetches)
    result.usage = Usage(
        cpu_s=round(_cpu_seconds() - cpu0, 6),
        peak_rss_mb=round(ru.ru_maxrss / 1024, 1),
        wall_s=round(time.monotonic() - t0, 6),
    )
    return result
