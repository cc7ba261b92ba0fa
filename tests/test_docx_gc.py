"""A DOCX conversion pauses Python's cyclic collector and always restores it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from spoold.convert import ConversionContext, get_converter, load_converters
from spoold.errors import JobError

load_converters()


def _convert(source: Path, src_type: str) -> dict[str, bool]:
    """Convert; return whether the collector was on at each stage the converter reported."""
    converter = get_converter(src_type, "docx")
    assert converter is not None
    stages: dict[str, bool] = {}
    ctx = ConversionContext(
        job_root=source.parent, on_stage=lambda name: stages.setdefault(name, gc.isenabled())
    )
    converter.convert(source, source.with_suffix(".docx"), ctx)
    return stages


@pytest.fixture
def collector() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector")
@pytest.mark.parametrize("enabled", [True, False])
def test_collector_is_as_before_after_a_conversion(tmp_path: Path, enabled: bool) -> None:
    source = tmp_path / "doc.md"
    source.write_text("# Title\n\nText with a [link](https://example.com).\n", "utf-8")
    if enabled:
        gc.enable()
    else:
        gc.disable()
    stages = _convert(source, "md")
    assert stages["writing"] is False  # the walk ran without collections
    assert gc.isenabled() is enabled


@pytest.mark.usefixtures("collector")
def test_collector_is_back_after_a_failed_conversion(tmp_path: Path) -> None:
    source = tmp_path / "deep.html"
    source.write_text("<html><body>" + "<div>" * 300 + "x" + "</div>" * 300, "utf-8")
    gc.enable()
    with pytest.raises(JobError):
        _convert(source, "html")
    assert gc.isenabled()
