"""`spoold status`, `show`, `list` and `events`: what is in a spool, read only."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from .. import api
from ..spool.clock import parse_iso, wall_time
from ..spool.waiting import INCOMPLETE
from .shared import SpoolArg, cli, echo_json, exit_codes


@cli.command()
@SpoolArg
@click.option("--json", "as_json", is_flag=True)
@click.option("--watch", is_flag=True, help="a live view, refreshed every second")
def status(spool: Path, as_json: bool, watch: bool) -> None:
    """Queue figures, running jobs with their stage, recent failures."""
    with exit_codes():
        data = api.status(spool)
    if as_json:
        echo_json(data)
        return
    if watch:
        _watch(spool)
        return
    _print_status(data)


def _print_status(data: dict[str, Any]) -> None:
    click.echo(
        f"spool {data['spool']}: {data['queued']} queued, {data.get('waiting', 0)} waiting, "
        f"{len(data['running'])} running, "
        f"{data['done']} done, {data['failed']} failed, {data['free_disk_mb']} MB free"
    )
    for job in data["running"]:
        click.echo(
            f"  running {job['job_id']} {job['name']} attempt {job['attempt']} ({job['stage']})"
        )
    now = wall_time()
    for job in data["waiting_jobs"]:
        click.echo(f"  waiting {job['folder']}: {waiting_note(job['waiting'], now)}")
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
            title=f"{spool}: {data['queued']} queued, {data['waiting']} waiting, "
            f"{data['done']} done, {data['failed']} failed, {data['free_disk_mb']} MB free"
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
        for w in data["waiting_jobs"]:
            table.add_row("-", w["name"], "0", f"waiting: {w['waiting']['reason']}", "")
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
    with exit_codes():
        echo_json(api.show(spool, job))


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
    with exit_codes():
        jobs = api.list_jobs(
            spool,
            states or ("done", "failed"),
            pattern,
            code,
            None if max_age is None else max_age * 3600,
        )
    if as_json:
        echo_json(jobs)
        return
    now = wall_time()
    rows = [
        (
            "waiting" if j.get("waiting") else j["status"],
            j["job_id"] or "-",
            j["name"],
            j["code"] or _waits_for(j.get("waiting")),
            _age(now - _unix(j["created_at"])) if j["created_at"] else "",
            _note(j.get("waiting"), now),
        )
        for j in jobs
    ]
    if not sys.stdout.isatty():
        for row in rows:
            # A sixth column only where there is a note: five-column readers stay right.
            click.echo("\t".join(row if row[5] else row[:5]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    notes = any(row[5] for row in rows)
    for col in ("STATUS", "JOB ID", "NAME", "CODE", "AGE", "NOTE")[: 6 if notes else 5]:
        table.add_column(col, no_wrap=col not in ("NAME", "NOTE"))
    for row in rows:
        style = {
            "failed": "red",
            "cancelled": "red",
            "running": "cyan",
            "queued": "yellow",
            "waiting": "yellow",
        }
        table.add_row(*row[: 6 if notes else 5], style=style.get(row[0]))
    Console().print(table)
    click.echo(f"{len(rows)} job(s)")


def _waits_for(waiting: dict[str, Any] | None) -> str:
    """What a waiting job waits for, in the CODE column: "after report.md"."""
    refs = (waiting or {}).get("after") or []
    return "after " + ", ".join(str(r["job"]) for r in refs) if refs else ""


def _note(waiting: dict[str, Any] | None, now: float) -> str:
    """The NOTE column: an entry that fails its format check, in words (an `after` wait
    is said in the CODE column)."""
    if not waiting or waiting.get("reason") != INCOMPLETE:
        return ""
    return waiting_note(waiting, now)


def _unix(stamp: str) -> float:
    return parse_iso(stamp)


def waiting_note(waiting: dict[str, Any], now: float) -> str:
    """A job record's `waiting` in words: why, for how long, and what happens next."""
    since, until = waiting.get("since"), waiting.get("until")
    if waiting.get("reason") == "after":
        return _waits_for(waiting) + (f" (for {_age(now - _unix(since))})" if since else "")
    text = str(waiting.get("message") or waiting.get("reason"))
    if since:
        text += f" (unchanged for {_age(now - _unix(since))}"
        if until:
            left = _unix(until) - now
            when = f"in {_age(left)}" if left >= 1 else "any moment now"
            text += f"; failed {when}"
            if waiting.get("reason") == INCOMPLETE:
                text += " unless it changes"
        text += ")"
    return text


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@cli.command()
@SpoolArg
@click.option("--follow", "-f", is_flag=True, help="keep printing new events")
def events(spool: Path, follow: bool) -> None:
    """Print the events log (NDJSON): every daemon's file, merged in time order."""
    from ..spool.eventfiles import EventsCursor, read_events
    from ..spool.eventfiles import follow as follow_events
    from ..spool.protocol import SpoolPaths

    path = SpoolPaths(spool).events
    cursor = EventsCursor()  # where each file ended: --follow goes on from there
    for ev in read_events(path, cursor):
        click.echo(json.dumps(ev, ensure_ascii=False))
    if follow:
        try:
            for ev in follow_events(path, cursor=cursor):
                click.echo(json.dumps(ev, ensure_ascii=False))
        except KeyboardInterrupt:
            return
