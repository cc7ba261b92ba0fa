"""The gateway's table (issue 19, docs/http.md), row by row, with httpx against a real
`spoold serve` and a real daemon on one spool."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from openapi_spec_validator import validate

from .conftest import DaemonProc, events, validate_manifest, wait_for

DOC = b"# Report\n\nSome *text*.\n"


def submit(c: httpx.Client, spool: str = "spool", **kw: Any) -> httpx.Response:
    files = kw.pop("files", {"file": ("report.md", DOC, "text/markdown")})
    return c.post(f"/v1/spools/{spool}/jobs", files=files, **kw)


def envelope(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == code and err["message"] and err["hint"], err
    assert isinstance(err["retryable"], bool)
    return err


def test_submit_wait_download_and_the_record(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
) -> None:
    spool = make_spool(targets=["html"])
    gw = gateway_factory(spool)
    daemon_factory(spool)
    with gw.client() as c:
        r = submit(c, data={"options": json.dumps({"targets": ["html", "docx"], "priority": 70})})
        assert r.status_code == 202, r.text
        job = r.json()
        job_id = job["job_id"]
        assert r.headers["location"] == f"/v1/spools/spool/jobs/{job_id}"
        assert job["name"] == "report.md" and job["state"] in ("queued", "running", "done")
        done = c.get(f"/v1/spools/spool/jobs/{job_id}", params={"wait": 60}).json()
        assert done["state"] == "done" and done["status"] == "succeeded"
        validate_manifest(
            {
                k: v
                for k, v in json.loads(
                    (spool / done["folder"] / "manifest.json").read_text()
                ).items()
            }
        )
        # `spoold show`'s fields, plus cancel_requested and links
        for key in ("stage", "attempt", "attempts", "artifacts", "created_at", "finished_at"):
            assert key in done
        assert done["cancel_requested"] is False
        assert done["options"]["priority"] == 70
        by_target = {a["target"]: a for a in done["artifacts"]}
        assert set(by_target) == {"html", "docx"}
        html = c.get(by_target["html"]["url"])
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert html.headers["etag"] == f'"{by_target["html"]["sha256"]}"'
        assert 'filename="report.html"' in html.headers["content-disposition"]
        on_disk = (spool / done["folder"] / by_target["html"]["path"]).read_bytes()
        assert html.content == on_disk and len(on_disk) == by_target["html"]["size"]
        part = c.get(by_target["html"]["url"], headers={"Range": "bytes=5-14"})
        assert part.status_code == 206 and part.content == on_disk[5:15]
        assert part.headers["content-range"] == f"bytes 5-14/{len(on_disk)}"
        tail = c.get(by_target["html"]["url"], headers={"Range": "bytes=-4"})
        assert tail.status_code == 206 and tail.content == on_disk[-4:]
        bad = c.get(by_target["html"]["url"], headers={"Range": f"bytes={len(on_disk)}-"})
        assert bad.status_code == 416
        same = c.get(by_target["html"]["url"], headers={"If-None-Match": html.headers["etag"]})
        assert same.status_code == 304 and same.content == b""
        manifest = c.get(f"/v1/spools/spool/jobs/{job_id}/manifest")
        assert manifest.status_code == 200 and manifest.json()["job_id"] == job_id
        envelope(c.get(f"/v1/spools/spool/jobs/{job_id}/error"), 404, "not_found")
        envelope(c.get(f"/v1/spools/spool/jobs/{job_id}/artifacts/nope.pdf"), 404, "not_found")
        envelope(c.delete(f"/v1/spools/spool/jobs/{job_id}"), 409, "conflict")
        envelope(c.post(f"/v1/spools/spool/jobs/{job_id}/retry"), 409, "conflict")
        envelope(c.get("/v1/spools/spool/jobs/20200101T000000Z-0123456789"), 404, "not_found")
        envelope(c.get("/v1/spools/nope/jobs"), 404, "not_found")
    ended = [e for e in events(spool) if e["event"] == "job.succeeded"]
    assert [e["job_id"] for e in ended] == [job_id]


def test_raw_body_failed_job_error_text_and_retry(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
) -> None:
    spool = make_spool()
    gw = gateway_factory(spool)
    daemon_factory(spool)
    with gw.client() as c:
        r = c.post(
            "/v1/spools/spool/jobs",
            params={"name": "page.html", "targets": "html"},
            content=b"<p>hi</p>",
            headers={"Content-Type": "text/html"},
        )
        assert r.status_code == 202, r.text
        ok = c.get(r.headers["location"], params={"wait": 60}).json()
        assert ok["status"] == "succeeded" and ok["name"] == "page.html"
        # A PDF that is no PDF fails: a job failure is a record, not an HTTP error.
        r = c.post(
            "/v1/spools/spool/jobs",
            params={"name": "scan.pdf", "targets": "pdf"},
            content=b"%PDF-1.4 not really\n%%EOF\n",
            headers={"Content-Type": "application/pdf"},
        )
        assert r.status_code == 202
        failed = c.get(r.headers["location"], params={"wait": 60}).json()
        assert failed["state"] == "failed" and failed["error"]["code"]
        assert set(failed["error"]) == {"code", "message", "hint", "retryable"}
        text = c.get(f"{r.headers['location']}/error")
        assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
        assert "scan.pdf" in text.text
        art = c.get(f"{r.headers['location']}/artifacts/scan.pdf")
        envelope(art, 409, "conflict")
        again = c.post(f"{r.headers['location']}/retry")
        assert again.status_code == 202 and again.json()["state"] in ("queued", "running", "failed")
        wait_for(
            lambda: (
                len(c.get(r.headers["location"]).json()["attempts"]) == 2
                and c.get(r.headers["location"]).json()["state"] == "failed"
            ),
            what="the retried job failed again",
        )


def test_without_a_daemon_the_id_works_at_once(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
) -> None:
    spool = make_spool()
    gw = gateway_factory(spool)
    with gw.client() as c:
        first = submit(c).json()
        second = submit(c).json()
        assert first["job_id"] != second["job_id"] and second["name"] == "report-1.md"
        # The 202's record (made from what the POST wrote) is the one read back from inbox/.
        assert c.get(f"/v1/spools/spool/jobs/{first['job_id']}").json() == first
        not_yet = c.get(f"/v1/spools/spool/jobs/{first['job_id']}/artifacts/report.html")
        envelope(not_yet, 404, "not_found")
        envelope(c.get(f"/v1/spools/spool/jobs/{first['job_id']}/manifest"), 404, "not_found")
        got = c.get(f"/v1/spools/spool/jobs/{first['job_id']}", params={"wait": 0.5})
        assert got.status_code == 200 and got.json()["state"] == "queued"
        assert got.json()["job_id"] == first["job_id"]
        cancelled = c.delete(f"/v1/spools/spool/jobs/{second['job_id']}", params={"mode": "hard"})
        assert cancelled.status_code == 202 and cancelled.json()["cancel_requested"] is True
        envelope(c.get("/readyz"), 503, "unavailable")
        listed = c.get("/v1/spools/spool/jobs", params={"state": "queued"}).json()
        assert {j["job_id"] for j in listed["jobs"]} == {first["job_id"], second["job_id"]}
        daemon_factory(spool)
        done = c.get(f"/v1/spools/spool/jobs/{first['job_id']}", params={"wait": 60}).json()
        gone = c.get(f"/v1/spools/spool/jobs/{second['job_id']}", params={"wait": 60}).json()
        assert done["status"] == "succeeded" and gone["status"] == "cancelled"
        assert gone["cancel_requested"] is False
        wait_for(lambda: c.get("/readyz").status_code == 200, what="ready with a daemon")
    ids = {e["job_id"] for e in events(spool) if e["event"] == "job.detected"}
    assert ids == {first["job_id"], second["job_id"]}


def test_list_filters_and_cursor(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
) -> None:
    spool = make_spool()
    gw = gateway_factory(spool)
    daemon_factory(spool)
    with gw.client() as c:
        made = []
        for i in range(5):
            files = {"file": (f"note{i}.md", f"# {i}\n".encode(), "text/markdown")}
            made.append(submit(c, files=files).json()["job_id"])
        bad = c.post(
            "/v1/spools/spool/jobs",
            params={"name": "bad.pdf", "targets": "pdf"},
            content=b"%PDF-1.4 nothing\n%%EOF\n",
            headers={"Content-Type": "application/pdf"},
        ).json()["job_id"]
        for job_id in [*made, bad]:
            c.get(f"/v1/spools/spool/jobs/{job_id}", params={"wait": 60})
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = c.get("/v1/spools/spool/jobs", params=params).json()
            seen += [j["job_id"] for j in page["jobs"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == sorted([*made, bad], reverse=True)  # newest first, each once
        failed = c.get("/v1/spools/spool/jobs", params={"state": "failed"}).json()["jobs"]
        assert [j["job_id"] for j in failed] == [bad]
        by_code = c.get("/v1/spools/spool/jobs", params={"code": failed[0]["code"]}).json()
        assert [j["job_id"] for j in by_code["jobs"]] == [bad]
        named = c.get("/v1/spools/spool/jobs", params={"name": "note[13]*"}).json()["jobs"]
        assert {j["name"] for j in named} == {"note1.md", "note3.md"}
        envelope(c.get("/v1/spools/spool/jobs", params={"state": "lost"}), 422, "invalid_request")
        envelope(c.get("/v1/spools/spool/jobs", params={"cursor": "%%%"}), 422, "invalid_request")
        spools = c.get("/v1/spools").json()["spools"]
        assert spools[0]["name"] == "spool" and spools[0]["done"] == 5
        assert spools[0]["targets"] == ["html"]


def test_bad_requests_and_idempotency(
    make_spool: Callable[..., Path],
    gateway_factory: Callable[..., Any],
) -> None:
    spool = make_spool(max_upload_mb=1, max_input_mb=0.5, max_queued=3)
    gw = gateway_factory(spool)
    with gw.client() as c:
        err = envelope(submit(c, data={"options": '{"page_size": "A9"}'}), 422, "invalid_request")
        assert "page_size" in err["message"]
        err = envelope(submit(c, data={"options": '{"colour": 1}'}), 422, "invalid_request")
        assert "colour" in err["message"]
        envelope(submit(c, data={"options": '{"id": "x"}'}), 422, "invalid_request")
        envelope(submit(c, data={"options": "[1]"}), 422, "invalid_request")
        md = {"Content-Type": "text/markdown"}
        for odd in ("101", "-1", "high"):  # left to FastAPI's validation by hotpath.py
            bad = c.post(
                "/v1/spools/spool/jobs", params={"priority": odd}, content=b"#", headers=md
            )
            assert "priority" in envelope(bad, 422, "invalid_request")["message"]
        txt = {"file": ("notes.txt", b"plain", "text/plain")}
        envelope(submit(c, files=txt), 415, "unsupported_media_type")
        raw = c.post("/v1/spools/spool/jobs", content=b"x", headers={"Content-Type": "image/png"})
        envelope(raw, 415, "unsupported_media_type")
        pdf_to_html = c.post(
            "/v1/spools/spool/jobs",
            params={"targets": "html"},
            content=b"%PDF-1.4\n%%EOF\n",
            headers={"Content-Type": "application/pdf"},
        )
        envelope(pdf_to_html, 415, "unsupported_media_type")
        cut = c.post(
            "/v1/spools/spool/jobs",
            params={"targets": "pdf"},
            content=b"%PDF-1.4\n1 0 obj",
            headers={"Content-Type": "application/pdf"},
        )
        assert "truncated" in envelope(cut, 422, "invalid_request")["message"]
        big = {"file": ("big.md", b"x" * (600 * 1024), "text/markdown")}
        err = envelope(submit(c, files=big), 413, "too_large")
        assert "max_input_mb" in err["message"]
        huge = {"file": ("huge.md", b"x" * (1100 * 1024), "text/markdown")}
        err = envelope(submit(c, files=huge), 413, "too_large")
        assert "max_upload_mb" in err["message"]
        envelope(
            submit(c, files={"other": ("a.md", b"x", "text/markdown")}), 422, "invalid_request"
        )
        key = {"Idempotency-Key": "order-17"}
        one = submit(c, headers=key)
        assert one.status_code == 202
        same = submit(c, headers=key)
        assert same.status_code == 200 and same.json()["job_id"] == one.json()["job_id"]
        other = {"file": ("report.md", b"# other\n", "text/markdown")}
        envelope(submit(c, files=other, headers=key), 409, "conflict")
        assert submit(c, headers={"Idempotency-Key": "order-18"}).status_code == 202
        assert submit(c).status_code == 202
        full = submit(c)
        envelope(full, 429, "queue_full")
        assert int(full.headers["retry-after"]) > 0
        # A key answered from its job even when the queue is full.
        assert submit(c, headers=key).status_code == 200
    assert [p.name for p in (spool / "tmp").iterdir()] == []


def test_sse_resume_and_openapi(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
) -> None:
    spool = make_spool()
    gw = gateway_factory(spool)
    daemon_factory(spool)
    with gw.client() as c:
        job_id = submit(c).json()["job_id"]
        frames = []
        with c.stream("GET", "/v1/spools/spool/events", params={"job": job_id}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            frame: dict[str, str] = {}
            for line in r.iter_lines():
                if not line:
                    if "data" in frame:
                        frames.append(frame)
                    frame = {}
                    continue
                field, _, value = line.partition(": ")
                frame[field] = value
        names = [f["event"] for f in frames]
        assert names[0] == "job.detected" and names[-1] == "job.succeeded"
        assert all(json.loads(f["data"])["job_id"] == job_id for f in frames)
        # Resume after the first event: the rest comes again, from the log.
        after = c.get(
            "/v1/spools/spool/events",
            params={"job": job_id},
            headers={"Last-Event-ID": frames[0]["id"]},
        )
        resumed = [
            ln[len("event: ") :] for ln in after.text.splitlines() if ln.startswith("event: ")
        ]
        assert resumed == names[1:]
        seen: list[str] = []
        opened = threading.Event()

        def follow() -> None:
            with gw.client() as f, f.stream("GET", "/v1/spools/spool/events") as r:
                for line in r.iter_lines():
                    opened.set()  # the stream's first line is a comment
                    if line.startswith("event: "):
                        seen.append(line[len("event: ") :])
                    if line == "event: job.succeeded":
                        return

        follower = threading.Thread(target=follow)
        follower.start()
        wait_for(opened.is_set, what="the stream is open")
        later = submit(c, files={"file": ("later.md", b"# later\n", "text/markdown")})
        follower.join(timeout=60)
        assert seen[0] == "job.detected" and seen[-1] == "job.succeeded", seen
        assert later.status_code == 202
        spec = c.get("/openapi.json").json()
        validate(spec)
        paths = spec["paths"]
        for path in (
            "/v1/spools/{spool}/jobs",
            "/v1/spools/{spool}/jobs/{job_id}",
            "/v1/spools/{spool}/jobs/{job_id}/artifacts/{file}",
            "/v1/spools/{spool}/events",
            "/healthz",
            "/readyz",
            "/v1/spools",
        ):
            assert path in paths, path
        page = c.get("/docs")
        assert page.status_code == 200 and "/v1/spools/{spool}/jobs" in page.text
        assert "http://" not in page.text and "https://" not in page.text
        assert (
            "<script" not in page.text
            and "default-src 'none'" in page.headers["content-security-policy"]
        )
        metrics = c.get("/metrics").text
        assert (
            'spoold_http_requests_total{method="POST",route="/v1/spools/{spool}/jobs",status="202"} 2.0'
            in metrics
        )
        assert "spoold_http_request_duration_seconds_bucket" in metrics
    access = [ln for ln in gw.log().splitlines() if " POST /v1/spools/spool/jobs 202 " in ln]
    assert access, gw.log()[-2000:]
