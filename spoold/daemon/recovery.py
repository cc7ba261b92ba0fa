"""Recovery: find the claims in running/ whose daemon is gone and hand them to the
lifecycle; forget the lease files of gone daemons that hold nothing any more."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..protocol import INPUT_DIR, SpoolPaths, forget_daemon, owner_is_gone, parse_running_name
from .lifecycle import Lifecycle
from .runtime import SpoolRuntime


def recover(rt: SpoolRuntime, lifecycle: Lifecycle, host_id: str, token: str) -> None:
    """Requeue claims whose owner is gone (same host: lock free; else lease expired)."""
    try:
        names = os.listdir(rt.paths.running)
    except OSError:
        return
    ttl = rt.settings.lease_ttl_s
    for name in names:
        parsed = parse_running_name(name)
        if parsed is None or parsed.token == token:
            continue
        if not owner_is_gone(rt.paths, parsed.token, host_id, ttl):
            continue
        folder = rt.paths.running / name
        if _abandoned_before_claim(folder):
            continue
        owner = _daemon_info(rt.paths, parsed.token)
        lifecycle.recover_claim(rt, folder, parsed.jobdir, parsed.attempt, owner)
    _forget_dead_daemons(rt, host_id, token)


def _abandoned_before_claim(folder: Path) -> bool:
    """A folder prepared for a claim whose rename never happened: remove it."""
    try:
        inputs = os.listdir(folder / INPUT_DIR)
    except FileNotFoundError:
        inputs = []
    except OSError:
        return True  # unreadable now: look again next time
    if inputs:
        return False
    # Crashed between preparing the folder and the claim rename: nothing to keep.
    shutil.rmtree(folder, ignore_errors=True)
    return True


def _forget_dead_daemons(rt: SpoolRuntime, host_id: str, token: str) -> None:
    """Remove the lease files of daemons that are gone and hold no claim any more."""
    try:
        holding = {n.rsplit(".", 1)[-1] for n in os.listdir(rt.paths.running)}
        tokens = {p.stem for p in rt.paths.daemons.iterdir()}
    except OSError:
        return
    for other in tokens - holding - {token}:
        if owner_is_gone(rt.paths, other, host_id, rt.settings.lease_ttl_s):
            forget_daemon(rt.paths, other)


def _daemon_info(paths: SpoolPaths, token: str) -> dict[str, object]:
    try:
        data = json.loads((paths.daemons / f"{token}.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
