"""The main loop's last-resort catch, with a limit.

One failing pass is logged and the loop goes on (a bug in handling one job must not
stop the daemon). The same error in `limit` passes in a row is not one job's any more:
the daemon exits 70 (EX_SOFTWARE) and systemd starts a fresh one, instead of logging
the same traceback forever.
"""

from __future__ import annotations

import logging
import traceback

log = logging.getLogger("spoold")


class ErrorGuard:
    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self._last: str | None = None
        self._repeats = 0

    def ok(self) -> None:
        self._last, self._repeats = None, 0

    def failed(self, exc: Exception) -> bool:
        """Log the error (its traceback once); True when it repeated `limit` times."""
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        key = f"{type(exc).__name__} at {where}"
        if key == self._last:
            self._repeats += 1
            log.error("internal error in the main loop again (%d in a row): %s", self._repeats, exc)
        else:
            self._last, self._repeats = key, 1
            log.exception("internal error in the main loop; continuing")
        return self._repeats >= self.limit
