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
        style = {
            "failed": "red",
            "cancelled": "red",
            "running": "cyan",
            "queued": "yellow",
            "waiting": "yellow",
        }
        table.add_row(*row, style=style.get(row[0]))
    Console().print(table)
    click.echo(f"{len(rows)} job(s)")


def _waits_for(waiting: dict[str, Any] | None) -> str:
    """What a waiting job waits for, in the CODE column: "after report.md"."""
    refs = (waiting or {}).get("after") or []
    return "after " + ", ".join(str(r["job"]) for r in refs) if refs else ""


def _unix(stamp: str) -> float:
    return parse_iso(stamp)


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
    """Print the events log (NDJSON)."""
    from ..spool.events import follow as follow_events
    from ..spool.events import read_events
    from ..spool.protocol import SpoolPaths

    path = SpoolPaths(spool).events
    for ev in read_events(path):
        click.echo(json.dumps(ev, ensure_ascii=False))
    if follow:
        try:
            for ev in follow_events(path):
                click.echo(json.dumps(ev, ensure_ascii=False))
        except KeyboardInterrupt:
            return
