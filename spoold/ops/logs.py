"""Logging: one line per event, readable on a terminal, JSON for journald and shippers."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from ..spool.clock import iso_of


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            # UTC with microseconds, as in events.ndjson (event lines carry their own ts).
            "ts": iso_of(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        event = getattr(record, "spoold_event", None)
        if isinstance(event, dict):
            out.update(event)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # watchdog is chatty at INFO about its own threads.
    logging.getLogger("watchdog").setLevel(logging.WARNING)
