"""Fontconfig in the workers: a private cache, and fonts loaded before the memory limit.

Why (docs/operations.md "Fonts and the worker memory limit"): WeasyPrint loads
fontconfig afresh for every document (FcInitLoadConfigAndFonts). When that load runs
short of address space (RLIMIT_AS), reading a font directory's cache file fails
(mmap, then malloc), fontconfig rescans the directory, FreeType cannot open the font
files either, the failures are skipped silently, and the incomplete cache is written
to the first writable <cachedir>: for root, /var/cache/fontconfig. Every program on
the machine then lists fewer fonts until `fc-cache -f`.

So each worker, before its limit is set:
- points FONTCONFIG_FILE at a generated fonts.conf whose first <cachedir> is the
  daemon's own directory, then includes the system configuration unchanged: caches
  are still read from the system cache, but anything fontconfig writes lands in the
  daemon's directory (fontconfig writes to the first writable cache dir only);
  XDG_CACHE_HOME points there too, for the <cachedir prefix="xdg"> entries and the
  fallback configuration fontconfig uses when a config file cannot be parsed;
- loads the fonts once and keeps them: fontconfig finds a cache file that is already
  mapped by its inode and mtime (FcCacheFindByStat) and reuses it, so the loads during
  a job need no cache reads and never rescan.
The directory is made per daemon run and removed when the pool stops, so nothing a
worker wrote outlives the daemon.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

FONTS_CONF = "fonts.conf"
CACHE_DIR = "cache"
XDG_DIR = "xdg"
DIR_PREFIX = "spoold-fontconfig-"
DEFAULT_SYSTEM_CONF = "/etc/fonts/fonts.conf"

# Fonts loaded by this worker before its memory limit: kept for the worker's life.
_held: list[object] = []


def system_fonts_conf() -> str:
    """The configuration file fontconfig would load here (FONTCONFIG_FILE/PATH honoured)."""
    name = ctypes.util.find_library("fontconfig")
    if name is None:
        return DEFAULT_SYSTEM_CONF
    try:
        lib = ctypes.CDLL(name)
        lib.FcConfigFilename.restype = ctypes.c_void_p
        lib.FcConfigFilename.argtypes = [ctypes.c_char_p]
        lib.FcStrFree.argtypes = [ctypes.c_void_p]
        found = lib.FcConfigFilename(None)
    except (OSError, AttributeError):
        return DEFAULT_SYSTEM_CONF
    if not found:
        return DEFAULT_SYSTEM_CONF
    try:
        return os.fsdecode(ctypes.string_at(found))
    finally:
        lib.FcStrFree(found)


def private_fonts_conf(cache_dir: Path, system_conf: str) -> str:
    """fonts.conf text: our cache directory first, then the system configuration."""
    return (
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n'
        "<fontconfig>\n"
        "  <!-- Written by spoold for its workers (spoold/fonts.py); removed when it stops.\n"
        "       The first writable cachedir is the one fontconfig writes to. -->\n"
        f"  <cachedir>{escape(str(cache_dir))}</cachedir>\n"
        f'  <include ignore_missing="yes">{escape(system_conf)}</include>\n'
        "</fontconfig>\n"
    )


def make_private_fontconfig(parent: Path | None = None) -> Path:
    """Create this daemon run's fontconfig directory (fonts.conf, cache/, xdg/)."""
    if parent is None:
        parent = Path(os.environ.get("RUNTIME_DIRECTORY") or tempfile.gettempdir())
    _remove_stale(parent)
    root = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-", dir=parent))
    write_private_fontconfig(root)
    return root


def _remove_stale(parent: Path) -> None:
    """Directories of our own earlier daemons that died without removing them."""
    for old in parent.glob(f"{DIR_PREFIX}*"):
        pid = old.name[len(DIR_PREFIX) :].split("-")[0]
        try:
            mine = old.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)


def write_private_fontconfig(root: Path) -> None:
    """(Re)create the directory's parts; fonts.conf appears whole (rename)."""
    (root / CACHE_DIR).mkdir(parents=True, exist_ok=True)
    (root / XDG_DIR).mkdir(exist_ok=True)
    staging = root / f".{FONTS_CONF}.{os.getpid()}"
    staging.write_text(private_fonts_conf(root / CACHE_DIR, system_fonts_conf()))
    staging.replace(root / FONTS_CONF)


def remove_private_fontconfig(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def use_private_fontconfig(root: Path) -> None:
    """In a worker, before fontconfig loads: use the daemon's config and cache.

    A missing fonts.conf (a /tmp cleaner took it) is written again first: fontconfig
    would otherwise fall back to its built-in configuration, whose first cache
    directory is the system's.
    """
    if not (root / FONTS_CONF).is_file():
        write_private_fontconfig(root)
    os.environ["FONTCONFIG_FILE"] = str(root / FONTS_CONF)
    os.environ["XDG_CACHE_HOME"] = str(root / XDG_DIR)


def preload_fonts() -> None:
    """Load fontconfig and Pango once, with no memory limit yet, and keep them loaded."""
    from weasyprint.text.fonts import FontConfiguration

    _held.append(FontConfiguration())
