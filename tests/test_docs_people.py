"""docs/people.md is read by people at a shared folder: its commands work as written."""

from __future__ import annotations

import re
import shlex

import click

from spoold.cli import cli

from .conftest import ROOT

PEOPLE = (ROOT / "docs" / "people.md").read_text(encoding="utf-8")
# A word such as JOB or SPOOL: a synopsis placeholder, not something a person can type.
PLACEHOLDER = re.compile(r"\[?[A-Z][A-Z_]+\]?")


def commands(text: str) -> list[list[str]]:
    """Every `spoold ...` in inline code and every spoold line of the sh examples."""
    found = re.findall(r"`(spoold [^`]+)`", text)
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        found += [line for line in block.splitlines() if line.startswith("spoold ")]
    return [shlex.split(command, comments=True) for command in found]


def test_the_page_shows_commands() -> None:
    assert len([argv for argv in commands(PEOPLE) if len(argv) > 2]) >= 5


def test_every_command_on_the_people_page_runs_as_written() -> None:
    for argv in commands(PEOPLE):
        name, args = argv[1], argv[2:]
        command = cli.get_command(click.Context(cli), name)
        assert command is not None, f"no command {name!r}: {shlex.join(argv)}"
        if not args:
            continue  # the command named in prose, like `spoold list`
        assert not [a for a in args if PLACEHOLDER.fullmatch(a)], shlex.join(argv)
        # The real parser: a missing or extra argument is a click.UsageError here.
        command.make_context(name, args)
