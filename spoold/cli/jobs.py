"""`spoold submit`, `cancel` and `retry`: put a job into a spool, or ask about one."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .. import api
from .shared import EX_DATAERR, EX_OK, EX_TEMPFAIL, SpoolArg, cli, exit_codes, fail


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
@click.option(
    "--after",
    multiple=True,
    help="run after this job (id or name) succeeded; repeat for several (job.json `after`)",
)
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
    after: tuple[str, ...],
    route: str | None,
    resources: Path | None,
    reference_doc: Path | None,
    wait_: bool,
    timeout: float | None,
) -> None:
    """Stage DOCUMENT in tmp/ and rename it into the inbox."""
    with exit_codes():
        sub = api.submit(
            spool,
            document,
            targets=list(targets) or None,
            priority=priority,
            resources=resources,
            reference_doc=reference_doc,
            route=route,
            options={"after": list(after)} if after else None,
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
        fail(str(exc), EX_TEMPFAIL)
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
@click.argument("job")
@click.option("--hard", is_flag=True, help="kill now instead of after the current target")
def cancel(spool: Path, job: str, hard: bool) -> None:
    """Ask the daemon to cancel JOB (writes JOB.cancel into the inbox)."""
    with exit_codes():
        marker = api.cancel(spool, job, hard)
    click.echo(f"cancel requested: {marker}")


@cli.command()
@SpoolArg
@click.argument("job")
def retry(spool: Path, job: str) -> None:
    """Requeue a failed or cancelled job as a new attempt."""
    with exit_codes():
        job_id = api.retry(spool, job)
    click.echo(f"requeued {job_id}")
