"""sd_notify over a real AF_UNIX datagram socket, as systemd would receive it."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spoold.ops.sdnotify import Notifier


class Receiver:
    """The service manager's end: a bound datagram socket."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value
        # A bound on a hang, not a pause: recv returns as soon as a datagram is there.
        sock.settimeout(10)

    def fields(self) -> dict[str, str]:
        data = self.sock.recv(65536).decode()
        out = {}
        for line in data.split("\n"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=VALUE: {line!r} in {data!r}"
            out[key] = value
        return out

    def assert_empty(self) -> None:
        self.sock.setblocking(False)
        try:
            with pytest.raises(BlockingIOError):
                self.sock.recv(65536)
        finally:
            self.sock.settimeout(10)


@pytest.fixture
def path_receiver(tmp_path: Path) -> Iterator[Receiver]:
    path = tmp_path / "notify.sock"
    if len(str(path)) > 100:  # sun_path holds 108 bytes
        path = Path(tempfile.mkdtemp(prefix="sdn")) / "n.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield Receiver(sock, str(path))
    finally:
        sock.close()


@pytest.fixture
def abstract_receiver() -> Iterator[Receiver]:
    name = f"spoold-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        yield Receiver(sock, "@" + name)
    finally:
        sock.close()


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    rec: Receiver = request.getfixturevalue(f"{request.param}_receiver")
    monkeypatch.setenv("NOTIFY_SOCKET", rec.env_value)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield rec


def test_ready_with_status(receiver: Receiver) -> None:
    with Notifier() as n:
        assert n.enabled
        assert n.ready("0/4 busy, 3 queued")
        assert receiver.fields() == {"READY": "1", "STATUS": "0/4 busy, 3 queued"}


def test_status_stopping_watchdog(receiver: Receiver) -> None:
    with Notifier() as n:
        n.status("2/4 busy, 0 queued")
        assert receiver.fields() == {"STATUS": "2/4 busy, 0 queued"}
        n.stopping()
        assert receiver.fields() == {"STOPPING": "1"}
        n.watchdog()
        assert receiver.fields() == {"WATCHDOG": "1"}
    receiver.assert_empty()


def test_reloading_carries_monotonic_usec(receiver: Receiver) -> None:
    with Notifier() as n:
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        n.reloading()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        fields = receiver.fields()
        assert fields["RELOADING"] == "1"
        assert before <= int(fields["MONOTONIC_USEC"]) <= after
        # The daemon's own notify(RELOADING="1") gets the timestamp as well.
        n.notify(RELOADING="1")
        assert "MONOTONIC_USEC" in receiver.fields()
        n.ready()
        assert receiver.fields() == {"READY": "1"}


def test_notify_fields_and_newlines(receiver: Receiver) -> None:
    with Notifier() as n:
        # A newline in STATUS must not become a field of its own (READY=1 smuggled in).
        n.notify(STATUS="line one\nREADY=1", ERRNO=5)
        assert receiver.fields() == {"STATUS": "line one READY=1", "ERRNO": "5"}


def test_one_datagram_per_call(receiver: Receiver) -> None:
    with Notifier() as n:
        for i in range(5):
            n.status(f"tick {i}")
        assert [receiver.fields()["STATUS"] for _ in range(5)] == [f"tick {i}" for i in range(5)]


def test_send_failure_is_swallowed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Nobody listens on this path: sendto fails with ENOENT / ECONNREFUSED.
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    with Notifier() as n:
        assert n.enabled
        assert n.ready("x") is False
        assert n.watchdog() is False


def test_noop_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    n = Notifier()
    assert not n.enabled
    assert n.ready("x") is False
    assert n.status("x") is False
    assert n.stopping() is False
    assert n.reloading() is False
    assert n.watchdog() is False
    assert n.notify(READY="1") is False
    assert n.watchdog_interval() is None
    n.close()


@pytest.mark.parametrize("value", ["", "vsock:2:1234", "relative/path"])
def test_unusable_socket_values_disable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    n = Notifier()
    assert not n.enabled
    assert n.ready("x") is False


def test_environ_mapping_overrides_os_environ(path_receiver: Receiver) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_receiver.env_value, "WATCHDOG_USEC": "2000000"})
    assert n.watchdog_interval() == 1.0
    n.watchdog()
    assert path_receiver.fields() == {"WATCHDOG": "1"}
    n.close()


# ---------------------------------------------------------------------- watchdog_interval


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("30000000", "other", None),
        ("1000000", None, 0.5),
        (None, None, None),
        ("0", None, None),
        ("-5", None, None),
        ("soon", None, None),
        ("30000000", "notapid", None),
    ],
)
def test_watchdog_interval(
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    usec: str | None,
    pid: str | None,
    expected: float | None,
) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid == "self":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    elif pid == "other":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    elif pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", pid)
    assert Notifier().watchdog_interval() == expected
