"""The `spoold` command: a thin click layer over spoold.api and spoold.daemon.

Exit codes follow sysexits: 0 ok, 64 usage, 65 bad input (a failed job), 69 unavailable,
75 try later, 78 bad configuration (spoold/cli/shared.py).

One module per group of commands: run.py (the daemon, a foreground conversion),
jobs.py (submit, cancel, retry), views.py (status, show, list, events), admin.py
(init, doctor, purge, check-events); main.py assembles them and maps click's errors
to exit codes.
"""

from __future__ import annotations

import signal
import sys

# `spoold run`: block the signals the daemon handles before the ~200 ms of imports, so
# that an early SIGHUP (a reload by a quick `systemctl reload`) stays pending instead of
# killing the process (rc 129); the Daemon unblocks them once its handlers exist.
# Nothing may be imported above this but the standard library's signal and sys.
DAEMON_SIGNALS = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT}
if sys.argv[1:2] == ["run"]:
    signal.pthread_sigmask(signal.SIG_BLOCK, DAEMON_SIGNALS)

from .main import cli, main

__all__ = ["DAEMON_SIGNALS", "cli", "main"]
