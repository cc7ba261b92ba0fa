"""spoold.ops.metrics: what render() says, the atomic textfile, the loopback endpoint."""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from spoold import __version__
from spoold.ops.metrics import DURATION_BUCKETS, Metrics, loopback_host


def samples(text: str | bytes) -> list[Sample]:
    if isinstance(text, bytes):
        text = text.decode()
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def value(text: str | bytes, name: str, **labels: str) -> float:
    found = [s.value for s in samples(text) if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics()
    try:
        yield m
    finally:
        m.close()


def test_render_reports_what_was_set(metrics: Metrics) -> None:
    metrics.set_queue_depth("scans", "queued", 7)
    metrics.set_queue_depth("scans", "running", 2)
    metrics.set_queue_depth("invoices", "queued", 0)
    metrics.job_finished("scans", "succeeded", None, 0.3)
    metrics.job_finished("scans", "succeeded", None, 42.0)
    metrics.job_finished("scans", "failed", "bad_input", 0.02)
    metrics.set_workers(3, 4)
    metrics.set_disk_free("scans", 123_456_789)
    metrics.scan_completed("scans", 1_700_000_000.5)
    metrics.set_oldest_queued_age("scans", 90.5)
    metrics.worker_restarted("scans", "timeout")
    metrics.worker_restarted("scans", "timeout")
    metrics.conversion_finished("scans", "pdf", 1.5)

    text = metrics.render()
    assert value(text, "spoold_queue_depth", spool="scans", state="queued") == 7
    assert value(text, "spoold_queue_depth", spool="scans", state="running") == 2
    assert value(text, "spoold_queue_depth", spool="invoices", state="queued") == 0
    assert value(text, "spoold_jobs_total", spool="scans", outcome="succeeded", error_code="") == 2
    assert (
        value(text, "spoold_jobs_total", spool="scans", outcome="failed", error_code="bad_input")
        == 1
    )
    ok = {"spool": "scans", "outcome": "succeeded"}
    assert value(text, "spoold_job_duration_seconds_count", **ok) == 2
    assert value(text, "spoold_job_duration_seconds_sum", **ok) == pytest.approx(42.3)
    assert value(text, "spoold_job_duration_seconds_bucket", **ok, le="0.5") == 1
    assert value(text, "spoold_job_duration_seconds_bucket", **ok, le="60.0") == 2
    spools = {"spools": "invoices,scans"}
    assert value(text, "spoold_workers_busy", **spools) == 3
    assert value(text, "spoold_workers_configured", **spools) == 4
    assert value(text, "spoold_worker_utilization_ratio", **spools) == 0.75
    assert value(text, "spoold_disk_free_bytes", spool="scans") == 123_456_789
    assert value(text, "spoold_last_scan_timestamp_seconds", spool="scans") == 1_700_000_000.5
    assert value(text, "spoold_build_info", version=__version__) == 1
    assert value(text, "spoold_oldest_queued_age_seconds", spool="scans") == 90.5
    assert value(text, "spoold_worker_restarts_total", spool="scans", cause="timeout") == 2
    pdf = {"spool": "scans", "target": "pdf"}
    assert value(text, "spoold_conversion_seconds_count", **pdf) == 1
    assert value(text, "spoold_conversion_seconds_sum", **pdf) == 1.5
    assert value(text, "spoold_start_time_seconds") > 0


def test_every_metric_is_named_spoold_and_documented(metrics: Metrics) -> None:
    metrics.job_finished("s", "succeeded", None, 1.0)
    metrics.set_queue_depth("s", "queued", 1)
    families = list(text_string_to_metric_families(metrics.render().decode()))
    assert families
    for fam in families:
        assert fam.name.startswith("spoold_"), fam.name
        assert fam.documentation, fam.name
    # The module docstring (and docs/operations.md) list every family.
    import spoold.ops.metrics as mod

    assert mod.__doc__ is not None
    for fam in families:
        if fam.name.endswith("_created"):
            continue
        base = fam.name.removesuffix("_total")
        assert base in mod.__doc__ or fam.name in mod.__doc__, fam.name


def test_duration_buckets_span_document_conversion(metrics: Metrics) -> None:
    assert DURATION_BUCKETS[0] == 0.01 and DURATION_BUCKETS[-1] == 600
    assert list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS)
    metrics.job_finished("s", "succeeded", None, 900.0)  # beyond the last bucket: +Inf
    text = metrics.render()
    labels = {"spool": "s", "outcome": "succeeded"}
    assert value(text, "spoold_job_duration_seconds_bucket", **labels, le="600.0") == 0
    assert value(text, "spoold_job_duration_seconds_bucket", **labels, le="+Inf") == 1


def test_negative_duration_still_counts(metrics: Metrics) -> None:
    metrics.job_finished("s", "cancelled", "cancelled", -1.0)
    labels = {"spool": "s", "outcome": "cancelled"}
    assert value(metrics.render(), "spoold_job_duration_seconds_count", **labels) == 1


def test_unknown_queue_state_is_refused(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="queue state"):
        metrics.set_queue_depth("s", "pending", 1)


def test_private_registry() -> None:
    m = Metrics()
    m.set_queue_depth("s", "queued", 1)
    assert (
        REGISTRY.get_sample_value("spoold_queue_depth", {"spool": "s", "state": "queued"}) is None
    )
    # A second instance in the same process does not clash with the first.
    Metrics().set_queue_depth("s", "queued", 2)
    assert value(m.render(), "spoold_queue_depth", spool="s", state="queued") == 1


def test_utilization_without_workers(metrics: Metrics) -> None:
    metrics.set_workers(0, 0)
    assert value(metrics.render(), "spoold_worker_utilization_ratio", spools="") == 0


# ---------------------------------------------------------------------- textfile


def test_write_textfile(metrics: Metrics, tmp_path: Path) -> None:
    target = tmp_path / "metrics.prom"
    metrics.set_queue_depth("s", "queued", 5)
    metrics.write_textfile(target)
    assert value(target.read_text(), "spoold_queue_depth", spool="s", state="queued") == 5
    metrics.set_queue_depth("s", "queued", 6)
    metrics.write_textfile(target)
    assert value(target.read_text(), "spoold_queue_depth", spool="s", state="queued") == 6
    # Nothing but the target: no temporary file left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.prom"]
    # Readable by the node_exporter user: the umask decides, not mkstemp's 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_textfile_replaces_by_rename(metrics: Metrics, tmp_path: Path) -> None:
    """A reader holding the old file sees it whole; the new one is a different inode."""
    target = tmp_path / "metrics.prom"
    metrics.write_textfile(target)
    with target.open("rb") as old:
        old_ino = os.fstat(old.fileno()).st_ino
        old_text = old.read()
        metrics.set_queue_depth("s", "queued", 9)
        metrics.write_textfile(target)
        old.seek(0)
        assert old.read() == old_text
    assert target.stat().st_ino != old_ino


def test_write_textfile_failure_leaves_no_temp(
    metrics: Metrics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "metrics.prom"
    target.write_text("previous\n")

    def boom(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        metrics.write_textfile(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.prom"]
    assert target.read_text() == "previous\n"


def test_concurrent_writers_never_expose_a_partial_file(metrics: Metrics, tmp_path: Path) -> None:
    target = tmp_path / "metrics.prom"
    metrics.write_textfile(target)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(200):
                metrics.set_queue_depth("s", "queued", i)
                metrics.write_textfile(target)
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    t = threading.Thread(target=writer)
    t.start()
    reads = 0
    while not stop.is_set() or reads == 0:
        text = target.read_text()
        assert text.endswith("\n") and "spoold_build_info" in text
        samples(text)  # parses
        reads += 1
    t.join()
    assert not errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.prom"]


# ---------------------------------------------------------------------- HTTP


def test_serve_on_loopback(metrics: Metrics) -> None:
    metrics.set_queue_depth("s", "running", 3)
    port = metrics.serve(0)
    assert port > 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        body = resp.read()
    assert value(body, "spoold_queue_depth", spool="s", state="running") == 3
    # Later updates show up in the next scrape.
    metrics.set_queue_depth("s", "running", 1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert value(resp.read(), "spoold_queue_depth", spool="s", state="running") == 1


def test_serve_port_in_use(metrics: Metrics) -> None:
    port = metrics.serve(0)
    other = Metrics()
    with pytest.raises(OSError):
        other.serve(port)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org", ""])
def test_serve_refuses_non_loopback(metrics: Metrics, host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        metrics.serve(0, host=host)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.2", "127.0.0.2"),
        ("::1", "::1"),
        ("localhost", "127.0.0.1"),
    ],
)
def test_loopback_hosts(host: str, expected: str) -> None:
    assert loopback_host(host) == expected


def test_operations_doc_lists_every_metric(metrics: Metrics) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    metrics.job_finished("s", "succeeded", None, 1.0)
    metrics.set_queue_depth("s", "queued", 1)
    metrics.set_disk_free("s", 1)
    metrics.scan_completed("s", 1.0)
    metrics.set_oldest_queued_age("s", 1.0)
    metrics.worker_restarted("s", "died")
    metrics.conversion_finished("s", "pdf", 1.0)
    names = {fam.name for fam in text_string_to_metric_families(metrics.render().decode())}
    counters = {"spoold_jobs", "spoold_worker_restarts"}
    exported = {n + "_total" if n in counters else n for n in names}
    missing = [n for n in sorted(exported) if not n.endswith("_created") and f"`{n}`" not in doc]
    assert not missing, f"metrics missing from docs/operations.md: {missing}"
