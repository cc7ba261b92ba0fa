"""Same input, same bytes, also on a host without libharfbuzz-subset (fontTools fallback)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from fontTools.misc import timeTools
from weasyprint.pdf import fonts

from spoold.cli import cli

DOC = "# Same bytes\n\nA paragraph in the *theme's* fonts, **bold** and `code` too.\n"


def _convert(src: Path, out: Path) -> str:
    res = CliRunner().invoke(cli, ["convert", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    return hashlib.sha256(out.read_bytes()).hexdigest()


def test_fonttools_subsetting_gives_the_same_bytes_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The seam: WeasyPrint subsets with fontTools when it found no HarfBuzz-Subset.
    monkeypatch.setattr(fonts, "harfbuzz_subset", None)
    fallback_calls = []
    real_subset = fonts.Font._fonttools_subset

    def counting_subset(self: Any, *args: Any) -> None:
        fallback_calls.append(self.family)
        real_subset(self, *args)

    monkeypatch.setattr(fonts.Font, "_fonttools_subset", counting_subset)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")  # recorded, so teardown removes it again
    monkeypatch.delenv("SOURCE_DATE_EPOCH")  # a host that does not set it
    src = tmp_path / "same.md"
    src.write_text(DOC)
    first = _convert(src, tmp_path / "first.pdf")
    an_hour_later = time.time() + 3600  # fontTools' clock, not a sleep
    monkeypatch.setattr(timeTools, "time", SimpleNamespace(time=lambda: an_hour_later))
    second = _convert(src, tmp_path / "second.pdf")
    assert fallback_calls, "the fontTools fallback was not used"
    assert first == second
