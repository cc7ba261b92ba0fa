"""A job folder's job.json read once (spool/jobjson.py) and what the intake makes of it:
what was read is used only while the file is the one read; anything else is read again
and reported as before (docs/protocol.md "Job ids")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spoold.daemon.intake import plan_job
from spoold.errors import JobError
from spoold.settings import SpoolSettings
from spoold.spool.jobjson import JOB_FILE_CAP, NO_JOB_FILE, read_job_json

DEFAULTS = SpoolSettings().for_route(None)


def job_folder(tmp_path: Path, job: dict[str, object] | None) -> Path:
    folder = tmp_path / "report.md"
    folder.mkdir(parents=True)
    (folder / "report.md").write_text("# Report\n")
    if job is not None:
        (folder / "job.json").write_text(json.dumps(job))
    return folder


def replace_job_json(folder: Path, job: dict[str, object]) -> None:
    """Another file in its place, as an editor saving it or a tool writes it."""
    (folder / ".job.json.new").write_text(json.dumps(job))
    os.rename(folder / ".job.json.new", folder / "job.json")


def test_a_job_json_is_read_with_its_stamp(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, {"main": "report.md", "priority": 70})
    known = read_job_json(folder)
    assert known is not None and known.data == {"main": "report.md", "priority": 70}
    assert known.is_current(folder)
    assert read_job_json(job_folder(tmp_path / "b", None)) is NO_JOB_FILE


def test_a_replaced_or_removed_job_json_is_not_current(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, {"metadata": {"v": "1"}})
    known = read_job_json(folder)
    assert known is not None
    replace_job_json(folder, {"metadata": {"v": "2"}})  # the same size, another file
    assert not known.is_current(folder)
    (folder / "job.json").unlink()
    assert not known.is_current(folder)
    assert NO_JOB_FILE.is_current(folder)
    (folder / "job.json").write_text("{}")
    assert not NO_JOB_FILE.is_current(folder)


def test_a_job_json_rewritten_in_place_is_not_current(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, {"targets": ["html"]})
    known = read_job_json(folder)
    assert known is not None
    (folder / "job.json").write_text(json.dumps({"targets": ["html", "pdf"]}))
    assert not known.is_current(folder)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b"\xff\xfe\xfa", b"{" + b" " * JOB_FILE_CAP + b"}"],
    ids=["not-json", "not-an-object", "not-text", "over-1-MiB"],
)
def test_an_unusable_job_json_is_left_to_the_intake(tmp_path: Path, content: bytes) -> None:
    folder = job_folder(tmp_path, None)
    (folder / "job.json").write_bytes(content)
    assert read_job_json(folder) is None
    with pytest.raises(JobError) as err:
        plan_job(folder, DEFAULTS, 10**8, None, None)
    assert err.value.info().code == "input_invalid" and "job.json" in err.value.info().message


def test_a_special_job_json_is_never_opened(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, None)
    os.mkfifo(folder / "job.json")  # opening it for reading would block
    assert read_job_json(folder) is None
    with pytest.raises(JobError) as err:
        plan_job(folder, DEFAULTS, 10**8, None, read_job_json(folder))
    assert "job.json is a FIFO" in err.value.info().message
    os.unlink(folder / "job.json")
    (tmp_path / "elsewhere.json").write_text('{"priority": 90}')
    os.symlink(tmp_path / "elsewhere.json", folder / "job.json")
    assert read_job_json(folder) is None


def test_the_intake_uses_what_was_read_while_it_is_current(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, {"main": "report.md", "targets": ["docx"], "priority": 5})
    plan = plan_job(folder, DEFAULTS, 10**8, None, read_job_json(folder))
    assert plan.targets == ("docx",) and plan.priority == 5 and plan.main == folder / "report.md"


def test_the_intake_reads_a_job_json_replaced_since_it_was_read(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, {"main": "report.md", "targets": ["docx"]})
    known = read_job_json(folder)
    replace_job_json(folder, {"main": "report.md", "targets": ["pdf!"]})
    with pytest.raises(JobError) as err:
        plan_job(folder, DEFAULTS, 10**8, None, known)
    assert "targets" in err.value.info().message
    replace_job_json(folder, {"main": "report.md", "targets": ["pdf"]})
    assert plan_job(folder, DEFAULTS, 10**8, None, known).targets == ("pdf",)
    (folder / "job.json").unlink()
    assert plan_job(folder, DEFAULTS, 10**8, None, known).targets == tuple(DEFAULTS.targets)


def test_a_job_json_added_since_the_folder_was_read_counts(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, None)
    known = read_job_json(folder)
    (folder / "job.json").write_text(json.dumps({"targets": ["docx"]}))
    assert plan_job(folder, DEFAULTS, 10**8, None, known).targets == ("docx",)


def test_a_missing_main_names_the_key(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, {"main": "other.md"})
    with pytest.raises(JobError) as err:
        plan_job(folder, DEFAULTS, 10**8, None, read_job_json(folder))
    assert err.value.info().message == "job.json: key 'main': 'other.md' is missing"
    replace_job_json(folder, {"main": "bad\u0000.md"})
    with pytest.raises(JobError) as err:
        plan_job(folder, DEFAULTS, 10**8, None, read_job_json(folder))
    assert "key 'main'" in err.value.info().message
