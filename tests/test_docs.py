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
