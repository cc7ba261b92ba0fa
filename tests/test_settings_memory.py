"""memory_limit_mb has a floor: below it a worker cannot load WeasyPrint and its fonts."""

from __future__ import annotations

from pathlib import Path

import pytest

from spoold.errors import ConfigError
from spoold.settings import MIN_MEMORY_LIMIT_MB, load_daemon_settings, load_spool_settings


def test_a_spool_below_the_floor_is_refused_naming_the_key_and_the_minimum(
    tmp_path: Path,
) -> None:
    (tmp_path / "spool.toml").write_text("memory_limit_mb = 128\n")
    with pytest.raises(ConfigError) as err:
        load_spool_settings(tmp_path, env={})
    message = str(err.value)
    assert "spool.toml: key 'memory_limit_mb'" in message
    assert f"at least {MIN_MEMORY_LIMIT_MB}" in message
    assert "(got 128)" in message


def test_the_floor_itself_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "spool.toml").write_text(f"memory_limit_mb = {MIN_MEMORY_LIMIT_MB}\n")
    assert load_spool_settings(tmp_path, env={}).memory_limit_mb == MIN_MEMORY_LIMIT_MB


def test_the_environment_and_the_daemon_file_are_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"SPOOLD_MEMORY_LIMIT_MB .*at least 512"):
        load_spool_settings(tmp_path, env={"SPOOLD_MEMORY_LIMIT_MB": "256"})
    daemon_file = tmp_path / "spoold.toml"
    daemon_file.write_text("memory_limit_mb = 64\n")
    with pytest.raises(ConfigError, match=r"spoold\.toml: key .memory_limit_mb.*at least 512"):
        load_daemon_settings(daemon_file, {}, env={})
