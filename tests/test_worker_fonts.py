"""A worker short of memory must not damage font caches outside the daemon's own dirs.

Observed once: fontconfig, loaded by WeasyPrint in a worker with hardly any address
space left, rewrote the system font cache without the DejaVu fonts (docs/operations.md
"Fonts and the worker memory limit"). These tests never touch the machine's caches:
fontconfig gets a stand-in "system" configuration (copies of the installed fonts, a
cache directory in tmp_path) and HOME/XDG_CACHE_HOME in tmp_path; as root, the children
run in a mount namespace where /var/cache/fontconfig is an empty tmpfs, which also
shows whether anything tried to write there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from spoold.daemon.fontconfig import make_private_fontconfig
from spoold.worker.spec import PrivateFontconfig

from .conftest import PLUGIN_ENV, ROOT, published, stage_file, wait_for

CACHE_DIR = PrivateFontconfig.CACHE_DIR
FONTS_CONF = PrivateFontconfig.FONTS_CONF

SYSTEM_CACHE = Path("/var/cache/fontconfig")
SWEEP = Path(__file__).with_name("fontconfig_sweep.py")
SHIELDED = 'mount -t tmpfs spoold-test "$0" || exit 99; "$@"; ls -A "$0" > "$REPORT"; exit 0'


def snapshot(folder: Path) -> list[tuple[str, int, int, int]]:
    """What a cache folder holds: name, inode, size and mtime of each file."""
    if not folder.exists():
        return []
    return sorted(
        (p.name, p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    )


def count_fonts(env: dict[str, str] | None = None) -> int:
    out = subprocess.run(["fc-list"], env=env, capture_output=True, text=True, check=True)
    return len(out.stdout.splitlines())


@dataclass
class StandIn:
    """A stand-in for the machine's fontconfig setup, all inside tmp_path."""

    root: Path
    env: dict[str, str]

    @property
    def cache(self) -> Path:
        return self.root / "system-cache"

    def home_files(self) -> list[Path]:
        return [p for p in (self.root / "home").rglob("*") if p.is_file()]


@pytest.fixture
def stand_in(tmp_path: Path) -> StandIn:
    listed = subprocess.run(
        ["fc-list", "-f", "%{file}\n"], capture_output=True, text=True, check=True
    ).stdout.split()
    if not listed:
        pytest.skip("no fonts installed")
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    for i, font in enumerate(sorted(set(listed))):
        shutil.copy(font, fonts / f"{i:03d}-{Path(font).name}")
    conf = tmp_path / "system-fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<fontconfig>\n'
        f"  <dir>{fonts}</dir>\n  <cachedir>{tmp_path / 'system-cache'}</cachedir>\n"
        "</fontconfig>\n"
    )
    (tmp_path / "home").mkdir()
    env = {
        **os.environ,
        "FONTCONFIG_FILE": str(conf),
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "home" / ".cache"),
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run(["fc-cache"], env=env, check=True)
    return StandIn(tmp_path, env)


def private_dir(stand_in: StandIn, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The daemon's fontconfig dir, made as the daemon would with the stand-in setup."""
    with monkeypatch.context() as m:
        m.setenv("FONTCONFIG_FILE", stand_in.env["FONTCONFIG_FILE"])
        private = Path(make_private_fontconfig(stand_in.root).root)
    assert stand_in.env["FONTCONFIG_FILE"] in (private / FONTS_CONF).read_text()
    return private


def run_shielded(args: list[str], env: dict[str, str], report: Path) -> list[str]:
    """Run `args`; as root with /var/cache/fontconfig an empty tmpfs: what landed there."""
    if os.geteuid() != 0:
        subprocess.run(args, env=env, timeout=300, check=False)
        return []
    skip = "as root, this test needs a mount namespace to shield the system cache"
    if shutil.which("unshare") is None:
        pytest.skip(skip)
    shield = ["unshare", "-m", "sh", "-c", SHIELDED, str(SYSTEM_CACHE), *args]
    done = subprocess.run(shield, env={**env, "REPORT": str(report)}, timeout=300, check=False)
    if done.returncode == 99:
        pytest.skip(skip)
    return report.read_text().split()


def test_fontconfig_short_of_memory_loses_fonts_but_not_in_a_worker(
    stand_in: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fonts = count_fonts(stand_in.env)
    system_fonts = count_fonts()
    real_cache = snapshot(SYSTEM_CACHE)

    # Without the worker's set-up: the stand-in system cache loses its fonts.
    cache_before = snapshot(stand_in.cache)
    written = run_shielded([sys.executable, str(SWEEP), "bare"], stand_in.env, tmp_path / "r1")
    if snapshot(stand_in.cache) == cache_before:
        pytest.skip("this fontconfig does not rewrite its cache when short of memory")
    assert count_fonts(stand_in.env) < fonts
    assert written == []

    # A fresh, complete cache; then the same loads in a worker set up as init_worker does.
    shutil.rmtree(stand_in.cache)
    subprocess.run(["fc-cache"], env=stand_in.env, check=True)
    cache_before = snapshot(stand_in.cache)
    private = private_dir(stand_in, monkeypatch)
    args = [sys.executable, str(SWEEP), "worker", str(private)]
    written = run_shielded(args, stand_in.env, tmp_path / "r2")
    assert snapshot(stand_in.cache) == cache_before
    assert count_fonts(stand_in.env) == fonts
    assert written == [], "something wrote into the system cache directory"
    assert stand_in.home_files() == []
    # With its fonts loaded before the limit a worker does not even rescan: its own
    # cache stays empty too, so later documents keep every font.
    assert snapshot(private / CACHE_DIR) == []
    # The machine's own fonts were never at stake.
    assert count_fonts() == system_fonts
    assert snapshot(SYSTEM_CACHE) == real_cache


def test_the_private_config_writes_caches_only_into_the_daemons_dir(
    stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stand-in system cache is empty (stale), so loading fonts must write a cache:
    # through the worker's fonts.conf it goes to the private dir, with every font.
    fonts = count_fonts(stand_in.env)
    shutil.rmtree(stand_in.cache)
    stand_in.cache.mkdir()
    private = private_dir(stand_in, monkeypatch)  # includes the system configuration
    env = {**stand_in.env, "FONTCONFIG_FILE": str(private / FONTS_CONF)}
    assert count_fonts(env) == fonts
    assert snapshot(stand_in.cache) == []
    assert any(".cache-" in name for name, *_ in snapshot(private / CACHE_DIR))
    assert stand_in.home_files() == []


def test_a_daemon_keeps_its_workers_font_caches_to_itself(
    stand_in: StandIn, make_spool, daemon_factory
) -> None:
    cache_before = snapshot(stand_in.cache)
    system_fonts = count_fonts()
    real_cache = snapshot(SYSTEM_CACHE)
    spool = make_spool(memory_limit_mb=512, targets=["pdf"])
    plugins = {**PLUGIN_ENV, "PYTHONPATH": f"{ROOT}:{PLUGIN_ENV['PYTHONPATH']}"}
    d = daemon_factory(spool, env={**stand_in.env, **plugins})
    d.wait_ready()
    pattern = f"spoold-fontconfig-{d.pid}-*"
    (private,) = wait_for(lambda: list(Path(tempfile.gettempdir()).glob(pattern)), what="dir")
    assert stand_in.env["FONTCONFIG_FILE"] in (private / FONTS_CONF).read_text()
    assert (private / CACHE_DIR).is_dir()
    stage_file(spool, "note.md", "# Fonts\n\nPlain *text* and **bold** text.\n")
    stage_file(spool, "where.fcenv", "")
    note, where = wait_for(lambda: len(published(spool)) == 2 and published(spool), what="jobs")
    fonts = subprocess.run(
        ["pdffonts", str(note / "note.pdf")], capture_output=True, text=True, check=True
    ).stdout
    assert "DejaVu" in fonts
    # What the worker's fontconfig used: the daemon's directory.
    seen = dict(line.split("=", 1) for line in (where / "where.pdf").read_text().splitlines())
    assert seen == {
        "FONTCONFIG_FILE": str(private / FONTS_CONF),
        "XDG_CACHE_HOME": str(private / "xdg"),
    }
    assert d.stop() == 0
    assert not private.exists(), "the daemon's font cache outlived it"
    assert snapshot(stand_in.cache) == cache_before
    assert stand_in.home_files() == []
    assert count_fonts() == system_fonts
    assert snapshot(SYSTEM_CACHE) == real_cache


def test_without_a_folder_for_the_private_cache_the_daemon_says_so_and_converts(
    make_spool, daemon_factory, tmp_path: Path
) -> None:
    spool = make_spool(targets=["pdf"])
    d = daemon_factory(spool, env={"RUNTIME_DIRECTORY": str(tmp_path / "missing")})
    stage_file(spool, "note.md", "# Still fine\n")
    (folder,) = wait_for(lambda: published(spool), what="the PDF")
    assert (folder / "note.pdf").exists()
    assert "cannot make the workers' private fontconfig folder" in d.log()
    assert str(tmp_path / "missing") in d.log()
