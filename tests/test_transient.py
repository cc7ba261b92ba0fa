"""Bounded retries of transient filesystem errors."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from spoold.transient import TransientFsError, retrying


class Flaky:
    """Fails with `errnos` in turn, then returns 'ok'; counts its calls."""

    def __init__(self, *errnos: int) -> None:
        self.errnos = list(errnos)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errnos:
            code = self.errnos.pop(0)
            raise OSError(code, os.strerror(code), "/spool/inbox/x")
        return "ok"


def test_transient_errors_are_retried_until_the_call_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []
    flaky = Flaky(errno.ESTALE, errno.EBUSY, errno.EAGAIN)
    with caplog.at_level(logging.WARNING, logger="spoold.transient"):
        assert retrying(flaky, sleep=waits.append)() == "ok"
    assert flaky.calls == 4
    assert len(waits) == 3 and all(0 < w <= 0.5 + 0.05 for w in waits)
    assert len(caplog.records) == 1  # logged once, not once per attempt


def test_a_filesystem_that_stays_broken_gives_a_clear_error_after_few_attempts() -> None:
    flaky = Flaky(*[errno.EIO] * 10)
    with pytest.raises(TransientFsError) as err:
        retrying(flaky, sleep=lambda s: None)()
    assert flaky.calls == 4
    assert err.value.errno == errno.EIO
    assert "still failing after 4 attempts" in str(err.value)
    assert isinstance(err.value, OSError)  # existing OSError handlers still apply


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    flaky = Flaky(errno.ENOENT)
    with pytest.raises(FileNotFoundError):
        retrying(flaky, sleep=lambda s: None)()
    assert flaky.calls == 1
    with pytest.raises(FileNotFoundError):
        retrying((tmp_path / "missing").read_bytes, sleep=lambda s: None)()
