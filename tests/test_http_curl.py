"""The gateway driven with curl, as people and shell scripts drive it: multipart -F,
--data-binary, Idempotency-Key, downloads, cancel, retry, events, a unix socket, TLS."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProc, wait_for
from .http_support import free_port

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(*args: str) -> tuple[int, str]:
    """(HTTP status, body) of one curl call."""
    out = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    body, _, code = out.rpartition("\n")
    return int(code), body


def test_curl_submit_download_cancel_retry(
    tmp_path: Path,
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
) -> None:
    spool = make_spool()
    gw = gateway_factory(spool)
    base = f"{gw.url}/v1/spools/spool/jobs"
    doc = tmp_path / "report.md"
    doc.write_text("# Quarterly report\n\nNumbers.\n")
    key = ("-H", "Idempotency-Key: curl-1")
    code, body = curl(*key, "-F", f"file=@{doc}", "-F", 'options={"targets":["html","docx"]}', base)
    assert code == 202, body
    job = json.loads(body)
    code, again = curl(
        *key, "-F", f"file=@{doc}", "-F", 'options={"targets":["html","docx"]}', base
    )
    assert code == 200 and json.loads(again)["job_id"] == job["job_id"]
    page = tmp_path / "page.html"
    page.write_text("<h1>Page</h1>")
    code, body = curl(
        "--data-binary",
        f"@{page}",
        "-H",
        "Content-Type: text/html",
        f"{base}?name=page.html&targets=pdf",
    )
    assert code == 202, body
    queued = json.loads(body)
    code, body = curl("-X", "DELETE", f"{base}/{queued['job_id']}")
    assert code == 202 and json.loads(body)["cancel_requested"] is True
    daemon_factory(spool)
    code, body = curl(f"{base}/{job['job_id']}?wait=60")
    done = json.loads(body)
    assert code == 200 and done["status"] == "succeeded"
    for art in done["artifacts"]:
        out = tmp_path / f"got-{art['name']}"
        code, _ = curl("-o", str(out), f"{gw.url}{art['url']}")
        assert code == 200
        assert out.read_bytes() == (spool / done["folder"] / art["path"]).read_bytes()
    code, body = curl("-r", "0-1", f"{gw.url}{done['artifacts'][0]['url']}")
    assert code == 206 and len(body) == 2
    code, body = curl(f"{base}/{queued['job_id']}?wait=60")
    cancelled = json.loads(body)
    assert cancelled["status"] == "cancelled"
    code, body = curl("-X", "DELETE", f"{base}/{queued['job_id']}")
    assert code == 409 and json.loads(body)["error"]["code"] == "conflict"
    code, body = curl(f"{base}/{queued['job_id']}/error")
    assert code == 200 and "cancelled" in body
    code, body = curl("-X", "POST", f"{base}/{queued['job_id']}/retry")
    assert code == 202
    code, body = curl(f"{base}/{queued['job_id']}?wait=60")
    assert json.loads(body)["status"] == "succeeded"
    code, body = curl("-N", f"{gw.url}/v1/spools/spool/events?job={job['job_id']}")
    assert code == 200 and body.count("event: job.succeeded") == 1
    code, body = curl(f"{base}?state=done&limit=1")
    assert code == 200 and len(json.loads(body)["jobs"]) == 1 and json.loads(body)["next"]
    code, body = curl(f"{gw.url}/readyz")
    assert code == 200 and json.loads(body)["status"] == "ready"


def test_curl_over_a_unix_socket_and_tls(
    tmp_path: Path, make_spool: Callable[..., Path], gateway_factory: Callable[..., Any]
) -> None:
    spool = make_spool()
    sock = tmp_path / "http.sock"
    port = free_port()
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    gateway_factory(spool, args=("--listen", f"unix:{sock}"), wait=False)
    wait_for(sock.exists, what="the unix socket")
    wait_for(lambda: _ok(["--unix-socket", str(sock), "http://x/healthz"]), what="unix answers")
    code, body = curl(
        "--unix-socket",
        str(sock),
        "--data-binary",
        "# hi\n",
        "-H",
        "Content-Type: text/markdown",
        "http://x/v1/spools/spool/jobs?name=hi.md",
    )
    assert code == 202 and json.loads(body)["name"] == "hi.md"
    gateway_factory(
        spool,
        args=("--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(key)),
        wait=False,
    )
    url = f"https://127.0.0.1:{port}"
    wait_for(lambda: _ok(["--cacert", str(cert), f"{url}/healthz"]), what="TLS answers")
    code, body = curl("--cacert", str(cert), f"{url}/v1/spools/spool/jobs?state=queued")
    assert code == 200 and [j["name"] for j in json.loads(body)["jobs"]] == ["hi.md"]


def _ok(args: list[str]) -> bool:
    try:
        return curl(*args)[0] == 200
    except subprocess.CalledProcessError:
        return False
