"""Bounded retries of transient filesystem errors."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from spoold.spool.transient import TransientFsError, retrying


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
    with caplog.at_level(logging.WARNING, logger="spoold.spool.transient"):
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


class FailingOnce:
    """Wraps an os function: its first `times` calls fail with `code`, then it works."""

    def __init__(self, real: object, code: int, times: int = 1) -> None:
        self.real = real
        self.code = code
        self.times = times

    def __call__(self, *args: object, **kwargs: object) -> object:
        if self.times > 0:
            self.times -= 1
            raise OSError(self.code, os.strerror(self.code))
        return self.real(*args, **kwargs)  # type: ignore[operator]


@pytest.mark.parametrize("code", [errno.ESTALE, errno.EBUSY, errno.EIO, errno.EAGAIN])
def test_the_daemons_claim_and_publish_renames_ride_out_a_transient_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    from spoold.spool.protocol import claim_entry, init_spool, publish, running_name

    paths = init_spool(tmp_path / "spool")
    (paths.inbox / "doc.md").write_text("# x\n")
    monkeypatch.setattr(os, "rename", FailingOnce(os.rename, code))
    folder = claim_entry(
        paths, "doc.md", "doc.md", "doc.20260101T000000Z-0123456789", 1, "0a0b0c0d"
    )
    assert folder is not None and folder.name == running_name(
        "doc.20260101T000000Z-0123456789", 1, "0a0b0c0d"
    )
    monkeypatch.setattr(os, "rename", FailingOnce(os.rename, code))
    dest = publish(folder, paths.done, "doc.20260101T000000Z-0123456789", durable=False)
    assert dest is not None and (dest / "input" / "doc.md").read_text() == "# x\n"


def test_a_state_file_read_through_a_stale_handle_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ESTALE must not pass for "no state file": the attempts recorded there count."""
    from spoold.spool.job import JobState, read_state
    from spoold.spool.protocol import STATE_FILE, atomic_write_json

    state = JobState(
        job_id="j", name="doc.md", jobdir="doc.j", kind="file", owner_uid=0, arrived_at="t"
    )
    monkeypatch.setattr(os, "rename", FailingOnce(os.rename, errno.EIO))
    atomic_write_json(tmp_path / STATE_FILE, state.to_json(), durable=False)
    failing = FailingOnce(Path.read_bytes, errno.ESTALE)

    def read_bytes(self: Path) -> bytes:
        return failing(self)  # type: ignore[return-value]

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    again = read_state(tmp_path)
    assert again is not None and again.job_id == "j"
