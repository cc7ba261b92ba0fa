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


ACCESS_LOG = logging.getLogger("spoold.http.access")


def log_request(
    method: str, path: str, status: int, seconds: float, client: str, caller: str | None
) -> None:
    """One access-log line of the HTTP gateway, in the daemon's formats: a text line,
    or with `log_format = "json"` an object like an event's (`event: http.request`).
    `path` is the raw, still percent-encoded path: no control character reaches a log."""
    record: dict[str, Any] = {
        "event": "http.request",
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "client": client,
        "token": caller,
    }
    if ACCESS_LOG.isEnabledFor(logging.INFO):
        ACCESS_LOG.info(
            "%s %s %d %.1fms client=%s token=%s",
            method,
            path,
            status,
            seconds * 1000,
            client,
            caller or "-",
            extra={"spoold_event": record},
        )
