"""`spoold serve` (the HTTP gateway, docs/http.md) and `spoold token add` (its tokens)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError, SpoolError
from .shared import EX_CONFIG, EX_UNAVAILABLE, EX_USAGE, cli, fail


@cli.command()
@click.argument("spools", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--listen",
    "listen",
    multiple=True,
    metavar="HOST:PORT|unix:/PATH",
    help="where to listen (repeatable; default 127.0.0.1:8631)",
)
@click.option(
    "--tokens",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="bearer tokens file (spoold token add); needed to listen beyond loopback",
)
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info"
)
def serve(
    spools: tuple[Path, ...],
    listen: tuple[str, ...],
    tokens: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    log_format: str,
    log_level: str,
) -> None:
    """The HTTP gateway to SPOOLS: submit, watch, download, cancel, retry (docs/http.md)."""
    from ..http.app import create_app
    from ..http.server import DEFAULT_LISTEN, ListenError, check_exposure, parse_listen, serve
    from ..ops.logs import setup_logging

    try:
        listens = [parse_listen(x) for x in listen or (DEFAULT_LISTEN,)]
        check_exposure(listens, tokens)
    except ListenError as exc:
        fail(str(exc), EX_USAGE)
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together", EX_USAGE)
    if tokens is not None and not tokens.is_file():
        fail(f"--tokens {tokens}: no such file (make it with `spoold token add`)", EX_USAGE)
    setup_logging(log_format, log_level)
    try:
        app = create_app([p.resolve() for p in spools], tokens)
    except ConfigError as exc:
        fail(f"invalid settings:\n{exc}", EX_CONFIG)
    except (SpoolError, ValueError) as exc:
        fail(str(exc), EX_UNAVAILABLE)
    tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    try:
        serve(app, listens, tls, log_level)
    except OSError as exc:
        fail(f"cannot listen: {exc.strerror or exc}", EX_UNAVAILABLE)


@cli.group()
def token() -> None:
    """Bearer tokens of `spoold serve` (a TOML file of names, hashes and roles)."""


@token.command("add")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("name")
@click.option("--admin", is_flag=True, help="may see and act on every job")
def token_add(file: Path, name: str, admin: bool) -> None:
    """Add a token for NAME to FILE; print it (once: only its hash is stored)."""
    from ..http.auth import add_token

    try:
        secret = add_token(file, name, "admin" if admin else "user")
    except ConfigError as exc:
        fail(str(exc), EX_USAGE)
    click.echo(secret)
