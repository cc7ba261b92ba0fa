"""Who may do what through the gateway, and what no request can do: tokens, users'
jobs, exposure without tokens, path tricks, an upload far over the limit, a job name
that is markup."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from .conftest import ROOT, DaemonProc, cli, wait_for

DOC = b"# Report\n"
XSS = "<img src=x onerror=alert(1)>"


def tokens_file(tmp: Path) -> tuple[Path, dict[str, str]]:
    path = tmp / "tokens.toml"
    made = {}
    for name, admin in (("alice", False), ("bob", False), ("root", True)):
        args = ["token", "add", str(path), name, *(["--admin"] if admin else [])]
        out = cli(*args).stdout
        assert out.count("\n") == 1  # the token alone on one line
        made[name] = out.strip()
    return path, made


def test_token_add_stores_only_the_hash(tmp_path: Path) -> None:
    path, made = tokens_file(tmp_path)
    text = path.read_text()
    assert all(token not in text for token in made.values())
    assert text.count("[[token]]") == 3 and 'role = "admin"' in text
    assert (path.stat().st_mode & 0o777) == 0o600
    again = cli("token", "add", str(path), "alice", check=False)
    assert again.returncode == 64 and "exists already" in again.stderr


def test_serve_refuses_a_public_address_without_tokens(
    tmp_path: Path, make_spool: Callable[..., Path]
) -> None:
    spool = make_spool()
    proc = subprocess.run(
        [sys.executable, "-m", "spoold", "serve", str(spool), "--listen", "0.0.0.0:8631"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 64, proc.stderr
    assert "without --tokens" in proc.stderr and "0.0.0.0:8631" in proc.stderr


def test_tokens_and_users_jobs(
    tmp_path: Path,
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
) -> None:
    spool = make_spool()
    path, tok = tokens_file(tmp_path)
    gw = gateway_factory(spool, args=("--tokens", str(path)))
    daemon_factory(spool)
    anon = httpx.Client(base_url=gw.url, timeout=60)
    assert anon.get("/healthz").status_code == 200
    for url in ("/v1/spools", "/v1/spools/spool/jobs", "/openapi.json", "/docs", "/readyz"):
        r = anon.get(url)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", url
        assert r.headers["www-authenticate"].startswith("Bearer")
    wrong = anon.get("/v1/spools", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    alice, bob, admin = (gw.client(tok[n]) for n in ("alice", "bob", "root"))
    files = {"file": ("mine.md", DOC, "text/markdown")}
    job = alice.post("/v1/spools/spool/jobs", files=files).json()
    url = f"/v1/spools/spool/jobs/{job['job_id']}"
    assert job["submitted_by"] == "alice"
    done = alice.get(url, params={"wait": 60}).json()
    assert done["status"] == "succeeded" and done["submitted_by"] == "alice"
    art = done["artifacts"][0]["url"]
    assert alice.get(art).status_code == 200
    for r in (
        bob.get(url),
        bob.get(art),
        bob.get(f"{url}/manifest"),
        bob.get("/v1/spools/spool/events", params={"job": job["job_id"]}),
    ):
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert bob.delete(url).status_code == 403
    assert bob.post(f"{url}/retry").status_code == 403
    assert bob.get("/v1/spools/spool/jobs").json()["jobs"] == []
    assert [j["job_id"] for j in alice.get("/v1/spools/spool/jobs").json()["jobs"]] == [
        job["job_id"]
    ]
    # An admin sees every job, a folder-dropped one too.
    (spool / "tmp" / "drop.md").write_bytes(DOC)
    os.rename(spool / "tmp" / "drop.md", spool / "inbox" / "drop.md")
    wait_for(
        lambda: (
            len(admin.get("/v1/spools/spool/jobs", params={"state": "done"}).json()["jobs"]) == 2
        ),
        what="the admin lists both jobs",
    )
    assert admin.get(url).json()["submitted_by"] == "alice"
    owned = admin.get("/v1/spools/spool/jobs", params={"owner": "alice"}).json()["jobs"]
    assert [j["job_id"] for j in owned] == [job["job_id"]]
    manifest = json.loads((spool / done["folder"] / "manifest.json").read_text())
    assert manifest["submitted_by"] == "alice"
    # Revoking a token takes effect without a restart.
    lines = path.read_text().split("[[token]]")
    path.write_text("[[token]]".join(x for x in lines if 'name = "bob"' not in x))
    wait_for(lambda: bob.get("/v1/spools").status_code == 401, what="bob's token revoked")


def test_path_tricks_never_leave_the_spool(
    make_spool: Callable[..., Path], gateway_factory: Callable[..., Any]
) -> None:
    spool = make_spool()
    (spool.parent / "secret.txt").write_text("secret")
    gw = gateway_factory(spool)
    with gw.client() as c:
        job = c.post("/v1/spools/spool/jobs", files={"file": ("a.md", DOC, "text/markdown")}).json()
        base = f"/v1/spools/spool/jobs/{job['job_id']}"
        tricks = [
            "/v1/spools/..%2F..%2Fetc/jobs",
            "/v1/spools/../spool/jobs/" + job["job_id"],
            "/v1/spools/spool/jobs/..%2F..%2Fsecret.txt",
            "/v1/spools/spool/jobs/%2Fetc%2Fpasswd",
            "/v1/spools/spool/jobs/" + job["job_id"] + "%00",
            "/v1/spools/sp%00ool/jobs",
            base + "/artifacts/..%2F..%2F..%2Fsecret.txt",
            base + "/artifacts/%2Fetc%2Fpasswd",
            base + "/artifacts/manifest.json%00.html",
        ]
        for trick in tricks:
            r = c.get(trick)
            assert r.status_code in (404, 422), (trick, r.status_code)
            assert "secret" not in r.text and "root:" not in r.text
        names = {
            "../../evil.md": "evil.md",
            "..\\..\\win.md": "win.md",
            ".hidden.md": "hidden.md",
            "nul\x00byte.md": "nulbyte.md",
            "tab\tand\nnewline.md": "tabandnewline.md",
            "/etc/passwd.md": "passwd.md",
            "x" * 300 + ".md": "x" * 197 + ".md",
            "": "upload.md",
        }
        for sent, expected in names.items():
            r = c.post(
                "/v1/spools/spool/jobs",
                params={"name": sent} if sent else {},
                content=DOC,
                headers={"Content-Type": "text/markdown"},
            )
            assert r.status_code == 202, (sent, r.text)
            assert r.json()["name"] == expected, sent
            stem, ext = os.path.splitext(expected)  # a lone document names its id
            inbox_name = f"{stem}.{r.json()['job_id']}{ext}"
            assert (spool / "inbox" / inbox_name).read_bytes() == DOC
    assert not (spool.parent / "evil.md").exists() and not (spool / "evil.md").exists()


def _raw_upload(port: int, headers: str, total: int, chunked: bool) -> tuple[str, int]:
    """Send up to `total` body bytes, reading the answer as soon as it comes; returns
    (status line and headers, bytes sent). Never holds the body in memory."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(headers.encode())
    block = b"#" * (1 << 20)
    sent = 0
    answer = b""
    s.setblocking(False)
    try:
        while sent < total:
            try:
                got = s.recv(65536)
                if got:
                    answer += got
                    break
            except BlockingIOError:
                pass
            data = (b"%x\r\n" % len(block) + block + b"\r\n") if chunked else block
            try:
                s.setblocking(True)
                s.settimeout(10)
                s.sendall(data)
                s.setblocking(False)
            except OSError:
                break  # the gateway closed the connection: read what it said
            sent += len(block)
        s.setblocking(True)
        s.settimeout(30)
        while b"\r\n\r\n" not in answer:
            got = s.recv(65536)
            if not got:
                break
            answer += got
    finally:
        s.close()
    return answer.decode("latin-1"), sent


def test_two_gigabytes_against_the_limit(
    make_spool: Callable[..., Path], gateway_factory: Callable[..., Any]
) -> None:
    spool = make_spool()  # max_upload_mb = 100 (the default)
    gw = gateway_factory(spool)
    before = gw.rss_mb()
    two_gb = 2 * 1024**3
    head = (
        "POST /v1/spools/spool/jobs?name=big.md HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: text/markdown\r\n"
    )
    answer, sent = _raw_upload(gw.port, head + f"Content-Length: {two_gb}\r\n\r\n", two_gb, False)
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert sent < 200 * 1024**2  # answered from Content-Length, not after the body
    answer, sent = _raw_upload(gw.port, head + "Transfer-Encoding: chunked\r\n\r\n", two_gb, True)
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "connection: close" in answer.lower()
    assert sent < 400 * 1024**2, sent  # cut off soon after 100 MB, not read to the end
    assert gw.rss_mb() - before < 60, (before, gw.rss_mb())
    wait_for(lambda: not list((spool / "tmp").iterdir()), what="staging removed")
    assert not list((spool / "inbox").iterdir())


def test_a_markup_name_is_escaped_everywhere(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
) -> None:
    spool = make_spool()
    gw = gateway_factory(spool)
    daemon_factory(spool)
    answers: list[httpx.Response] = []
    with gw.client() as c:
        md = c.post("/v1/spools/spool/jobs", files={"file": (f"{XSS}.md", DOC, "text/markdown")})
        pdf = c.post(
            "/v1/spools/spool/jobs",
            params={"name": f"{XSS}.pdf", "targets": "pdf"},
            content=b"%PDF-1.4 broken\n%%EOF\n",
            headers={"Content-Type": "application/pdf"},
        )
        answers += [md, pdf]
        for r in (md, pdf):
            assert r.status_code == 202, r.text
            assert r.json()["name"] == f"{XSS}.{r.json()['name'].rsplit('.', 1)[1]}"
            answers.append(c.get(r.headers["location"], params={"wait": 60}))
            answers.append(c.get(f"{r.headers['location']}/manifest"))
            answers.append(c.get("/v1/spools/spool/events", params={"job": r.json()["job_id"]}))
        answers.append(c.get("/v1/spools/spool/jobs"))
        answers.append(c.get(f"{pdf.headers['location']}/error"))
        art = answers[2].json()["artifacts"][0]
        download = c.get(art["url"])
        assert download.status_code == 200
        assert "<" not in download.headers["content-disposition"]
        assert "%3Cimg" in download.headers["content-disposition"]
    assert answers[-1].headers["content-type"].startswith("text/plain")
    assert "&lt;img src=x onerror=alert(1)&gt;" in answers[-1].text
    for r in answers:
        assert r.status_code in (200, 202), r.text
        assert "<img" not in r.text, r.request.url
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in answers[2].text
