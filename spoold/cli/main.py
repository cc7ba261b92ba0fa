"""The console script: every command registered on the group, click's errors mapped to
spoold's exit codes."""

from __future__ import annotations

import sys

import click

# Imported for their commands, which register themselves on the group.
from . import admin, jobs, run, serve, views
from .shared import EX_INTERRUPTED, EX_OK, EX_USAGE, cli

__all__ = ["admin", "cli", "jobs", "main", "run", "serve", "views"]


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
        sys.exit(EX_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else EX_OK)
