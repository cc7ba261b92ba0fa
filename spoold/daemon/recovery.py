"""Recovery: find the claims in running/ whose daemon is gone and hand them to the
lifecycle; forget the lease files of gone daemons that hold nothing any more.

Whether a daemon is gone is the PeerWatcher's (spoold/spool/leases.py): its lease has not
changed for lease_ttl_s on this daemon's monotonic clock (at once on the same host and
boot, where its flock is the truth). No wall clock is compared.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from pathlib import Path

from ..spool.protocol import INPUT_DIR, parse_running_name
from ..spool.transient import call_with_retry
from ..spool.waiting import remove_board
from .lifecycle import Lifecycle
from .runtime import SpoolRuntime


def recover(rt: SpoolRuntime, lifecycle: Lifecycle, host_id: str, token: str) -> None:
    """Requeue claims whose owner is gone."""
    try:
        names = call_with_retry(os.listdir, rt.paths.running)
    except OSError:
        return
    for name in names:
        parsed = parse_running_name(name)
        if parsed is None or parsed.token == token:
            continue
        if not rt.peers.is_gone(parsed.token):
            continue
        folder = rt.paths.running / name
        if _abandoned_before_claim(folder):
            continue
        record = rt.peers.owner(parsed.token)
        owner: dict[str, object] = asdict(record) if record is not None else {}
        lifecycle.recover_claim(rt, folder, parsed.jobdir, parsed.attempt, owner)
    _forget_dead_daemons(rt, names, token)


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


def _forget_dead_daemons(rt: SpoolRuntime, running: list[str], token: str) -> None:
    """Remove the lease files of daemons that are gone and hold no claim any more."""
    try:
        tokens = rt.peers.tokens()
        holding = {n.rsplit(".", 1)[-1] for n in call_with_retry(os.listdir, rt.paths.running)}
    except OSError:
        return
    rt.peers.retain(tokens | holding)  # what is not seen anywhere any more
    for other in tokens - holding - {token}:
        if rt.peers.is_gone(other):
            rt.peers.forget(other)
            remove_board(rt.paths.waiting, other)  # what it waited on, for tools
