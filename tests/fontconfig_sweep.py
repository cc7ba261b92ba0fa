"""Run as a script by tests/test_worker_fonts.py: load fontconfig short of memory.

`python fontconfig_sweep.py bare` loads fontconfig as WeasyPrint does for each document
(FcInitLoadConfigAndFonts) with the address-space limit set just above what the process
uses, for a range of margins: the conditions of a worker whose job has used up its
`memory_limit_mb`. `python fontconfig_sweep.py worker DIR` first sets the worker up as
spoold.worker.run.init_worker does (private fontconfig DIR, fonts preloaded), then does the
same. The process may crash doing it: the caller looks only at the font caches.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
from pathlib import Path


def address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main() -> None:
    name = ctypes.util.find_library("fontconfig")
    assert name is not None
    fc = ctypes.CDLL(name)
    fc.FcInitLoadConfigAndFonts.restype = ctypes.c_void_p
    fc.FcConfigDestroy.argtypes = [ctypes.c_void_p]
    if sys.argv[1] == "worker":
        from spoold.worker.fonts import preload_fonts, use_private_fontconfig
        from spoold.worker.spec import PrivateFontconfig

        root = Path(sys.argv[2])
        conf = (root / PrivateFontconfig.FONTS_CONF).read_text()
        use_private_fontconfig(PrivateFontconfig(str(root), conf))
        preload_fonts()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    for margin in range(0, 512 * 1024, 8192):
        resource.setrlimit(resource.RLIMIT_AS, (address_space() + margin, hard))
        config = fc.FcInitLoadConfigAndFonts()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        if config:
            fc.FcConfigDestroy(config)


if __name__ == "__main__":
    main()
