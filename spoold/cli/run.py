"""`spoold run` and `spoold convert`: the work done in this process, by the daemon on
spools or once on one document."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from ..errors import ConfigError, JobError, SpoolError
from ..settings import check_page_size, check_theme
from ..spool.pages import parse_margins as _check_margins
from .shared import EX_CONFIG, EX_DATAERR, EX_UNAVAILABLE, EX_USAGE, cli, fail


@cli.command()
@click.argument("spools", nargs=-1, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="daemon settings file (default /etc/spoold/spoold.toml when present)",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="worker processes (default: CPU count)",
)
@click.option("--host-id", default=None, help="this host's identity in leases (default: hostname)")
@click.option("--detect", type=click.Choice(["auto", "inotify", "poll"]), default=None)
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="serve metrics on 127.0.0.1:PORT",
)
def run(
    spools: tuple[Path, ...],
    config: Path | None,
    workers: int | None,
    host_id: str | None,
    detect: str | None,
    log_format: str | None,
    metrics_port: int | None,
) -> None:
    """Run the daemon on one or more spools (foreground)."""
    from ..daemon import Daemon
    from ..ops.logs import setup_logging
    from ..ops.metrics import MetricsPortError
    from ..settings import load_daemon_settings

    if config is None and Path("/etc/spoold/spoold.toml").exists():
        config = Path("/etc/spoold/spoold.toml")
    flags = {
        "workers": workers,
        "host_id": host_id,
        "detect": detect,
        "log_format": log_format,
        "metrics_port": metrics_port,
    }
    try:
        settings, spool_defaults = load_daemon_settings(config, flags)
        roots = list(spools) or list(settings.spools)
        if not roots:
            fail("no spool given (name one, or list `spools` in the daemon file)", EX_USAGE)
        setup_logging(settings.log_format, settings.log_level)
        daemon = Daemon(roots, settings, spool_defaults)
    except ConfigError as exc:
        fail(f"invalid settings:\n{exc}", EX_CONFIG)
    except SpoolError as exc:
        fail(str(exc), EX_UNAVAILABLE)
    try:
        code = daemon.run()
    except MetricsPortError as exc:
        # Raised before any spool is touched: one line, no traceback, exit 69.
        fail(str(exc), EX_UNAVAILABLE)
    sys.exit(code)


def _checked_by(
    check: Callable[[str], object],
) -> Callable[[click.Context, click.Parameter, str], str]:
    """A click callback running one of the settings' checks: the same allowed values as
    spool.toml, and click names the flag (exit 64)."""

    def callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
        try:
            check(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        return value

    return callback


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, exists=True))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option(
    "--to",
    "target",
    type=click.Choice(["pdf", "docx", "html"]),
    default=None,
    help="target format (default: from the output's suffix)",
)
@click.option("--theme", default="default", callback=_checked_by(check_theme))
@click.option("--page-size", default="A4", callback=_checked_by(check_page_size))
@click.option(
    "--margins",
    default="theme",
    callback=_checked_by(_check_margins),
    help="PDF page margins, e.g. '20mm' or '2cm 1.5cm'",
)
@click.option("--reference-doc", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--allow-fetch",
    multiple=True,
    metavar="URL_PREFIX",
    help="an http(s) prefix the document may fetch from (repeatable; default: no network)",
)
def convert(
    input_path: Path,
    output: Path,
    target: str | None,
    theme: str,
    page_size: str,
    margins: str,
    reference_doc: Path | None,
    allow_fetch: tuple[str, ...],
) -> None:
    """Convert one document in the foreground, without a spool.

    The sandbox root is the input's folder: nothing above it is read.
    """
    from ..convert import (
        ConversionContext,
        ConvertOptions,
        get_converter,
        load_converters,
        pin_source_date_epoch,
    )
    from ..convert.base import source_type_of
    from ..convert.parts.route import convert_foreground

    _check_fetch_prefixes(allow_fetch)
    pin_source_date_epoch()
    load_converters()
    target = target or output.suffix.lstrip(".").lower()
    source = source_type_of(input_path)
    if source is None:
        fail(f"{input_path.name}: not a Markdown, HTML or PDF file", EX_DATAERR)
    conv = get_converter(str(source), target)
    if conv is None:
        fail(f"cannot convert {source} to {target!r}", EX_USAGE)
        return
    ctx = ConversionContext(
        job_root=input_path.resolve().parent,
        options=ConvertOptions(
            theme=theme,
            page_size=page_size,
            margins=margins,
            reference_docx=reference_doc,
            allow_fetch=allow_fetch,
        ),
    )
    tmp = output.with_name(f".{output.name}.part")
    try:
        if target != "pdf" or convert_foreground(str(source), input_path, tmp, ctx) is None:
            conv.convert(input_path, tmp, ctx)
        os.replace(tmp, output)
    except JobError as exc:
        fail(f"{exc.code.value}: {exc.message}\nhint: {exc.hint}", EX_DATAERR)
    finally:
        if tmp.exists():
            tmp.unlink()
    for w in ctx.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(str(output))


def _check_fetch_prefixes(prefixes: tuple[str, ...]) -> None:
    """Exit 64 naming the first --allow-fetch value that is not an http(s) prefix."""
    from ..spool.allow_fetch import parse_prefix

    for prefix in prefixes:
        try:
            parse_prefix(prefix)
        except ValueError as exc:
            fail(f"--allow-fetch {prefix!r}: {exc}", EX_USAGE)
