"""Docs that must not drift from the code."""

from __future__ import annotations

import re

import pytest

from spoold.errors import ErrorCode
from spoold.settings import DaemonSettings, JobFile, RouteSettings, SpoolSettings

from .conftest import ROOT

CONFIG_DOC = (ROOT / "docs" / "configuration.md").read_text()


@pytest.mark.parametrize("model", [SpoolSettings, RouteSettings, DaemonSettings, JobFile])
def test_every_setting_is_documented(model: type) -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", CONFIG_DOC, flags=re.MULTILINE))
    missing = [k for k in model.model_fields if k not in documented and k != "routes"]
    assert not missing, f"undocumented settings in docs/configuration.md: {missing}"


def test_every_error_code_is_documented() -> None:
    text = (ROOT / "docs" / "manifest.md").read_text()
    missing = [c.value for c in ErrorCode if f"`{c.value}`" not in text]
    assert not missing, f"error codes missing from docs/manifest.md: {missing}"


README = (ROOT / "README.md").read_text()


def _layout_table() -> str:
    start = README.index("## Layout of the code")
    return README[start : README.index("\n\n", README.index("|---|", start))]


def test_readme_layout_names_every_module() -> None:
    table = _layout_table()
    spoold = ROOT / "spoold"
    modules = [p.name for p in spoold.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    modules += [f"{p.name}/" for p in spoold.iterdir() if (p / "__init__.py").exists()]
    for package in ("spool", "worker", "daemon", "daemon/inbox", "share", "ops", "tools", "cli"):
        modules += [p.name for p in (spoold / package).glob("*.py") if p.name != "__init__.py"]
    for package in ("daemon", "convert"):
        modules += [
            f"{p.name}/" for p in (spoold / package).iterdir() if (p / "__init__.py").exists()
        ]
    modules += [p.name for p in (spoold / "convert").glob("*.py") if p.name != "__init__.py"]
    missing = sorted({m for m in modules if m not in table})
    assert not missing, f"modules missing from README's 'Layout of the code': {missing}"


def test_every_event_is_in_the_readme_and_the_protocol() -> None:
    from spoold.spool.events import EVENT_NAMES

    protocol = (ROOT / "docs" / "protocol.md").read_text()
    for doc, text in (("README.md", README), ("docs/protocol.md", protocol)):
        named = set(re.findall(r"`([a-z]+\.[a-z_]+)`", text))
        others = {n for n in EVENT_NAMES if not n.startswith("job.")}
        missing = sorted((others if doc == "README.md" else EVENT_NAMES) - named)
        assert not missing, f"events missing from {doc}: {missing}"


def test_the_readme_command_list_is_the_cli() -> None:
    from spoold.cli import cli

    listed = set(re.findall(r"^spoold ([a-z-]+) ", README, flags=re.MULTILINE))
    assert listed == set(cli.commands), f"README lists {sorted(listed)}"
