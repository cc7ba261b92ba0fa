"""Test-only: run this Python process with its wall clock SPOOLD_HARNESS_CLOCK_SKEW_S off.

tests/hosts.py puts this folder on PYTHONPATH of an emulated host's daemon, so the
daemon, its forkserver and its workers all read a clock minutes ahead or behind, as on
a host without NTP. Only the wall clock moves: time.monotonic() is untouched, and file
times stay the kernel's, as a skewed NFS client's would against its server.
"""

from __future__ import annotations

import datetime as _datetime
import os
import time as _time

_SKEW_S = float(os.environ.get("SPOOLD_HARNESS_CLOCK_SKEW_S", "0") or 0)

if _SKEW_S:
    _real_time = _time.time
    _real_time_ns = _time.time_ns
    _skew_ns = int(_SKEW_S * 1e9)

    def _skewed_time() -> float:
        return _real_time() + _SKEW_S

    def _skewed_time_ns() -> int:
        return _real_time_ns() + _skew_ns

    class _SkewedDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def,override]
            return cls.fromtimestamp(_skewed_time(), tz)

        @classmethod
        def utcnow(cls):  # type: ignore[no-untyped-def,override]
            return cls.fromtimestamp(_skewed_time(), _datetime.UTC).replace(tzinfo=None)

    _time.time = _skewed_time
    _time.time_ns = _skewed_time_ns
    _datetime.datetime = _SkewedDatetime  # type: ignore[misc]
