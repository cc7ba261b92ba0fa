"""The operations kit in contrib/: the Grafana dashboard and the Prometheus rules use
only metrics the daemon exports, and promtool accepts the rules."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from spoold.ops.metrics import Metrics

from .conftest import ROOT

DASHBOARD = ROOT / "contrib" / "grafana" / "spoold-dashboard.json"
RULES = ROOT / "contrib" / "prometheus" / "spoold-alerts.yml"
METRIC = re.compile(r"\bspoold_[a-z_]+\b")


def _exported_names() -> set[str]:
    """Every series name a daemon's /metrics shows once it has seen a job."""
    metrics = Metrics(["scans"])
    metrics.set_queue_depth("scans", "queued", 1)
    metrics.job_finished("scans", "failed", "timeout", 1.0)
    metrics.set_workers(1, 2)
    metrics.set_disk_free("scans", 10**9)
    metrics.scan_completed("scans", 1.0)
    metrics.set_oldest_queued_age("scans", 12.0)
    metrics.worker_restarted("scans", "timeout")
    metrics.conversion_finished("scans", "pdf", 0.5)
    text = metrics.render().decode()
    metrics.close()
    return {
        line.split("{")[0].split()[0] for line in text.splitlines() if line[:1] not in ("#", "")
    }


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_dashboard_and_rules_use_only_exported_metrics() -> None:
    exported = _exported_names()
    assert "spoold_jobs_total" in exported and "spoold_job_duration_seconds_bucket" in exported
    used_by_dashboard = {m for e in _dashboard_exprs() for m in METRIC.findall(e)}
    used_by_rules = set(METRIC.findall(RULES.read_text()))
    assert used_by_dashboard and used_by_rules
    unknown = (used_by_dashboard | used_by_rules) - exported
    assert not unknown, f"not exported by spoold: {sorted(unknown)}"


def test_dashboard_has_the_panels_operators_need() -> None:
    text = " ".join(_dashboard_exprs())
    for needed in (
        "spoold_queue_depth",
        "rate(spoold_jobs_total",
        'outcome="failed"',
        "spoold_job_duration_seconds_bucket",
        "spoold_start_time_seconds",
        "spoold_oldest_queued_age_seconds",
        "spoold_worker_restarts_total",
        "spoold_conversion_seconds_bucket",
    ):
        assert needed in text, needed


def test_the_stuck_queue_alert_uses_the_oldest_queued_age() -> None:
    rules = RULES.read_text()
    stuck = rules[rules.index("alert: SpooldQueueStuck") :].split("- alert:")[0]
    assert "spoold_oldest_queued_age_seconds" in stuck


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("SPOOLD_REQUIRE_PROMTOOL"):
            pytest.fail("promtool is required here (.ci/run installs the prometheus package)")
        pytest.skip("promtool not installed (apt-get install prometheus); CI runs this check")
    res = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, cwd=ROOT
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 5 rules found" in res.stdout


def test_rules_file_is_where_the_docs_say() -> None:
    ops = (ROOT / "docs" / "operations.md").read_text()
    for path in (DASHBOARD, RULES):
        assert str(path.relative_to(ROOT)) in ops
    assert Path(RULES).suffix == ".yml"
