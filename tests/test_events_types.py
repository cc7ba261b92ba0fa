"""The typed events keep a tool from emitting an event without what others match on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

SNIPPET = """\
from spoold.spool.events import DaemonStarted, JobClaimed, JobDetected

JobDetected(job_id="j", name="a.md", route=None)
JobClaimed(job_id="j", name="a.md")
DaemonStarted(workers=2, detect="poll", version="1")
JobClaimed(job_id="j", attempt=1, name="a.md")
"""


def test_an_event_missing_a_required_field_is_a_type_error(tmp_path: Path) -> None:
    snippet = tmp_path / "emit.py"
    snippet.write_text(SNIPPET)
    cmd = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    errors = [line for line in res.stdout.splitlines() if ": error:" in line]
    assert [e.split(": error: ")[1] for e in errors] == [
        'Missing named argument "ino" for "JobDetected"  [call-arg]',
        'Missing named argument "attempt" for "JobClaimed"  [call-arg]',
        'Missing named argument "pid" for "DaemonStarted"  [call-arg]',
    ], res.stdout
