"""sd_notify(3) in pure Python, so spoold needs no libsystemd binding.

The service manager hands the daemon a datagram socket in ``NOTIFY_SOCKET`` and reads
``KEY=VALUE`` lines from it:

- ``READY=1``: start-up is complete. spoold sends it only after it has recovered
  running/ (so ``systemctl start`` returns once the spool is consistent).
- ``STATUS=...``: one line for ``systemctl status`` (queue figures).
- ``WATCHDOG=1``: the main loop made progress; sent every :meth:`watchdog_interval`.
- ``STOPPING=1``: draining after SIGTERM.
- ``RELOADING=1`` + ``MONOTONIC_USEC=``: SIGHUP reload in progress (ended by READY=1).

Without ``NOTIFY_SOCKET`` (a terminal, a test, another supervisor) every method is a
no-op. No method ever raises: losing a status line must not take the daemon down, so
send errors are logged at debug level and dropped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

# Bounds a send if the manager's socket buffer is full: a stalled main loop is worse
# than one lost datagram (the next STATUS or WATCHDOG follows soon).
_SEND_TIMEOUT_S = 2.0


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _parse_address(raw: str | None) -> str | None:
    """The AF_UNIX address from ``NOTIFY_SOCKET``, or None when unusable.

    '@name' is an abstract socket ('\\0name'); '/path' a filesystem one. Other forms
    (systemd 254+ also knows 'vsock:') are not for a daemon on the same host.
    """
    if not raw:
        return None
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    log.debug("sd_notify: unsupported NOTIFY_SOCKET %r; notifications disabled", raw)
    return None


def _clean(value: object) -> str:
    # The protocol is newline-separated: a newline inside STATUS would start a bogus
    # field (or smuggle in READY=1), so fold it into a space.
    return str(value).replace("\r", " ").replace("\n", " ")


class Notifier:
    """A handle on the service manager's notification socket.

    ``environ`` defaults to ``os.environ``; the address is read once, at creation.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self.address: str | None = _parse_address(self._environ.get("NOTIFY_SOCKET"))
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify (running under systemd Type=notify)."""
        return self.address is not None

    # ------------------------------------------------------------------ messages

    def ready(self, status: str | None = None) -> bool:
        """READY=1, with an optional STATUS= line."""
        if status is None:
            return self.notify(READY="1")
        return self.notify(READY="1", STATUS=status)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify(STOPPING="1")
        return self.notify(STOPPING="1", STATUS=status)

    def reloading(self) -> bool:
        """RELOADING=1 with the MONOTONIC_USEC= systemd needs to order it; end with ready()."""
        return self.notify(RELOADING="1")

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG="1")

    def notify(self, **fields: object) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; True when it was sent.

        RELOADING=1 without MONOTONIC_USEC gets one added, since systemd (253+) wants
        the pair to tell this reload apart from an earlier one.
        """
        if self.address is None or not fields:
            return False
        if "RELOADING" in fields and "MONOTONIC_USEC" not in fields:
            fields["MONOTONIC_USEC"] = _monotonic_usec()
        try:
            lines = []
            for key, value in fields.items():
                if not key or "=" in key or "\n" in key:
                    log.debug("sd_notify: invalid field name %r dropped", key)
                    continue
                lines.append(f"{key}={_clean(value)}")
            payload = "\n".join(lines).encode()
        except Exception:  # a value whose str() fails must not escape either
            log.debug("sd_notify: could not format %r", fields, exc_info=True)
            return False
        return bool(lines) and self._send(payload)

    # ------------------------------------------------------------------ watchdog

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the period), or None when disabled.

        Disabled when there is no NOTIFY_SOCKET, WATCHDOG_USEC is unset or invalid, or
        WATCHDOG_PID names another process (the variables leaked into a child).
        """
        if self.address is None:
            return None
        raw_usec = self._environ.get("WATCHDOG_USEC")
        if not raw_usec:
            return None
        try:
            usec = int(raw_usec)
        except ValueError:
            log.debug("sd_notify: invalid WATCHDOG_USEC %r", raw_usec)
            return None
        if usec <= 0:
            return None
        raw_pid = self._environ.get("WATCHDOG_PID")
        if raw_pid:
            try:
                pid = int(raw_pid)
            except ValueError:
                log.debug("sd_notify: invalid WATCHDOG_PID %r", raw_pid)
                return None
            if pid != os.getpid():
                return None
        # Half the period, as sd_watchdog_enabled(3) advises: one late ping is not fatal.
        return usec / 1_000_000 / 2

    # ------------------------------------------------------------------ socket

    def _send(self, payload: bytes) -> bool:
        assert self.address is not None
        try:
            with self._lock:
                if self._sock is None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    sock.settimeout(_SEND_TIMEOUT_S)
                    self._sock = sock
                self._sock.sendto(payload, self.address)
            return True
        except OSError:
            log.debug("sd_notify: sending to %r failed", self.address, exc_info=True)
            return False

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
