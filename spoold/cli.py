"""The `spoold` command: a thin click layer over spoold.api and spoold.daemon.

Exit codes follow sysexits: 0 ok, 64 usage, 65 bad input (a failed job), 69 unavailable,
75 try later, 78 bad configuration.
"""

from __future__ import annotations

import signal
import sys

# `spoold run`: block the signals the daemon handles before the ~200 ms of imports, so
# that an early SIGHUP (a reload by a quick `systemctl reload`) stays pending instead of
# killing the process (rc 129); the Daemon unblocks them once its handlers exist.
DAEMON_SIGNALS = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT}
if sys.argv[1:2] == ["run"]:
    signal.pthread_sigmask(signal.SIG_BLOCK, DAEMON_SIGNALS)

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__, api
from .convert.page import parse_margins as _check_margins
from .errors import ConfigError, JobError, SpooldError, SpoolError
from .settings import check_page_size, check_theme

EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 0, 64, 65, 69, 75, 78

SpoolArg = click.argument("spool", type=click.Path(path_type=Path, file_okay=False))


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"spoold: {message}", err=True)
    sys.exit(code)


@contextmanager
def _exit_codes() -> Iterator[None]:
    """spoold's own errors as one line on stderr and their sysexits code."""
    try:
        yield
    except api.TryLater as exc:
        _fail(f"{exc}; try again later", EX_TEMPFAIL)
    except api.JobNotFound as exc:
        _fail(str(exc), EX_DATAERR)
    except ConfigError as exc:
        _fail(f"invalid settings:\n{exc}", EX_CONFIG)
    except SpoolError as exc:
        _fail(str(exc), EX_UNAVAILABLE)
    except SpooldError as exc:
        _fail(str(exc), EX_USAGE)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spoold")
def cli() -> None:
    """spoold: drop documents into a spool folder, get PDF, DOCX or HTML back."""


def main(argv: list[str] | None = None) -> None:
    """The console script: click's own usage errors exit 64 (EX_USAGE), not click's 2."""
    try:
        code = cli.main(args=argv, prog_name="spoold", standalone_mode=False)
    except click.UsageError as exc:  # bad flag or value, missing argument, no such command
        exc.show()
        sys.exit(EX_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else EX_OK)


@cli.command()
@SpoolArg
def init(spool: Path) -> None:
    """Create a spool folder with its layout."""
    try:
        api.init(spool)
    except (SpoolError, OSError) as exc:
        _fail(str(exc), EX_UNAVAILABLE)
    click.echo(f"spool ready: drop files into {spool / 'inbox'}")


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
    from .daemon import Daemon
    from .logs import setup_logging
    from .metrics import MetricsPortError
    from .settings import load_daemon_settings

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
            _fail("no spool given (name one, or list `spools` in the daemon file)", EX_USAGE)
        setup_logging(settings.log_format, settings.log_level)
        daemon = Daemon(roots, settings, spool_defaults)
    except ConfigError as exc:
        _fail(f"invalid settings:\n{exc}", EX_CONFIG)
    except SpoolError as exc:
        _fail(str(exc), EX_UNAVAILABLE)
    try:
        code = daemon.run()
    except MetricsPortError as exc:
        # Raised before any spool is touched: one line, no traceback, exit 69.
        _fail(str(exc), EX_UNAVAILABLE)
    sys.exit(code)


@cli.command()
@SpoolArg
@click.argument("document", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--to",
    "targets",
    multiple=True,
    type=click.Choice(["pdf", "docx", "html"]),
    help="target format (repeat for several)",
)
@click.option("--priority", type=click.IntRange(0, 100), default=None)
@click.option("--route", default=None, help="submit into inbox/ROUTE/")
@click.option(
    "--resources",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="a folder or resources.zip the document refers to",
)
@click.option(
    "--reference-doc",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="a DOCX whose styles and page setup to use",
)
@click.option("--wait", "wait_", is_flag=True, help="wait for the result and print its path")
@click.option("--timeout", type=float, default=None, help="with --wait: give up after N seconds")
def submit(
    spool: Path,
    document: Path,
    targets: tuple[str, ...],
    priority: int | None,
    route: str | None,
    resources: Path | None,
    reference_doc: Path | None,
    wait_: bool,
    timeout: float | None,
) -> None:
    """Stage DOCUMENT in tmp/ and rename it into the inbox."""
    with _exit_codes():
        sub = api.submit(
            spool,
            document,
            targets=list(targets) or None,
            priority=priority,
            resources=resources,
            reference_doc=reference_doc,
            route=route,
        )
    if not wait_:
        click.echo(f"submitted {sub.name}")
        return
    tty = sys.stderr.isatty()
    if tty:
        click.echo(f"submitted {sub.name}; waiting...", err=True)
    try:
        manifest = api.wait(sub, timeout=timeout)
    except TimeoutError as exc:
        _fail(str(exc), EX_TEMPFAIL)
    path = manifest["_path"]
    if manifest["status"] == "succeeded":
        for art in manifest.get("artifacts", []):
            click.echo(os.path.join(path, art["path"]))
        sys.exit(EX_OK)
    err = manifest.get("error") or {}
    click.echo(path)
    click.echo(
        f"spoold: job {manifest['status']}: {err.get('code')}: {err.get('message')}", err=True
    )
    sys.exit(EX_DATAERR)


@cli.command()
@SpoolArg
@click.option("--json", "as_json", is_flag=True)
@click.option("--watch", is_flag=True, help="a live view, refreshed every second")
def status(spool: Path, as_json: bool, watch: bool) -> None:
    """Queue figures, running jobs with their stage, recent failures."""
    with _exit_codes():
        data = api.status(spool)
    if as_json:
        _echo_json(data)
        return
    if watch:
        _watch(spool)
        return
    _print_status(data)


def _print_status(data: dict[str, Any]) -> None:
    click.echo(
        f"spool {data['spool']}: {data['queued']} queued, {len(data['running'])} running, "
        f"{data['done']} done, {data['failed']} failed, {data['free_disk_mb']} MB free"
    )
    for job in data["running"]:
        click.echo(
            f"  running {job['job_id']} {job['name']} attempt {job['attempt']} ({job['stage']})"
        )
    for f in data["recent_failures"]:
        click.echo(f"  {f['status']:7} {f['job_id']} {f['name']}: {f['code']}")
    if not data["daemons"]:
        click.echo("  no daemon is serving this spool")


def _watch(spool: Path) -> None:
    from rich.live import Live
    from rich.table import Table

    def render() -> Table:
        data = api.status(spool)
        table = Table(
            title=f"{spool}: {data['queued']} queued, {data['done']} done, "
            f"{data['failed']} failed, {data['free_disk_mb']} MB free"
        )
        for col in ("job", "name", "attempt", "stage", "started"):
            table.add_column(col)
        for job in data["running"]:
            table.add_row(
                job["job_id"],
                job["name"],
                str(job["attempt"]),
                job["stage"],
                str(job["started_at"] or ""),
            )
        for f in data["recent_failures"]:
            table.add_row(f["job_id"], f["name"], str(f["attempt"]), f"failed: {f['code']}", "")
        return table

    with Live(render(), refresh_per_second=2) as live:
        try:
            while True:
                time.sleep(1)
                live.update(render())
        except KeyboardInterrupt:
            return


@cli.command()
@SpoolArg
@click.argument("job")
def show(spool: Path, job: str) -> None:
    """A job by id or name, in any state: its record, and its manifest once finished."""
    with _exit_codes():
        _echo_json(api.show(spool, job))


@cli.command("list")
@SpoolArg
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(list(api.LIST_STATES)),
    help="repeatable; default: done and failed",
)
@click.option("--name", "pattern", default=None, help="glob on the name the job was dropped with")
@click.option("--code", default=None, help="only failures with this error code")
@click.option("--max-age", type=float, default=None, help="only jobs newer than N hours")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(
    spool: Path,
    states: tuple[str, ...],
    pattern: str | None,
    code: str | None,
    max_age: float | None,
    as_json: bool,
) -> None:
    """Jobs newest first: a table on a terminal, tab-separated otherwise."""
    with _exit_codes():
        jobs = api.list_jobs(
            spool,
            states or ("done", "failed"),
            pattern,
            code,
            None if max_age is None else max_age * 3600,
        )
    if as_json:
        _echo_json(jobs)
        return
    now = time.time()
    rows = [
        (
            j["status"],
            j["job_id"] or "-",
            j["name"],
            j["code"] or "",
            _age(now - _unix(j["created_at"])) if j["created_at"] else "",
        )
        for j in jobs
    ]
    if not sys.stdout.isatty():
        for row in rows:
            click.echo("\t".join(row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("STATUS", "JOB ID", "NAME", "CODE", "AGE"):
        table.add_column(col, no_wrap=col != "NAME")
    for row in rows:
        style = {"failed": "red", "cancelled": "red", "running": "cyan", "queued": "yellow"}
        table.add_row(*row, style=style.get(row[0]))
    Console().print(table)
    click.echo(f"{len(rows)} job(s)")


def _unix(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@cli.command()
@SpoolArg
@click.option("--json", "as_json", is_flag=True)
def purge(spool: Path, as_json: bool) -> None:
    """Remove finished jobs older than keep_done_days / keep_failed_days now.

    The daemon does this on its own every hour; this is for cron or a full disk.
    """
    with _exit_codes():
        result = api.purge(spool)
    if as_json:
        _echo_json(dataclasses.asdict(result))
    else:
        click.echo(
            f"removed {result.removed_done} done and {result.removed_failed} failed job "
            f"folder(s), {result.freed_bytes / 2**20:.1f} MiB, {result.removed_links} out/ link(s)"
        )
        for err in result.errors:
            click.echo(f"could not remove: {err}", err=True)
    if result.errors:
        sys.exit(EX_TEMPFAIL)


@cli.command("check-events")
@SpoolArg
@click.option("--strict", is_flag=True, help="also fail on gaps (a rotated-away start)")
def check_events_cmd(spool: Path, strict: bool) -> None:
    """Replay .spoold/events.ndjson and check every job's path through the state machine."""
    from .checker import check_path

    try:
        report = check_path(spool, strict=strict)
    except (OSError, ValueError) as exc:
        _fail(str(exc), EX_UNAVAILABLE)
    click.echo(report.format())
    if not report.ok:
        sys.exit(EX_DATAERR)


@cli.command()
@SpoolArg
@click.option("--follow", "-f", is_flag=True, help="keep printing new events")
def events(spool: Path, follow: bool) -> None:
    """Print the events log (NDJSON)."""
    from .events import follow as follow_events
    from .events import read_events
    from .protocol import SpoolPaths

    path = SpoolPaths(spool).events
    for ev in read_events(path):
        click.echo(json.dumps(ev, ensure_ascii=False))
    if follow:
        try:
            for ev in follow_events(path):
                click.echo(json.dumps(ev, ensure_ascii=False))
        except KeyboardInterrupt:
            return


@cli.command()
@SpoolArg
@click.argument("job")
@click.option("--hard", is_flag=True, help="kill now instead of after the current target")
def cancel(spool: Path, job: str, hard: bool) -> None:
    """Ask the daemon to cancel JOB (writes JOB.cancel into the inbox)."""
    with _exit_codes():
        marker = api.cancel(spool, job, hard)
    click.echo(f"cancel requested: {marker}")


@cli.command()
@SpoolArg
@click.argument("job")
def retry(spool: Path, job: str) -> None:
    """Requeue a failed or cancelled job as a new attempt."""
    with _exit_codes():
        job_id = api.retry(spool, job)
    click.echo(f"requeued {job_id}")


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
    from .convert import (
        ConversionContext,
        ConvertOptions,
        get_converter,
        load_converters,
        pin_source_date_epoch,
    )
    from .convert.base import source_type_of
    from .convert.fetcher import parse_prefix
    from .convert.parts.route import convert_foreground

    for prefix in allow_fetch:
        try:
            parse_prefix(prefix)
        except ValueError as exc:
            _fail(f"--allow-fetch {prefix!r}: {exc}", EX_USAGE)
    pin_source_date_epoch()
    load_converters()
    target = target or output.suffix.lstrip(".").lower()
    source = source_type_of(input_path)
    if source is None:
        _fail(f"{input_path.name}: not a Markdown, HTML or PDF file", EX_DATAERR)
    conv = get_converter(str(source), target)
    if conv is None:
        _fail(f"cannot convert {source} to {target!r}", EX_USAGE)
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
        _fail(f"{exc.code.value}: {exc.message}\nhint: {exc.hint}", EX_DATAERR)
    finally:
        if tmp.exists():
            tmp.unlink()
    for w in ctx.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(str(output))


@cli.command()
@SpoolArg
def doctor(spool: Path) -> None:
    """Check the spool and this machine: one line per check, non-zero on failure."""
    from .doctor import report, run_checks

    checks = run_checks(spool)
    click.echo(report(checks))
    if any(c.level == "fail" for c in checks):
        sys.exit(EX_UNAVAILABLE)
