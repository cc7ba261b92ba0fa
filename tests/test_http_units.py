"""The gateway's pieces in-process (no server): names, listening rules, tokens, ranges,
escaping, the job index, staging sweeps, idempotency records. `make check` runs these."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from spoold.errors import ConfigError
from spoold.http import idempotency
from spoold.http.auth import Tokens, add_token, parse_tokens
from spoold.http.errors import ApiError, escape_text, safe_json
from spoold.http.index import JobIndex
from spoold.http.routes_files import _byte_range, content_disposition
from spoold.http.server import ListenError, check_exposure, parse_listen
from spoold.http.uploads import STAGING_PREFIX, safe_name, sweep_staging
from spoold.spool.clock import new_job_id
from spoold.spool.protocol import init_spool
from spoold.tools.jobview import InboxView


@pytest.mark.parametrize(
    ("name", "ctype", "expected"),
    [
        ("report.md", "", "report.md"),
        ("../../x.md", "", "x.md"),
        ("C:\\Users\\me\\x.html", "", "x.html"),
        (".env.md", "", "env.md"),
        ("a\x00b\x1fc.pdf", "", "abc.pdf"),
        ("notes", "text/markdown", "notes.md"),
        (None, "text/html", "upload.html"),
        ("é" * 150 + ".md", "", "é" * 98 + ".md"),
    ],
)
def test_safe_name(name: str | None, ctype: str, expected: str) -> None:
    got = safe_name(name, ctype)
    assert got == expected and len(got.encode()) <= 200


def test_safe_name_refuses_other_formats() -> None:
    with pytest.raises(ApiError) as err:
        safe_name("photo.png", "image/png")
    assert err.value.status == 415


def test_listen_rules() -> None:
    assert parse_listen("[::1]:8631").local and parse_listen("127.1.2.3:80").local
    assert parse_listen("localhost:8631").local and parse_listen("unix:/run/x.sock").local
    assert not parse_listen("0.0.0.0:8631").local and not parse_listen("10.0.0.5:1").local
    for bad in ("8631", "host:0", "unix:relative.sock", ":8631"):
        with pytest.raises(ListenError):
            parse_listen(bad)
    with pytest.raises(ListenError, match="without --tokens"):
        check_exposure([parse_listen("0.0.0.0:8631")], None)
    check_exposure([parse_listen("0.0.0.0:8631")], Path("tokens.toml"))


def test_tokens_file(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    token = add_token(path, "ci", "user")
    tokens = Tokens(path)
    assert tokens.caller(f"Bearer {token}").name == "ci"
    for bad in (None, "Bearer", f"Basic {token}", "Bearer x"):
        with pytest.raises(ApiError) as err:
            tokens.caller(bad)
        assert err.value.status == 401
    path.write_text('[[token]]\nname = "x"\nsha256 = "abc"\nrole = "user"\n')
    with pytest.raises(ConfigError, match="sha256 must be 64 hex digits"):
        parse_tokens(path)
    path.write_text(f'[[token]]\nname = "x y"\nsha256 = "{"0" * 64}"\nrole = "boss"\n')
    with pytest.raises(ConfigError, match="name must be"):
        parse_tokens(path)


def test_byte_ranges_and_headers() -> None:
    assert _byte_range(None, 10) is None
    assert _byte_range("bytes=2-4", 10) == (2, 4)
    assert _byte_range("bytes=8-", 10) == (8, 9)
    assert _byte_range("bytes=-3", 10) == (7, 9)
    assert _byte_range("bytes=0-99", 10) == (0, 9)
    assert _byte_range("bytes=1-2,4-5", 10) is None  # several: the whole file
    with pytest.raises(ApiError) as err:
        _byte_range("bytes=10-", 10)
    assert err.value.status == 416
    header = content_disposition('<b>"x".pdf')
    assert "<" not in header and '"x"' not in header and "%3Cb%3E" in header


def test_escaping() -> None:
    data = json.loads(safe_json({"name": "<img src=x onerror=alert(1)>&"}))
    assert data["name"] == "<img src=x onerror=alert(1)>&"
    assert b"<" not in safe_json({"n": "<"}) and b"&" not in safe_json({"n": "&"})
    assert escape_text("<a & b>") == "&lt;a &amp; b&gt;"


def test_index_learns_from_events_and_listings(tmp_path: Path) -> None:
    paths = init_spool(tmp_path / "s")
    old, new = new_job_id(), new_job_id()
    (paths.done / f"a.{old}").mkdir()
    index = JobIndex(paths, InboxView())
    index.load()
    assert index.jobdirs[old] == f"a.{old}"
    index.learn([{"event": "job.detected", "job_id": new, "name": "b c.md"}])
    assert index.jobdirs[new] == f"b c.{new}"
    index.learn([{"event": "job.failed", "job_id": new, "path": f"failed/b c.{new}"}])
    assert index.ended[new] == f"failed/b c.{new}"
    assert index.find("../../etc") is None and index.find(new_job_id()) is None


def test_sweep_removes_dead_gateways_staging_only(tmp_path: Path) -> None:
    paths = init_spool(tmp_path / "s")
    import socket

    from spoold.spool.leases import boot_id

    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:40]
    dead = paths.tmp / f"{STAGING_PREFIX}{host}.{boot_id()[:8]}.999999999.abc"
    live = paths.tmp / f"{STAGING_PREFIX}{host}.{boot_id()[:8]}.{os.getpid()}.abc"
    elsewhere = paths.tmp / f"{STAGING_PREFIX}otherhost.12345678.1.abc"
    submit = paths.tmp / ".submit-1-2"
    for p in (dead, live, elsewhere, submit):
        p.mkdir()
    # A raw body is staged as one file, named like the folders with the document's suffix.
    dead_file = paths.tmp / f"{STAGING_PREFIX}{host}.{boot_id()[:8]}.999999999.def.md"
    live_file = paths.tmp / f"{STAGING_PREFIX}{host}.{boot_id()[:8]}.{os.getpid()}.def.md"
    for f in (dead_file, live_file):
        f.write_text("# staged\n")
    assert sweep_staging(paths) == 2
    assert not dead.exists() and live.exists() and elsewhere.exists() and submit.exists()
    assert not dead_file.exists() and live_file.exists()
    os.utime(elsewhere, (0, 0))
    os.utime(live_file, (0, 0))
    assert sweep_staging(paths) == 2 and not elsewhere.exists() and submit.exists()
    assert not live_file.exists() and live.exists()


def test_idempotency_records(tmp_path: Path) -> None:
    paths = init_spool(tmp_path / "s")
    mine = idempotency.KeyRecord("j1", "c1", 1.0)
    assert idempotency.claim_key(paths, "k", mine) is None
    twin = idempotency.claim_key(paths, "k", idempotency.KeyRecord("j2", "c2", 2.0))
    assert twin == mine
    assert idempotency.sweep_keys(paths, lambda job_id: True, now=1e9) == 0
    assert idempotency.sweep_keys(paths, lambda job_id: False, now=1e9) == 1
    with pytest.raises(ApiError):
        idempotency.check_key("a\nb")


def test_the_hot_path_takes_only_plain_job_look_ups() -> None:
    from spoold.http.hotpath import match

    job_id = new_job_id()

    def scope(path: str, method: str = "GET", query: bytes = b"") -> dict[str, object]:
        return {"method": method, "path": path, "query_string": query}

    assert match(scope(f"/v1/spools/s/jobs/{job_id}")) == ("s", job_id, None)
    assert match(scope(f"/v1/spools/s/jobs/{job_id}", query=b"wait=5")) == ("s", job_id, 5.0)
    assert match(scope(f"/v1/spools/s/jobs/{job_id}", query=b"wait=0.25")) == ("s", job_id, 0.25)
    for declined in (b"wait=-1", b"wait=x", b"wait=", b"wait=1&wait=2", b"wait=1e3", b"x=1"):
        assert match(scope(f"/v1/spools/s/jobs/{job_id}", query=declined)) is None, declined
    assert match(scope(f"/v1/spools/s/jobs/{job_id}", method="DELETE")) is None
    assert match(scope(f"/v1/spools/s/jobs/{job_id}/manifest")) is None
    assert match(scope("/v1/spools/s/jobs/../../etc")) is None
    assert match(scope("/v1/spools/s/jobs")) is None


def test_the_hot_path_takes_plain_submissions_and_leaves_the_rest_to_fastapi() -> None:
    from spoold.http.hotpath import match_submit, submit_query

    def post(path: str, query: bytes = b"", method: str = "POST") -> dict[str, object]:
        return {"method": method, "path": path, "query_string": query}

    assert match_submit(post("/v1/spools/s/jobs")) == "s"
    assert match_submit(post("/v1/spools/s/jobs", method="GET")) is None
    assert match_submit(post("/v1/spools/s/jobs/")) is None
    assert match_submit(post("/v1/spools/a/b/jobs")) is None
    assert match_submit(post("/v1/spools//jobs")) is None
    query = b"name=r%C3%A9.md&targets=pdf,docx&priority=100&route=fast&other=1"
    assert submit_query(post("/v1/spools/s/jobs", query)) == {
        "name": "ré.md",
        "targets": "pdf,docx",
        "priority": "100",
        "route": "fast",
    }
    assert submit_query(post("/v1/spools/s/jobs", b"priority=0")) == {"priority": "0"}
    for declined in (
        b"priority=101",
        b"priority=-1",
        b"priority=07",
        b"priority=",
        b"name=a&name=b",
    ):
        assert submit_query(post("/v1/spools/s/jobs", declined)) is None, declined


def test_index_forgets_purged_jobs(tmp_path: Path) -> None:
    paths = init_spool(tmp_path / "s")
    job_id = new_job_id()
    (paths.done / f"a.{job_id}").mkdir()
    index = JobIndex(paths, InboxView())
    index.load()
    assert job_id in index.jobdirs
    (paths.done / f"a.{job_id}").rmdir()  # purged by retention
    index.load()
    assert job_id not in index.jobdirs


@pytest.mark.parametrize("inotify", [True, False])
def test_the_follower_hands_new_lines_over(tmp_path: Path, inotify: bool) -> None:
    """With inotify the event loop reads the log itself; without, a thread polls it."""
    import asyncio

    from spoold.http.follower import Follower
    from spoold.spool.eventfiles import EVENTS_DIR

    paths = init_spool(tmp_path / "s")
    (paths.events.parent / EVENTS_DIR).mkdir(exist_ok=True)
    mine = paths.events.parent / EVENTS_DIR / "host.a.ndjson"
    mine.write_text('{"ts": "2026-01-01T00:00:00Z", "event": "daemon.started"}\n')

    async def follow() -> list[str]:
        loop = asyncio.get_running_loop()
        got: asyncio.Queue[list[dict[str, object]]] = asyncio.Queue()
        follower = Follower(
            paths.events, lambda lines: loop.call_soon_threadsafe(got.put_nowait, lines)
        )
        if not inotify and follower.inotify is not None:
            follower.inotify.close()
            follower.inotify = None
        follower.start(loop)
        try:
            assert (follower._thread is None) == (follower.inotify is not None)
            with mine.open("a") as fh:  # a daemon's new line
                fh.write('{"ts": "2026-01-01T00:00:01Z", "event": "job.detected"}\n')
            lines = await asyncio.wait_for(got.get(), 30)
        finally:
            follower.stop()
        return [str(e["event"]) for e in lines]

    assert asyncio.run(follow()) == ["job.detected"]


@pytest.mark.parametrize("someone_waits", [True, False])
def test_the_follower_sees_rotations_and_new_writers_from_inotify_alone(
    tmp_path: Path, someone_waits: bool
) -> None:
    """Lines only written are read on in the open files (at once while someone waits,
    gathered for GATHER_S while nobody does); a rotation or a new writer's file (a
    rename, a create) makes it list the folder again. The safety-net poll is an hour
    away here, so inotify alone has to get every line through, in order."""
    import asyncio

    from spoold.http.follower import Follower
    from spoold.spool.eventfiles import EVENTS_DIR

    paths = init_spool(tmp_path / "s")
    folder = paths.events.parent / EVENTS_DIR
    folder.mkdir(exist_ok=True)
    first, second = folder / "host.a.ndjson", folder / "host.b.ndjson"
    first.write_text('{"ts": "2026-01-01T00:00:00Z", "event": "daemon.started"}\n')

    def line(n: int) -> str:
        return f'{{"ts": "2026-01-01T00:00:{n:02d}Z", "event": "e{n}"}}\n'

    async def follow() -> list[str]:
        loop = asyncio.get_running_loop()
        got: asyncio.Queue[list[dict[str, object]]] = asyncio.Queue()
        follower = Follower(
            paths.events, got.put_nowait, poll_s=3600, nobody_waits=lambda: not someone_waits
        )
        if follower.inotify is None:
            pytest.skip("no inotify on this filesystem")
        follower.start(loop)
        seen: list[str] = []

        async def until(count: int) -> None:
            while len(seen) < count:
                try:
                    batch = await asyncio.wait_for(got.get(), 10)
                except TimeoutError:
                    raise AssertionError(f"waiting for {count}, got {seen}") from None
                seen.extend(str(e["event"]) for e in batch)

        try:
            for n in (1, 2):
                with first.open("a") as fh:
                    fh.write(line(n))
                await until(n)
            with first.open("a") as fh:  # the writer rotates: the rest, then a new file
                fh.write(line(3))
            first.rename(first.with_name(first.name + ".1"))
            first.write_text(line(4))
            await until(4)
            second.write_text(line(5))  # a daemon that starts
            await until(5)
            for path, n in ((second, 6), (first, 7)):
                with path.open("a") as fh:
                    fh.write(line(n))
                await until(n)
        finally:
            follower.stop()
        return seen

    assert asyncio.run(follow()) == [f"e{n}" for n in range(1, 8)]


def test_a_waiter_gets_the_lines_being_gathered_at_once(tmp_path: Path) -> None:
    """Nobody waits: a written line is gathered, not read. Someone starts waiting
    (ServedSpool.waiter calls flush): the line is read then, not GATHER_S later."""
    import asyncio

    from spoold.http.follower import Follower
    from spoold.spool.eventfiles import EVENTS_DIR

    paths = init_spool(tmp_path / "s")
    folder = paths.events.parent / EVENTS_DIR
    folder.mkdir(exist_ok=True)
    mine = folder / "host.a.ndjson"
    mine.write_text('{"ts": "2026-01-01T00:00:00Z", "event": "daemon.started"}\n')

    async def follow() -> list[str]:
        seen: list[str] = []
        follower = Follower(
            paths.events,
            lambda lines: seen.extend(str(e["event"]) for e in lines),
            poll_s=3600,
            nobody_waits=lambda: True,
        )
        if follower.inotify is None:
            pytest.skip("no inotify on this filesystem")
        follower.start(asyncio.get_running_loop())
        try:
            with mine.open("a") as fh:
                fh.write('{"ts": "2026-01-01T00:00:01Z", "event": "job.detected"}\n')
            deadline = time.monotonic() + 30
            while follower._gathering is None:  # the loop saw inotify's event
                assert time.monotonic() < deadline, "inotify never woke the loop"
                await asyncio.sleep(0)
            assert seen == []
            follower.flush()
            return seen
        finally:
            follower.stop()

    assert asyncio.run(follow()) == ["job.detected"]


def test_signed_links(tmp_path: Path) -> None:
    from spoold.http.signing import LINK, Signer, key_file

    paths = init_spool(tmp_path / "spool")
    first, second = Signer(paths), Signer(paths)  # two gateways of one spool
    path = "/v1/spools/spool/jobs/20260101T000000Z-0123456789/artifacts/report.pdf"
    exp = int(time.time()) + 60
    url = first.sign(path, exp)
    assert key_file(paths).stat().st_mode & 0o777 == 0o600
    sig = url.rpartition("sig=")[2]
    assert url == f"{path}?exp={exp}&sig={sig}" and len(sig) == 64
    assert second.check("GET", path, str(exp), sig) is LINK  # the same key, read back
    refusals = [
        ("GET", path, str(exp), "0" * 64, "does not match"),
        ("GET", path, str(exp + 1), sig, "does not match"),
        ("GET", path.replace("report.pdf", "other.pdf"), str(exp), sig, "does not match"),
        ("GET", path, "soon", sig, "not a time"),
        ("GET", path, None, sig, "needs both"),
        ("DELETE", path, str(exp), sig, "needs both"),
    ]
    for method, p, e, s, words in refusals:
        with pytest.raises(ApiError) as info:
            second.check(method, p, e, s)
        assert info.value.status == 403 and words in info.value.message
    past = int(time.time()) - 1
    old = first.sign(path, past).rpartition("sig=")[2]
    with pytest.raises(ApiError, match="expired"):
        first.check("GET", path, str(past), old)
    # A new key (the file removed) ends every link given out before.
    key_file(paths).unlink()
    first._checked = second._checked = 0.0
    assert first.sign(path, exp) != url
    with pytest.raises(ApiError, match="does not match"):
        second.check("GET", path, str(exp), sig)


def test_the_page_files_are_package_data_with_a_strict_policy() -> None:
    from spoold.http.routes_page import MEDIA, PAGE_CSP, PageFiles

    files = PageFiles().files
    assert set(files) == set(MEDIA)
    assert "default-src 'self'" in PAGE_CSP and "unsafe" not in PAGE_CSP
    html = files["index.html"][0].decode()
    # No inline script, style or handler: the policy would refuse them anyway.
    assert "<script>" not in html and "<style" not in html and "style=" not in html
    assert re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE) is None
    for name in ("page.js", "rows.js", "upload.js"):
        text = files[name][0].decode()
        assert "innerHTML" not in text and "eval(" not in text and "http" + "://" not in text
