"""Owner-checked cancel on a shared folder (SPEC section 3)."""

from __future__ import annotations

import json
import os
import pwd

import pytest

from spoold.owners import marker_allowed

from .conftest import PLUGIN_ENV, events, published, wait_for

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="creating files as another uid needs root"
)


def _nobody() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user on this machine")
    return pw.pw_uid, pw.pw_gid


def _drop(spool, name: str, content: str, uid: int) -> None:
    tmp = spool / "tmp" / f".{name}"
    tmp.write_text(content)
    os.chown(tmp, uid, -1)
    os.rename(tmp, spool / "inbox" / name)


def test_marker_allowed_rules() -> None:
    assert marker_allowed(1000, 1000, None)
    assert marker_allowed(0, 1000, None), "root may cancel anything"
    assert not marker_allowed(1001, 1000, None)
    assert not marker_allowed(1001, 1000, "no-such-group-xyz")


@needs_root
def test_someone_elses_marker_is_refused(make_spool, daemon_factory) -> None:
    nobody, _ = _nobody()
    spool = make_spool()
    daemon_factory(spool, env=PLUGIN_ENV)
    _drop(spool, "mine.slow", "2", 0)
    wait_for(lambda: any(e["event"] == "job.started" for e in events(spool)), what="started")
    _drop(spool, "mine.slow.cancel", "hard", nobody)
    wait_for(lambda: any(e["event"] == "cancel.refused" for e in events(spool)), what="refused")
    wait_for(lambda: published(spool), what="the job runs on")
    m = json.loads((published(spool)[0] / "manifest.json").read_text())
    assert m["status"] == "succeeded"
    assert "uid" not in json.dumps(m.get("options", {})), "the owner stays out of the manifest"


@needs_root
def test_the_owners_own_marker_cancels(make_spool, daemon_factory) -> None:
    nobody, _ = _nobody()
    spool = make_spool(max_attempts=1)
    daemon_factory(spool, env=PLUGIN_ENV)
    _drop(spool, "theirs.hang", "", nobody)
    wait_for(lambda: any(e["event"] == "job.started" for e in events(spool)), what="started")
    _drop(spool, "theirs.hang.cancel", "hard", nobody)
    wait_for(lambda: published(spool, "failed"), what="cancelled by its owner")
    m = json.loads((published(spool, "failed")[0] / "manifest.json").read_text())
    assert m["status"] == "cancelled"


@needs_root
def test_admin_group_members_may_cancel(make_spool, daemon_factory) -> None:
    nobody, nogroup = _nobody()
    import grp

    group = grp.getgrgid(nogroup).gr_name
    spool = make_spool(admin_group=group, max_attempts=1)
    daemon_factory(spool, env=PLUGIN_ENV)
    _drop(spool, "rootjob.hang", "", 0)
    wait_for(lambda: any(e["event"] == "job.started" for e in events(spool)), what="started")
    _drop(spool, "rootjob.hang.cancel", "hard", nobody)
    wait_for(lambda: published(spool, "failed"), what="cancelled by an admin")
