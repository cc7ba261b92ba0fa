"""`spoold doctor`: check a spool and this machine before trusting them with files.

Each check returns pass, warn or fail with one line of explanation and, where it
helps, what to do. Nothing is changed, except that `.spoold/clock-probe` is rewritten
to read the file server's clock (daemons' heartbeat ages are judged on it).

`python -m spoold.ops.doctor --system` runs only the checks of this machine (the system
libraries WeasyPrint loads, fonts); `make run` runs it first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, SpoolError
from ..settings import SpoolSettings, load_spool_settings
from ..spool.clock import spool_now
from ..spool.fstype import filesystem_of, needs_polling
from ..spool.leases import heartbeat_ages
from ..spool.protocol import SUBDIRS, SpoolPaths, check_same_filesystem, free_disk_mb


@dataclass
class Check:
    level: str  # pass, warn, fail
    name: str
    detail: str


def _layout(paths: SpoolPaths) -> Check:
    missing = [n for n in SUBDIRS if not (paths.root / n).is_dir()]
    if missing:
        return Check(
            "fail", "layout", f"missing {', '.join(missing)}: run `spoold init {paths.root}`"
        )
    return Check("pass", "layout", "every spool folder exists")


def _same_fs(paths: SpoolPaths) -> Check:
    try:
        check_same_filesystem(paths)
    except SpoolError as exc:
        return Check("fail", "one filesystem", str(exc))
    return Check("pass", "one filesystem", "claims and publishes are atomic renames")


def _permissions(paths: SpoolPaths) -> Check:
    bad = [n for n in SUBDIRS if not os.access(paths.root / n, os.W_OK | os.X_OK)]
    if bad:
        return Check(
            "fail", "permissions", f"this user (uid {os.geteuid()}) cannot write {', '.join(bad)}"
        )
    return Check("pass", "permissions", f"uid {os.geteuid()} can write every spool folder")


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def _inotify() -> Check:
    queued = _read_int("/proc/sys/fs/inotify/max_queued_events")
    watches = _read_int("/proc/sys/fs/inotify/max_user_watches")
    instances = _read_int("/proc/sys/fs/inotify/max_user_instances")
    if queued is None:
        return Check("warn", "inotify", "limits unreadable; spoold will rely on polling scans")
    detail = (
        f"max_queued_events={queued}, max_user_watches={watches}, max_user_instances={instances}"
    )
    if queued < 16384 or (instances is not None and instances < 8):
        return Check(
            "warn",
            "inotify",
            detail + " (low: bursts overflow and cost a rescan; "
            "raise fs.inotify.max_queued_events)",
        )
    return Check("pass", "inotify", detail)


def _polling(paths: SpoolPaths, settings: SpoolSettings) -> Check:
    fstype = filesystem_of(paths.root).name
    if needs_polling(paths.root):
        if settings.detect == "inotify":
            return Check(
                "fail",
                "detection",
                f'{fstype} cannot report remote writes to inotify; set detect = "poll" or "auto"',
            )
        return Check(
            "warn",
            "detection",
            f"{fstype} mount: polling every {settings.poll_interval_ms} ms (auto does this)",
        )
    return Check("pass", "detection", f"{fstype}: inotify sees every write")


def _fonts() -> Check:
    fc = shutil.which("fc-list")
    if fc is None:
        return Check("warn", "fonts", "fc-list not found; cannot tell which fonts PDFs can use")
    out = subprocess.run([fc, ":", "family"], capture_output=True, text=True, timeout=30)
    families = {line.split(",")[0] for line in out.stdout.splitlines() if line.strip()}
    if not families:
        return Check(
            "fail",
            "fonts",
            "no fonts installed: PDFs would have no text (install fonts-dejavu-core)",
        )
    from ..convert.scripts import font_report

    level, scripts, _ = font_report()
    return Check(level, "fonts", f"{len(families)} font families; {scripts}")


@dataclass(frozen=True)
class SystemLibrary:
    name: str  # as ctypes.util.find_library takes it (libNAME.so)
    package: str  # the Debian package that ships it
    required: bool  # False: WeasyPrint works without it, differently
    why: str


# What WeasyPrint loads with dlopen (weasyprint/text/ffi.py), and where Debian has it.
SYSTEM_LIBRARIES = (
    SystemLibrary("gobject-2.0", "libglib2.0-0", True, "GLib objects for Pango"),
    SystemLibrary("pango-1.0", "libpango-1.0-0", True, "text layout"),
    SystemLibrary("pangoft2-1.0", "libpangoft2-1.0-0", True, "fonts for Pango"),
    SystemLibrary("harfbuzz", "libharfbuzz0b", True, "text shaping"),
    SystemLibrary("fontconfig", "libfontconfig1", True, "finding fonts"),
    SystemLibrary(
        "harfbuzz-subset",
        "libharfbuzz-subset0",
        False,
        "font subsetting: without it WeasyPrint falls back to fontTools, which is slower,"
        " warns once per font on every job, and embeds different font bytes, so a PDF's"
        " sha256 differs from one made on a host that has the library",
    ),
)


def _loadable(name: str) -> str | None:
    """The file a library loads from, or None when it is missing or does not load."""
    found = ctypes.util.find_library(name)
    if found is None:
        return None
    try:
        ctypes.CDLL(found)
    except OSError:
        return None
    return found


def _libraries() -> list[Check]:
    checks = []
    for lib in SYSTEM_LIBRARIES:
        found = _loadable(lib.name)
        if found is not None:
            checks.append(Check("pass", f"lib {lib.name}", f"{found} ({lib.why.split(':')[0]})"))
            continue
        checks.append(
            Check(
                "fail" if lib.required else "warn",
                f"lib {lib.name}",
                f"lib{lib.name} is missing ({lib.why}); install it: apt-get install {lib.package}",
            )
        )
    return checks


def missing_packages() -> list[str]:
    """Debian packages to install for every missing library, required or not, and for
    the scripts the fonts should cover (spoold.convert.scripts.EXPECTED)."""
    from ..convert.scripts import font_report

    libraries = [lib.package for lib in SYSTEM_LIBRARIES if _loadable(lib.name) is None]
    return libraries + font_report()[2]


def _weasyprint() -> Check:
    try:
        import weasyprint
    except OSError as exc:
        return Check(
            "fail",
            "weasyprint",
            f"system libraries missing ({exc}); install libpango-1.0-0 and libpangoft2-1.0-0",
        )
    except ImportError as exc:
        return Check("fail", "weasyprint", f"not installed: {exc}")
    return Check("pass", "weasyprint", f"WeasyPrint {weasyprint.__version__} loads")


def _disk(paths: SpoolPaths, settings: SpoolSettings) -> Check:
    free = free_disk_mb(paths.root)
    if free < settings.min_free_mb:
        return Check(
            "fail",
            "disk",
            f"{free:.0f} MB free, below min_free_mb "
            f"{settings.min_free_mb}: the daemon will not claim jobs",
        )
    if free < settings.min_free_mb * 4:
        return Check("warn", "disk", f"{free:.0f} MB free (min_free_mb is {settings.min_free_mb})")
    return Check("pass", "disk", f"{free:.0f} MB free")


def _daemons(paths: SpoolPaths, settings: SpoolSettings) -> Check:
    # On the spool's clock: this host's may be minutes off the file server's.
    ages = heartbeat_ages(paths.daemons, spool_now(paths.clock_probe)).values()
    alive = [a for a in ages if a <= settings.lease_ttl_s]
    if not alive:
        return Check("warn", "daemons", "no daemon is serving this spool right now")
    return Check("pass", "daemons", f"{len(alive)} daemon(s) alive")


def system_checks() -> list[Check]:
    """Checks of this machine alone (no spool): libraries, fonts, WeasyPrint."""
    checks = _libraries()
    for step in (_fonts, _weasyprint):
        try:
            checks.append(step())
        except Exception as exc:  # a check that breaks is itself a finding
            checks.append(Check("fail", step.__name__.strip("_"), f"{exc}"))
    return checks


def run_checks(root: Path) -> list[Check]:
    paths = SpoolPaths(root)
    if not root.is_dir():
        return [Check("fail", "spool", f"{root} does not exist: run `spoold init {root}`")]
    checks = [_layout(paths)]
    if checks[0].level == "fail":
        return checks
    try:
        settings = load_spool_settings(root)
        checks.append(Check("pass", "settings", "spool.toml is valid"))
    except ConfigError as exc:
        checks.append(Check("fail", "settings", str(exc)))
        settings = SpoolSettings()
    steps: list[Callable[[], Check]] = [
        lambda: _same_fs(paths),
        lambda: _permissions(paths),
        _inotify,
        lambda: _polling(paths, settings),
        lambda: _disk(paths, settings),
        lambda: _daemons(paths, settings),
    ]
    for step in steps:
        try:
            checks.append(step())
        except Exception as exc:  # a check that breaks is itself a finding
            checks.append(Check("fail", getattr(step, "__name__", "check"), f"{exc}"))
    return checks + system_checks()


def report(checks: list[Check]) -> str:
    """One line per check, then one `apt-get install` line for what is missing."""
    width = max(len(c.name) for c in checks)
    lines = [f"{c.level.upper():4}  {c.name:{width}}  {c.detail}" for c in checks]
    packages = missing_packages()
    if packages:
        lines.append(f"to install what is missing: apt-get install {' '.join(packages)}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """`python -m spoold.ops.doctor --system`: exit 69 when a required library is missing."""
    if argv != ["--system"]:
        print(
            "usage: python -m spoold.ops.doctor --system  (or: spoold doctor SPOOL)",
            file=sys.stderr,
        )
        return 64
    checks = system_checks()
    print(report(checks))
    return 69 if any(c.level == "fail" for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
