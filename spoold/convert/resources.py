"""resources.zip: checked as a whole before a single byte is extracted.

A job may carry its images, CSS and fonts as resources.zip. The archive comes from
whoever can drop files in the inbox, so every member is checked first — no absolute
paths, no `..`, no symlinks or special files, no device names, caps on member count,
sizes and compression ratio — and only then extracted, into a temporary folder on the
same filesystem that is renamed into place. A violation is JobError(resource_invalid)
naming the member. The worker calls this before converting (spoold.worker.run).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ErrorCode, JobError

MiB = 1024 * 1024
RESOURCES_ZIP = "resources.zip"
RESOURCES_DIR = "resources"

# Names Windows treats as devices wherever they appear (CON, CON.txt, ...).
_DEVICE_NAMES = re.compile(
    r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$", re.I
)
_DRIVE = re.compile(r"^[A-Za-z]:")
# Ratios are only meaningful for members big enough to hurt; tiny text compresses well.
_RATIO_MIN_BYTES = 1 * MiB


@dataclass(frozen=True)
class ZipLimits:
    max_members: int = 1000
    max_member_bytes: int = 50 * MiB
    max_total_bytes: int = 200 * MiB
    max_ratio: float = 100.0


def check_zip_complete(path: Path) -> bool:
    """True when the file is a zip whose central directory can be read.

    A zip still being copied has no end-of-central-directory record yet.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            zf.infolist()
        return True
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return False


def _bad(member: str, why: str) -> JobError:
    return JobError(
        ErrorCode.RESOURCE_INVALID,
        f"resources.zip member {member!r}: {why}",
    )


def member_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The safe relative path of a member (None for the root entry), or raise."""
    name = info.filename
    if any(ord(c) < 32 for c in name):
        raise _bad(name, "control characters in the name")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        raise _bad(name, "absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _bad(name, "path leaves the resources folder ('..')")
    for part in parts:
        if _DEVICE_NAMES.match(part.rstrip(" .")):
            raise _bad(name, "device name")
        if part != part.rstrip(" .") and part.rstrip(" .") == "":
            raise _bad(name, "invalid name")
    return PurePosixPath(*parts) if parts else None


def _mode_type(info: zipfile.ZipInfo) -> int:
    # Unix mode bits live in the high 16 bits when the archive was made on Unix.
    return stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0


def _check_size(info: zipfile.ZipInfo, limits: ZipLimits) -> None:
    """One file member's uncompressed size and compression ratio against the caps."""
    if info.file_size > limits.max_member_bytes:
        raise _bad(
            info.filename,
            f"{info.file_size} bytes uncompressed; the cap is {limits.max_member_bytes}",
        )
    if info.file_size >= _RATIO_MIN_BYTES and info.file_size > limits.max_ratio * max(
        info.compress_size, 1
    ):
        ratio = info.file_size / max(info.compress_size, 1)
        raise _bad(
            info.filename,
            f"compression ratio {ratio:.0f}:1 is over the {limits.max_ratio:.0f}:1 cap"
            " (a zip bomb?)",
        )


def check_members(
    zf: zipfile.ZipFile, limits: ZipLimits
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Validate every member; return the (member, relative path) pairs to extract."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise JobError(
            ErrorCode.RESOURCE_INVALID,
            f"resources.zip has {len(infos)} members; at most {limits.max_members} are allowed",
        )
    total = 0
    seen: dict[str, bool] = {}  # lower-cased path -> is a directory
    out: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    for info in infos:
        path = member_path(info)
        kind = _mode_type(info)
        if kind == stat.S_IFLNK:
            raise _bad(info.filename, "symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _bad(info.filename, "special file (device, FIFO or socket)")
        if info.flag_bits & 0x1:
            raise _bad(info.filename, "encrypted member")
        if path is None:
            continue
        is_dir = info.is_dir() or kind == stat.S_IFDIR
        key = str(path).lower()
        if key in seen and not (is_dir and seen[key]):
            raise _bad(info.filename, "appears more than once")
        # A member below a file name (a/b where a is a file) would need a/ as a folder.
        for parent in path.parents:
            pkey = str(parent).lower()
            if pkey != "." and seen.get(pkey) is False:
                raise _bad(info.filename, f"{parent} is a file, not a folder")
        seen[key] = is_dir
        if is_dir:
            out.append((info, path))
            continue
        _check_size(info, limits)
        total += info.file_size
        if total > limits.max_total_bytes:
            raise _bad(
                info.filename,
                f"the archive unpacks to more than {limits.max_total_bytes} bytes",
            )
        out.append((info, path))
    for key, is_dir in seen.items():
        for other in seen:
            if other.startswith(key + "/") and not is_dir:
                raise _bad(key, "is a file and a folder")
    return out


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, cap: int) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    written = 0
    with os.fdopen(fd, "wb") as out, zf.open(info) as src:
        while True:
            chunk = src.read(1 << 16)
            if not chunk:
                break
            written += len(chunk)
            # zipfile stops at the declared size; this guards a lying header anyway.
            if written > cap:
                raise _bad(info.filename, "unpacks to more than its declared size")
            out.write(chunk)


def _open_zip(zip_path: Path) -> zipfile.ZipFile:
    # O_NOFOLLOW|O_NONBLOCK + fstat: a symlink, FIFO or device is refused, never opened.
    try:
        fd = os.open(zip_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise JobError(
            ErrorCode.RESOURCE_INVALID,
            f"{RESOURCES_ZIP} cannot be opened ({exc.strerror}); it must be a regular file",
        ) from exc
    fh = os.fdopen(fd, "rb")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise JobError(ErrorCode.RESOURCE_INVALID, f"{RESOURCES_ZIP} is not a regular file")
        return zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        fh.close()
        raise JobError(
            ErrorCode.RESOURCE_INVALID, f"{RESOURCES_ZIP} is not a readable zip archive ({exc})"
        ) from exc
    except BaseException:
        fh.close()
        raise


def extract_resources(
    zip_path: Path,
    dest: Path,
    limits: ZipLimits | None = None,
    staging: Path | None = None,
    staging_prefix: str | None = None,
) -> None:
    """Check resources.zip completely, then extract it to `dest` (which must not exist
    or be an empty folder). Raises JobError(resource_invalid) and writes nothing on a bad
    archive.

    Members are written into a temporary folder in `staging` (default: beside `dest`,
    same filesystem) named `staging_prefix` + random, then renamed to `dest`.
    """
    limits = limits or ZipLimits()
    zf = _open_zip(zip_path)
    with zf:
        members = check_members(zf, limits)
        if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
            raise JobError(
                ErrorCode.INPUT_INVALID,
                f"the job holds both {RESOURCES_DIR}/ and {RESOURCES_ZIP}; keep only one",
            )
        tmp = Path(
            tempfile.mkdtemp(prefix=staging_prefix or f".{dest.name}.", dir=staging or dest.parent)
        )
        try:
            for info, rel in members:
                target = tmp.joinpath(*rel.parts)
                if info.is_dir() or _mode_type(info) == stat.S_IFDIR:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                _copy_member(zf, info, target, info.file_size)
            os.chmod(tmp, 0o755)
            if dest.exists():
                dest.rmdir()
            os.rename(tmp, dest)
        except JobError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, ValueError) as exc:
            # Corrupt data (bad CRC, broken deflate stream) or an unsupported method.
            shutil.rmtree(tmp, ignore_errors=True)
            raise JobError(
                ErrorCode.RESOURCE_INVALID, f"resources.zip could not be extracted: {exc}"
            ) from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
