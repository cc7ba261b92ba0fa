"""What every `spoold` command shares: the click group, exit codes, the SPOOL argument,
and spoold's errors turned into one line on stderr and a sysexits code."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from .. import __version__, api
from ..errors import ConfigError, SpooldError, SpoolError

EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 0, 64, 65, 69, 75, 78
EX_INTERRUPTED = 130  # Ctrl-C at a prompt (click.Abort), as a shell reports SIGINT

SpoolArg = click.argument("spool", type=click.Path(path_type=Path, file_okay=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spoold")
def cli() -> None:
    """spoold: drop documents into a spool folder, get PDF, DOCX or HTML back."""


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"spoold: {message}", err=True)
    sys.exit(code)


@contextmanager
def exit_codes() -> Iterator[None]:
    """spoold's own errors as one line on stderr and their sysexits code."""
    try:
        yield
    except api.TryLater as exc:
        fail(f"{exc}; try again later", EX_TEMPFAIL)
    except api.JobNotFound as exc:
        fail(str(exc), EX_DATAERR)
    except ConfigError as exc:
        fail(f"invalid settings:\n{exc}", EX_CONFIG)
    except SpoolError as exc:
        fail(str(exc), EX_UNAVAILABLE)
    except SpooldError as exc:
        fail(str(exc), EX_USAGE)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
