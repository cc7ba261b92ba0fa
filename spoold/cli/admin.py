"""`spoold init`, `doctor`, `purge` and `check-events`: setting up, checking and
tidying a spool."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from .. import api
from ..errors import SpoolError
from .shared import (
    EX_DATAERR,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    SpoolArg,
    cli,
    echo_json,
    exit_codes,
    fail,
)


@cli.command()
@SpoolArg
def init(spool: Path) -> None:
    """Create a spool folder with its layout."""
    try:
        api.init(spool)
    except (SpoolError, OSError) as exc:
        fail(str(exc), EX_UNAVAILABLE)
    click.echo(f"spool ready: drop files into {spool / 'inbox'}")


@cli.command()
@SpoolArg
def doctor(spool: Path) -> None:
    """Check the spool and this machine: one line per check, non-zero on failure."""
    from ..ops.doctor import report, run_checks

    checks = run_checks(spool)
    click.echo(report(checks))
    if any(c.level == "fail" for c in checks):
        sys.exit(EX_UNAVAILABLE)


@cli.command()
@SpoolArg
@click.option("--json", "as_json", is_flag=True)
def purge(spool: Path, as_json: bool) -> None:
    """Remove finished jobs older than keep_done_days / keep_failed_days now.

    The daemon does this on its own every hour; this is for cron or a full disk.
    """
    with exit_codes():
        result = api.purge(spool)
    if as_json:
        echo_json(dataclasses.asdict(result))
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
@click.option("--strict", is_flag=True, help="also fail on gaps no events.gap record declares")
def check_events_cmd(spool: Path, strict: bool) -> None:
    """Replay the events log and check every job's path through the state machine."""
    from ..tools.checker import check_path

    try:
        report = check_path(spool, strict=strict)
    except (OSError, ValueError) as exc:
        fail(str(exc), EX_UNAVAILABLE)
    click.echo(report.format())
    if not report.ok:
        sys.exit(EX_DATAERR)
