"""The workers' private fontconfig folder, made per daemon run and removed when the pool
stops (why: spoold/worker/fonts.py). The daemon makes it; each worker points fontconfig
at it before it loads any font."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

from ..worker.spec import PrivateFontconfig

DIR_PREFIX = "spoold-fontconfig-"
DEFAULT_SYSTEM_CONF = "/etc/fonts/fonts.conf"


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
        "  <!-- Written by spoold for its workers (spoold/daemon/fontconfig.py); removed when it stops.\n"
        "       The first writable cachedir is the one fontconfig writes to. -->\n"
        f"  <cachedir>{escape(str(cache_dir))}</cachedir>\n"
        f'  <include ignore_missing="yes">{escape(system_conf)}</include>\n'
        "</fontconfig>\n"
    )


def make_private_fontconfig(parent: Path | None = None) -> PrivateFontconfig:
    """Create this daemon run's fontconfig directory (fonts.conf, cache/, xdg/)."""
    if parent is None:
        parent = Path(os.environ.get("RUNTIME_DIRECTORY") or tempfile.gettempdir())
    _remove_stale(parent)
    root = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-", dir=parent))
    cache = root / PrivateFontconfig.CACHE_DIR
    fontconfig = PrivateFontconfig(str(root), private_fonts_conf(cache, system_fonts_conf()))
    fontconfig.write()
    return fontconfig


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


def remove_private_fontconfig(fontconfig: PrivateFontconfig) -> None:
    shutil.rmtree(fontconfig.root, ignore_errors=True)
