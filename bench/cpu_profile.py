"""Run a module under cProfile timed by the main thread's CPU clock, not the wall clock.

    python bench/cpu_profile.py OUT.prof -m spoold run SPOOL ...

On a loaded machine wall-clock profiles charge a function with the time it waited for a
core; the thread's CPU time charges it only with what it ran. The stats are written
when the module returns or exits (the daemon after SIGTERM).
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, flag, module, *rest = sys.argv[1:]
    if flag != "-m":
        raise SystemExit("usage: cpu_profile.py OUT.prof -m MODULE [ARGS...]")
    sys.argv = [module, *rest]
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
