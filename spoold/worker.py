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
import hashlib
import json
import os
import resource
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .convert import ConversionContext, ConvertOptions, get_converter, load_converters
from .convert.base import MEDIA_TYPES
from .convert.resources import RESOURCES_DIR, RESOURCES_ZIP, extract_resources
from .errors import ErrorCode, JobError, io_error_code

STAGE_FILE = ".spoold-stage"
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


# Options that change the output; priority, timeouts and attempts do not.
KEY_OPTIONS = (
    "targets",
    "theme",
    "page_size",
    "margins",
    "metadata",
    "reference_docx",
    "allow_fetch",
)


def content_key(job_root: Path, main: Path, options: dict[str, Any]) -> tuple[str, str]:
    """(idempotency key, sha256 of the main document) from the job's bytes and options.

    Every regular file below the job root counts (the document, resources, the
    reference DOCX), except job.json, whose output-relevant options are hashed instead.
    Symbolic links are not followed.
    """
    h = hashlib.sha256()
    main_sha = ""
    for dirpath, dirnames, filenames in os.walk(job_root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(job_root).as_posix()
            if rel == "job.json" or path.is_symlink() or not path.is_file():
                continue
            digest = sha256_file(path)
            if path == main:
                # The main document counts by its bytes, not its name: the same report
                # dropped twice under two names is a duplicate.
                main_sha = digest
                rel = "\0main"
            h.update(f"{rel}\0{digest}\n".encode())
    picked = {k: options.get(k) for k in KEY_OPTIONS if k != "reference_docx"}
    h.update(json.dumps(picked, sort_keys=True, default=str).encode())
    return h.hexdigest(), main_sha


def dedup_record(dedup_dir: Path, key: str) -> Path:
    return dedup_dir / hashlib.sha256(key.encode()).hexdigest()


def _find_earlier(spec: JobSpec, key: str) -> tuple[str, Path] | None:
    """The earlier successful job with this key, if its folder is still in done/."""
    if spec.dedup_dir is None or spec.done_dir is None:
        return None
    try:
        jobdir = dedup_record(Path(spec.dedup_dir), key).read_text().strip()
    except OSError:
        return None
    folder = Path(spec.done_dir) / jobdir
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return str(manifest["job_id"]), folder


def _reuse(spec: JobSpec, earlier: Path, folder: Path) -> list[dict[str, Any]] | None:
    """Hard-link (or copy) the earlier job's artifacts; None if one is missing."""
    manifest = json.loads((earlier / "manifest.json").read_text())
    by_target = {a["target"]: a for a in manifest.get("artifacts", [])}
    if any(t not in by_target for t in spec.targets):
        return None
    out = []
    for target in spec.targets:
        old = by_target[target]
        name = artifact_name(spec.stem, target)
        try:
            os.link(earlier / old["path"], folder / name)
        except FileExistsError:
            pass
        except OSError:
            shutil.copyfile(earlier / old["path"], folder / name)
        out.append({**old, "name": name, "path": name, "attempt": spec.attempt})
    return out


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


def init_worker(limits: WorkerLimits) -> None:
    """pebble initializer: own process group, limits, converters loaded once."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    _set_pdeathsig()
    signal.signal(signal.SIGTERM, _kill_group)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the daemon, which drains
    mem = limits.memory_mb * 1024 * 1024  # the largest of the spools' limits
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    fsize = int(limits.max_output_mb * 1024 * 1024)
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    load_converters()


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_name(stem: str, target: str) -> str:
    return f"{stem}.{EXTENSIONS[target]}"


def _write_stage(folder: Path, stage: str) -> None:
    try:
        (folder / STAGE_FILE).write_text(stage)
    except OSError:
        pass


class _StageClock:
    """One thread per worker that writes the running job's stage once it is due.

    Starting a threading.Timer per job cost about 12 % of a tiny job's time in the
    worker; this thread starts once (lazily, after the fork) and sleeps on a condition.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.reporter: _StageReporter | None = None
        self.deadline = 0.0
        self.thread: threading.Thread | None = None

    def arm(self, reporter: _StageReporter, deadline: float) -> None:
        with self.cond:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="spoold-stage", daemon=True)
                self.thread.start()
            self.reporter, self.deadline = reporter, deadline
            self.cond.notify()

    def disarm(self, reporter: _StageReporter) -> None:
        with self.cond:
            if self.reporter is reporter:
                self.reporter = None

    def _run(self) -> None:
        with self.cond:
            while True:
                if self.reporter is None:
                    self.cond.wait()
                    continue
                delay = self.deadline - time.monotonic()
                if delay > 0:
                    self.cond.wait(delay)
                    continue
                due, self.reporter = self.reporter, None
                self.cond.release()
                try:
                    due.flush()
                finally:
                    self.cond.acquire()


_STAGE_CLOCK = _StageClock()


class _StageReporter:
    """Writes the job's current stage for `spoold status`, but not for tiny jobs:
    a stage is written only once the job has run for 0.1 s (the worker's stage clock
    catches a stage reported earlier that is still current then)."""

    DELAY = 0.1

    def __init__(self, folder: Path, t0: float) -> None:
        self.folder = folder
        self.t0 = t0
        self.current: str | None = None
        self.written = False
        self.lock = threading.Lock()
        _STAGE_CLOCK.arm(self, t0 + self.DELAY)

    def report(self, stage: str) -> None:
        with self.lock:
            self.current = stage
            if time.monotonic() - self.t0 >= self.DELAY:
                self._write()

    def flush(self) -> None:
        with self.lock:
            if self.current is not None:
                self._write()

    def _write(self) -> None:
        if self.current is not None:
            _write_stage(self.folder, self.current)
            self.written = True

    def close(self) -> None:
        _STAGE_CLOCK.disarm(self)
        with self.lock:
            self.current = None
            if self.written:
                try:
                    os.unlink(self.folder / STAGE_FILE)
                except OSError:
                    pass


def _convert_options(spec: JobSpec) -> ConvertOptions:
    opts = spec.options
    ref = opts.get("reference_docx")
    return ConvertOptions(
        theme=opts.get("theme", "default"),
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
    records = folder / ARTIFACT_RECORDS
    stage = _StageReporter(folder, t0)

    ctx = ConversionContext(
        job_root=Path(spec.job_root),
        options=_convert_options(spec),
        on_stage=stage.report,
    )
    result = WorkerResult()
    artifacts, timings = result.artifacts, result.timings
    try:
        # Before the key: the key then covers the extracted files on every attempt alike.
        if os.path.lexists(Path(spec.job_root) / RESOURCES_ZIP):
            stage.report("resources")
        prepare_resources(Path(spec.job_root), folder)
        key, main_sha = content_key(Path(spec.job_root), Path(spec.main), spec.options)
        key = spec.idempotency_key or key
        result.idempotency_key = key
        result.input_sha256 = main_sha or None
        earlier = None if spec.on_duplicate == "rerun" else _find_earlier(spec, key)
        if earlier is not None:
            result.duplicate_of = earlier[0]
            if spec.on_duplicate == "reject":
                raise JobError(
                    ErrorCode.DUPLICATE,
                    f"the same input and options were converted by job {earlier[0]}",
                )
            reused = _reuse(spec, earlier[1], folder)
            if reused is not None:
                artifacts.extend(reused)
                return _finish(result, ctx, cpu0, t0)
            result.duplicate_of = None
        for target in spec.targets:
            name = artifact_name(spec.stem, target)
            record_path = records / f"{target}.json"
            if (folder / name).exists() and record_path.exists():
                # Resume: an earlier attempt of this job produced it already.
                artifacts.append(json.loads(record_path.read_text()))
                continue
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
            res = converter.convert(Path(spec.main), part, ctx)
            if spec.durable:
                fd = os.open(part, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.rename(part, folder / name)
            timings[target] = round(time.monotonic() - start, 6)
            record = {
                "name": name,
                "path": name,
                "target": target,
                "media_type": MEDIA_TYPES.get(target, "text/html"),
                "size": (folder / name).stat().st_size,
                "sha256": sha256_file(folder / name),
                "pages": res.pages,
                "attempt": spec.attempt,
            }
            if len(spec.targets) > 1:
                # Only a job with several targets can resume with some of them done.
                records.mkdir(exist_ok=True)
                (records / f"{target}.json").write_text(json.dumps(record))
            artifacts.append(record)
    except JobError as exc:
        result.error = _error(exc)
    except MemoryError:
        result.error = _error(
            JobError(
                ErrorCode.RESOURCE_LIMIT, f"the worker ran out of its {spec.limits.memory_mb} MB"
            )
        )
    except RecursionError:
        result.error = _error(
            JobError(ErrorCode.INPUT_INVALID, "the document is nested too deeply to convert")
        )
    except OSError as exc:
        code = io_error_code(exc)
        result.error = _error(JobError(code, f"{exc.strerror or exc} while converting"))
    except Exception as exc:  # a converter bug must not take the worker down
        result.error = _error(
            JobError(
                ErrorCode.CONVERSION_FAILED, f"conversion failed: {type(exc).__name__}: {exc}"[:500]
            )
        )
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (hard_cpu, hard_cpu))
        resource.setrlimit(resource.RLIMIT_AS, (hard_mem, hard_mem))
        stage.close()
    return _finish(result, ctx, cpu0, t0)


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
