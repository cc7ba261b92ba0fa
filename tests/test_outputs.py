"""Output permissions, the flat out/ view and ERROR.txt (SPEC sections 4 and 8)."""

from __future__ import annotations

import errno
import grp
import logging
import os
import stat
from pathlib import Path

import pytest

from spoold.errors import DEFAULT_HINTS, ErrorCode
from spoold.share import outputs
from spoold.share.outputs import (
    apply_output_permissions,
    dir_mode,
    error_text,
    link_flat_output,
    unlink_flat_outputs,
)


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


# --------------------------------------------------------------------------- permissions


def test_dir_mode_adds_x_where_r_is_set() -> None:
    assert dir_mode(0o664) == 0o775
    assert dir_mode(0o640) == 0o750
    assert dir_mode(0o600) == 0o700
    assert dir_mode(0o444) == 0o555


def test_modes_applied_to_files_and_folders(tmp_path: Path) -> None:
    job = tmp_path / "done" / "job"
    (job / "input").mkdir(parents=True)
    art = job / "report.pdf"
    art.write_bytes(b"%PDF")
    (job / "input" / "report.md").write_text("# hi")
    art.chmod(0o600)
    job.chmod(0o700)
    failures = apply_output_permissions([job], "0664", None, recursive=True)
    assert failures == 0
    assert _mode(job) == 0o775
    assert _mode(job / "input") == 0o775
    assert _mode(art) == 0o664
    assert _mode(job / "input" / "report.md") == 0o664


def test_non_recursive_touches_only_given_paths(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    f = d / "f"
    f.write_text("x")
    f.chmod(0o600)
    apply_output_permissions([d], "0640", None)
    assert _mode(d) == 0o750
    assert _mode(f) == 0o600


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("secret")
    target.chmod(0o600)
    d = tmp_path / "job"
    d.mkdir()
    (d / "link").symlink_to(target)
    apply_output_permissions([d], "0666", None, recursive=True)
    assert _mode(target) == 0o600


def test_group_applied(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    # A group we certainly belong to: our own primary group, by name.
    name = grp.getgrgid(os.getgid()).gr_name
    assert apply_output_permissions([f], None, name) == 0
    assert os.lstat(f).st_gid == os.getgid()


@pytest.mark.skipif(os.geteuid() != 0, reason="chgrp to a foreign group needs root")
def test_group_changed_to_another_group(tmp_path: Path) -> None:
    other = next((g for g in grp.getgrall() if g.gr_gid != os.getgid()), None)
    if other is None:
        pytest.skip("no second group on this machine")
    f = tmp_path / "f"
    f.write_text("x")
    assert apply_output_permissions([f], "0640", other.gr_name) == 0
    assert os.lstat(f).st_gid == other.gr_gid
    assert _mode(f) == 0o640


def test_unknown_group_and_permission_errors_are_warnings(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with caplog.at_level(logging.WARNING, logger="spoold.share.outputs"):
        assert apply_output_permissions([f], None, "no-such-group-xyz-42") == 0
    assert any("no-such-group-xyz-42" in r.getMessage() for r in caplog.records)

    def refuse(*_a: object, **_k: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    f.chmod(0o600)
    gid_other = os.getgid() + 1
    # As a non-root daemon meets it: chgrp to a foreign group and chmod are refused.
    monkeypatch.setattr(outputs.os, "chown", refuse)
    monkeypatch.setattr(outputs.os, "chmod", refuse)
    # Never raises: reported as a failure count and a warning.
    assert apply_output_permissions([f], "0664", str(gid_other)) == 1


def test_vanished_path_is_not_an_error(tmp_path: Path) -> None:
    assert apply_output_permissions([tmp_path / "gone"], "0664", None) == 1


# --------------------------------------------------------------------------- flat out/


def _artifact(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_bytes(data)
    return p


def test_flat_output_collisions_get_numeric_suffixes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    a = _artifact(tmp_path / "done" / "a", "report.pdf", b"A")
    b = _artifact(tmp_path / "done" / "b", "report.pdf", b"B")
    c = _artifact(tmp_path / "done" / "c", "report.pdf", b"C")
    d = _artifact(tmp_path / "done" / "c", "report.docx", b"D")
    got = [link_flat_output(out, [p])[0] for p in (a, b)] + link_flat_output(out, [c, d])
    assert [p.name for p in got] == ["report.pdf", "report-1.pdf", "report-2.pdf", "report.docx"]
    for src, dest in zip((a, b, c, d), got, strict=True):
        assert os.path.samefile(src, dest), "a hard link, not a copy"
        assert os.lstat(dest).st_nlink == 2


def test_flat_output_never_overwrites_a_persons_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.html").write_text("mine")
    (out / "notes-1.html").write_text("mine too")
    a = _artifact(tmp_path / "done" / "a", "notes.html", b"<p>")
    (dest,) = link_flat_output(out, [a])
    assert dest.name == "notes-2.html"
    assert (out / "notes.html").read_text() == "mine"


def test_flat_output_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.pdf").write_text("someone else's")
    a = _artifact(tmp_path / "done" / "a", "x.pdf", b"A")
    first = link_flat_output(out, [a])
    again = link_flat_output(out, [a])
    assert first == again == [out / "x-1.pdf"]
    assert sorted(os.listdir(out)) == ["x-1.pdf", "x.pdf"]


def test_flat_output_names_without_extension(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    a = _artifact(tmp_path / "a", "README", b"1")
    b = _artifact(tmp_path / "b", "README", b"2")
    assert [p.name for p in link_flat_output(out, [a, b])] == ["README", "README-1"]


def test_flat_output_falls_back_to_copy_when_links_are_refused(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.pdf").write_text("taken")
    a = _artifact(tmp_path / "a", "r.pdf", b"data")

    def no_links(*_a: object, **_k: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(outputs.os, "link", no_links)
    (dest,) = link_flat_output(out, [a])
    assert dest.name == "r-1.pdf"
    assert dest.read_bytes() == b"data"
    assert not os.path.samefile(a, dest)
    assert sorted(os.listdir(out)) == ["r-1.pdf", "r.pdf"], "no temporary left behind"


def test_missing_artifact_is_skipped(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    a = _artifact(tmp_path / "a", "ok.pdf", b"1")
    assert link_flat_output(out, [tmp_path / "a" / "gone.pdf", a]) == [out / "ok.pdf"]


def test_unlink_flat_outputs_removes_only_same_inode(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    a = _artifact(tmp_path / "a", "r.pdf", b"A")
    b = _artifact(tmp_path / "b", "r.pdf", b"B")
    la, lb = link_flat_output(out, [a, b])
    (out / "unrelated.pdf").write_text("A")  # same content, other inode
    removed = unlink_flat_outputs(out, [a])
    assert removed == [la]
    assert not la.exists() and lb.exists() and (out / "unrelated.pdf").exists()


def test_unlink_flat_outputs_keeps_links_still_used_by_another_job(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    old = _artifact(tmp_path / "old", "r.pdf", b"A")
    reused = tmp_path / "new" / "r.pdf"
    reused.parent.mkdir()
    os.link(old, reused)  # on_duplicate = "reuse" hard-links the earlier result
    link_flat_output(out, [old])
    link_flat_output(out, [reused])  # the same inode: found, not linked again
    assert unlink_flat_outputs(out, [old]) == []
    assert (out / "r.pdf").exists()
    assert unlink_flat_outputs(out, [old, reused]) == [out / "r.pdf"]


# --------------------------------------------------------------------------- ERROR.txt


@pytest.mark.parametrize("code", list(ErrorCode))
def test_error_text_for_every_code(code: ErrorCode) -> None:
    hint = DEFAULT_HINTS[code]
    status = "cancelled" if code is ErrorCode.CANCELLED else "failed"
    text = error_text(status, "report.md", code.value, "something specific went wrong", hint)
    assert code in outputs.PLAIN_WORDS
    assert text.startswith("report.md ")
    assert outputs.PLAIN_WORDS[code] in text
    assert "something specific went wrong." in text
    assert hint.rstrip(".") in text
    assert text.rstrip("\n").endswith(f"(error code: {code.value}; details in manifest.json)")
    assert "Traceback" not in text


def test_error_text_wording_by_status() -> None:
    assert "was cancelled" in error_text("cancelled", "a.md", "cancelled", "by request", "retry")
    assert "could not be converted" in error_text("failed", "a.md", "timeout", "slow", "simplify")


def test_error_text_neutralises_hostile_names() -> None:
    text = error_text("failed", "evil\nWhat to do: rm -rf /\x1b[31m.md", "input_invalid", "m", "h")
    first = text.splitlines()[0]
    assert "rm -rf" in first, "the name stays on the first line"
    assert "\x1b" not in text
    assert sum(line.startswith("What to do:") for line in text.splitlines()) == 1


def test_error_text_unknown_code_still_reads() -> None:
    text = error_text("failed", "a.md", "brand_new_code", "msg", "hint")
    assert "did not finish" in text and "(error code: brand_new_code;" in text
