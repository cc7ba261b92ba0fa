"""POST /jobs: an upload becomes a job folder in inbox/, with its id chosen now.

1. 413 from Content-Length, 429/507 when the queue is full or the disk short: before a
   byte of the body is read.
2. The body streams into the request's staging folder (uploads.py); the options are
   checked as job.json would be (422 naming the key).
3. The new job's `id` is chosen now, so the 202 answer's id works at once, also when
   no daemon runs (spool/ids.py): a lone document with nothing else to say goes in as
   one file named `report.ID.md`; otherwise a job folder whose job.json holds the `id`,
   the options and the caller's name (`submitted_by`).
4. With an Idempotency-Key, the key is recorded for the job (or the job it named
   already answers: 200, or 409 for other content).
5. One rename into inbox/, after the queue is checked again (tools/staging.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..settings import JobFile, SpoolSettings, describe_errors
from ..spool.clock import iso_of, new_job_id, wall_time
from ..spool.durability import fsync_dir
from ..spool.entries import JOB_FILE, EntryKind, looks_complete
from ..spool.formats import SUFFIX_TYPES
from ..spool.ids import SUBMITTER_RE, name_with_id, split_named_id
from ..spool.protocol import job_id_of
from ..tools.jobview import Place, unclaimed_record
from ..tools.lookup import JobLocation, location
from ..tools.staging import TryLater, check_room, enqueue
from . import idempotency as keys
from .auth import Caller
from .errors import ApiError
from .spools import ServedSpool
from .uploads import Limits, Upload, check_length, receive_upload

MB = 1024 * 1024
RETRY_AFTER_S = 5
SET_BY_GATEWAY = ("id", "submitted_by", "main")
# A key whose job is not (yet) there: another request with it may still be queueing it.
PENDING_S = 10.0


def try_later(exc: TryLater) -> ApiError:
    if exc.disk:
        return ApiError(507, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)})
    return ApiError(429, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)})


def parse_options(
    text: bytes | None, targets: str | None, priority: int | None, source: str
) -> dict[str, Any]:
    """The options of the form (JSON) and the query, checked as job.json would be."""
    options: dict[str, Any] = {}
    if text:
        try:
            options = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(422, f"options: not valid JSON: {exc}") from None
        if not isinstance(options, dict):
            raise ApiError(422, "options: must be a JSON object (the keys of job.json)")
    for key in SET_BY_GATEWAY:
        if key in options:
            raise ApiError(422, f"options: key {key!r} is set by the gateway")
    if targets is not None:
        options["targets"] = [t.strip() for t in targets.split(",") if t.strip()]
    if priority is not None:
        options["priority"] = priority
    if not options:
        return options  # nothing to check: a job.json with no keys is a valid one
    try:
        JobFile(**options)
    except ValidationError as exc:
        raise ApiError(422, describe_errors(exc, "options")) from None
    return options


def _check_route(
    sp: ServedSpool,
    settings: SpoolSettings,
    route: str | None,
    options: dict[str, Any],
    source: str,
) -> None:
    if route is not None and route not in settings.routes:
        raise ApiError(422, f"route: {route!r} is not a route of spool {sp.name!r}")
    if source != "pdf":
        return
    targets = options.get("targets") or settings.for_route(route).targets
    if "html" in targets:
        raise ApiError(415, "a PDF cannot be converted to HTML; ask for pdf or docx")


def _write_job_file(upload: Upload, job: dict[str, Any]) -> None:
    data = json.dumps(job, indent=2).encode()
    fd = os.open(upload.entry / JOB_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _sync_entry(entry: Path) -> None:
    """The staged file, or the job folder's files and names, on disk: the 202 promises a
    job that survives a crash (durable = true). In a thread: fsyncs take milliseconds."""
    folder = entry.is_dir()
    for path in [entry / name for name in os.listdir(entry)] if folder else [entry]:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if folder:
        fsync_dir(entry)


async def submit_upload(
    request: Request,
    sp: ServedSpool,
    caller: Caller,
    name: str | None,
    targets: str | None,
    priority: int | None,
    route: str | None,
) -> tuple[int, JobLocation]:
    settings = sp.settings
    limits = Limits(int(settings.max_upload_mb * MB), int(settings.max_input_mb * MB))
    check_length(request, limits)
    key = request.headers.get("idempotency-key")
    if key is not None:
        keys.check_key(key)
    room = (sp.view, settings.max_queued, settings.min_free_mb)
    # Folder work runs on the event loop: a listing of the inbox, small writes and a
    # rename cost less than a hop to a thread; only fsyncs (durable) go to a thread.
    if key is None or not _key_has_job(sp, key):
        try:  # before reading a byte; a key's own job answers even when the queue is full
            check_room(sp.paths, *room, hint=True)
        except TryLater as exc:
            raise try_later(exc) from None
    upload = await receive_upload(request, sp.paths, limits, name, hashed=key is not None)
    try:
        job = _job_of(sp, settings, upload, caller, targets, priority, route)
        job_id = job["id"]
        inbox_name = _inbox_name(sp, upload, job)
        if settings.durable:
            await run_in_threadpool(_sync_entry, upload.entry)
        if key is not None:
            options = {k: v for k, v in job.items() if k not in SET_BY_GATEWAY}
            content = keys.content_hash(upload.name, upload.main_sha256 or "", options)
            earlier = await _claim_key(sp, key, keys.KeyRecord(job_id, content, wall_time()))
            if earlier is not None:
                return 200, earlier
        try:
            inbox_key = enqueue(sp.paths, upload.entry, inbox_name, route=route, room=room)
        except TryLater as exc:
            if key is not None:
                keys.release(sp.paths, key, job_id)
            raise try_later(exc) from None
        if settings.durable:
            await run_in_threadpool(fsync_dir, sp.paths.inbox / (route or ""))
        sp.index.queued(job_id, inbox_key)
        loc = _queued_now(sp, inbox_key, job)
        return 202, loc or _found(sp, job_id)
    finally:
        upload.discard()


def _job_of(
    sp: ServedSpool,
    settings: SpoolSettings,
    upload: Upload,
    caller: Caller,
    targets: str | None,
    priority: int | None,
    route: str | None,
) -> dict[str, Any]:
    """What the upload asks for, as job.json holds it (with a new `id`); 422 or 415 for a
    truncated document or bad options."""
    if not looks_complete(upload.entry, EntryKind.DIR if upload.folder else EntryKind.FILE):
        raise ApiError(
            422,
            "an uploaded file looks truncated: a PDF must end with %%EOF, a ZIP or DOCX "
            "needs its central directory",
        )
    source = SUFFIX_TYPES[os.path.splitext(upload.name)[1].lower()]
    options = parse_options(upload.options_text, targets, priority, source)
    _check_route(sp, settings, route, options, source)
    job: dict[str, Any] = {"main": upload.name, **options, "id": new_job_id()}
    if caller.name is not None:
        job["submitted_by"] = caller.name
    return job


def _inbox_name(sp: ServedSpool, upload: Upload, job: dict[str, Any]) -> str:
    """The name the staged entry takes in inbox/. A lone document with nothing more to
    say is one file, `report.ID.md` (spool/ids.py): a create and a rename, where a job
    folder costs a mkdir and a second file. Anything else is a job folder with job.json."""
    if not upload.folder and set(job) == {"main", "id"}:
        return name_with_id(upload.name, job["id"])
    if not upload.folder:
        upload.as_folder(sp.paths)
    _write_job_file(upload, job)
    return upload.name


def _queued_now(sp: ServedSpool, key: str, job: dict[str, Any]) -> JobLocation | None:
    """Where the job folder this request renamed to inbox/KEY is, with its record: the
    record tools/jobview.py `queued_record` reads back from the folder, made from what
    this request wrote into it (one lstat instead of a dozen calls and job.json read
    again). A job waiting on others (`after`) or named like a job folder is read back."""
    leaf = key.rpartition("/")[2]
    if "after" in job or job_id_of(leaf) is not None:
        return location(sp.paths, Place.QUEUED, key)
    path = f"{sp.paths.root}/inbox/{key}"
    try:
        st = os.lstat(path)
    except OSError:
        return None  # claimed already, or removed
    by = job.get("submitted_by")
    submitter = by if isinstance(by, str) and SUBMITTER_RE.match(by) else None
    name = split_named_id(leaf)[0]  # report.ID.md is the job report.md
    record = unclaimed_record(key, name, job["id"], iso_of(st.st_mtime), submitter)
    return JobLocation(Place.QUEUED, Path(path), job["id"], record)


def _key_has_job(sp: ServedSpool, key: str) -> bool:
    found = keys.read_key(keys.key_path(sp.paths, key))
    return found is not None and sp.has_job(found.job_id)


def _found(sp: ServedSpool, job_id: str) -> JobLocation:
    """The job just queued (claimed already by a quick daemon, say)."""
    loc = sp.find(job_id)
    if loc is None:  # removed by a person in the same instant
        raise ApiError(409, f"job {job_id} was queued but is gone already")
    return loc


async def _claim_key(sp: ServedSpool, key: str, mine: keys.KeyRecord) -> JobLocation | None:
    """None: the key is this job's now. Else the job it names (same content), or 409."""
    deadline = time.monotonic() + PENDING_S
    while True:
        found = keys.claim_key(sp.paths, key, mine)
        if found is None:
            return None
        loc = sp.find(found.job_id)
        if loc is not None:
            if found.content != mine.content:
                raise ApiError(
                    409,
                    f"Idempotency-Key was used for job {found.job_id} with other content",
                    hint="Use a new key for a new document or new options.",
                )
            return loc
        young = wall_time() - found.created < PENDING_S
        if not young or time.monotonic() >= deadline:
            keys.take_over(sp.paths, key, mine)  # its job is gone
            return None
        await asyncio.sleep(0.05)  # its request is still queueing the job
