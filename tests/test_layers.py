"""The package tree is the architecture: the light faces of spoold never load the
conversion stack (lxml, WeasyPrint and the rest), and the import contracts hold.

`spoold status` on a server and a tool that imports spoold.api should start in a
fraction of a second; before the layers were drawn they loaded lxml and WeasyPrint's
modules to read a few dataclasses of the worker.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spoold.spool.protocol import init_spool

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("lxml", "weasyprint", "pikepdf", "pypdf", "pdfminer", "docx", "markdown_it")


def heavy_modules(code: str) -> list[str]:
    """The heavy top-level packages a fresh interpreter has loaded after `code`."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    loaded: list[str] = json.loads(out.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "module", ["spoold.api", "spoold.daemon", "spoold.tools.jobview", "spoold.worker.spec"]
)
def test_the_light_faces_do_not_load_the_conversion_stack(module: str) -> None:
    assert heavy_modules(f"import {module}") == []


def test_spoold_status_does_not_load_the_conversion_stack(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    init_spool(spool)
    code = (
        "import sys\nfrom spoold.cli import main\n"
        f"sys.argv = ['spoold', 'status', {str(spool)!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
    )
    assert heavy_modules(code) == []


def test_the_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is a dev dependency (requirements-dev.lock)"
    done = subprocess.run([lint, "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:]
