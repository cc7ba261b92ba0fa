"""Running the gateway: where it listens, who may reach it, TLS, slow clients, systemd.

- `--listen HOST:PORT` (IPv6 as `[::1]:8631`) or `--listen unix:/PATH`, repeatable;
  without `--tokens` every address must be loopback (127.0.0.0/8, ::1, `localhost`) or a
  unix socket, else `serve` refuses to start (exit 64).
- Slow clients: a request's headers must be complete within HEADER_TIMEOUT_S of its
  first byte (or of the connection), idle keep-alive connections close after
  KEEPALIVE_S, bodies are bounded in uploads.py; at most MAX_CONNECTIONS at once.
- Under systemd (Type=notify): READY=1 once every socket listens, WATCHDOG=1 from the
  event loop, STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..errors import SpooldError
from ..ops.sdnotify import Notifier

DEFAULT_LISTEN = "127.0.0.1:8631"
HEADER_TIMEOUT_S = 10.0
KEEPALIVE_S = 5
MAX_CONNECTIONS = 1000


class ListenError(SpooldError):
    """A --listen value that is malformed, or not allowed without tokens (exit 64)."""


@dataclass(frozen=True)
class Listen:
    host: str | None  # None: a unix socket
    port: int
    path: str | None = None

    @property
    def local(self) -> bool:
        if self.path is not None or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host or "").is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return (
            f"[{self.host}]:{self.port}" if ":" in (self.host or "") else f"{self.host}:{self.port}"
        )


def parse_listen(text: str) -> Listen:
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path.startswith("/"):
            raise ListenError(f"--listen {text}: a unix socket needs an absolute path")
        return Listen(None, 0, path)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ListenError(f"--listen {text}: expected HOST:PORT, [IPv6]:PORT or unix:/PATH")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        raise ListenError(f"--listen {text}: name the address (0.0.0.0 for every one)")
    return Listen(host, int(port))


def check_exposure(listens: list[Listen], tokens: Path | None) -> None:
    """Without tokens, only loopback and unix sockets: anyone else could act as admin."""
    if tokens is not None:
        return
    exposed = [str(x) for x in listens if not x.local]
    if exposed:
        raise ListenError(
            f"refusing to listen on {', '.join(exposed)} without --tokens: anyone who can "
            "reach it could submit and cancel jobs. Listen on 127.0.0.1, ::1 or a unix "
            "socket, or give --tokens FILE (spoold token add FILE NAME)"
        )


def bind(listen: Listen) -> socket.socket:
    if listen.path is not None:
        path = Path(listen.path)
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                path.unlink()  # a socket left by a gateway that was killed
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        os.chmod(path, 0o660)
    else:
        family = socket.AF_INET6 if ":" in (listen.host or "") else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        host = "127.0.0.1" if listen.host == "localhost" else listen.host
        sock.bind((host, listen.port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers do not
    arrive within HEADER_TIMEOUT_S (a slowloris holds no connection for long)."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


class Server(uvicorn.Server):
    """uvicorn's server, telling systemd when it listens and that its loop runs."""

    notifier = Notifier()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.notifier.ready("serving")
            interval = self.notifier.watchdog_interval()
            if interval:
                self._watchdog = asyncio.get_running_loop().create_task(self._beat(interval))

    async def _beat(self, interval: float) -> None:
        while not self.should_exit:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.notifier.stopping()
        await super().shutdown(sockets)


def serve(app: Any, listens: list[Listen], tls: tuple[Path, Path] | None, log_level: str) -> None:
    """Serve `app` on every address until SIGTERM or SIGINT."""
    sockets = [bind(x) for x in listens]
    config = uvicorn.Config(
        app,
        http=HeaderTimeoutProtocol,
        loop="uvloop",
        lifespan="on",
        log_config=None,
        log_level=log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=KEEPALIVE_S,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_graceful_shutdown=10,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    Server(config).run(sockets=sockets)
