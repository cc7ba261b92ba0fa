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
worker wrote outlives the daemon (spoold/daemon/fontconfig.py makes it).
"""

from __future__ import annotations

import os

from .spec import PrivateFontconfig

# Fonts loaded by this worker before its memory limit: kept for the worker's life.
_held: list[object] = []


def use_private_fontconfig(fontconfig: PrivateFontconfig) -> None:
    """In a worker, before fontconfig loads: use the daemon's config and cache.

    A missing fonts.conf (a /tmp cleaner took it) is written again first: fontconfig
    would otherwise fall back to its built-in configuration, whose first cache
    directory is the system's.
    """
    conf = os.path.join(fontconfig.root, fontconfig.FONTS_CONF)
    if not os.path.isfile(conf):
        fontconfig.write()
    os.environ["FONTCONFIG_FILE"] = conf
    os.environ["XDG_CACHE_HOME"] = os.path.join(fontconfig.root, fontconfig.XDG_DIR)


def preload_fonts() -> None:
    """Load fontconfig and Pango once, with no memory limit yet, and keep them loaded."""
    from weasyprint.text.fonts import FontConfiguration

    _held.append(FontConfiguration())
