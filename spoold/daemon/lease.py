"""Watching this daemon's own lease: renew it, and notice when it was taken away.

Another daemon that believes this one gone (frozen past its lease, or cut off from the
file server) recovers its claims and removes its lease files. On its next renewal
(spoold/spool/leases.py: OwnLease.renew) this daemon finds them removed or replaced: it says
so once (log line and `daemon.lease_lost`), gives up the claims it lost (their results
would be fenced anyway), is registered again by the renewal and carries on: no error
loop and no working on without a lease.
"""

from __future__ import annotations

import logging
import os

from ..spool.events import DaemonLeaseLost
from ..spool.leases import Renewal
from ..spool.transient import TransientFsError
from .lifecycle import Lifecycle
from .runtime import SpoolRuntime

log = logging.getLogger("spoold")


class LeaseWatch:
    def __init__(self, spools: list[SpoolRuntime], lifecycle: Lifecycle) -> None:
        self.spools = spools
        self.lifecycle = lifecycle

    def check_and_renew(self) -> None:
        for rt in self.spools:
            try:
                renewal = rt.lease.renew()
            except TransientFsError as exc:
                # The file server is failing over: the next renewal tries again, and a
                # lease lost meanwhile is noticed then.
                log.warning("renewing the lease on %s failed: %s", rt.root, exc)
                continue
            if renewal is Renewal.REREGISTERED:
                self._lost(rt, rt.lease.lost_reason or "its lease was taken")
            else:
                self._give_up_claims_renamed_away(rt)

    def _lost(self, rt: SpoolRuntime, reason: str) -> None:
        lost = self.lifecycle.give_up_lost_claims()
        log.warning(
            "this daemon was declared gone on %s (%s); gave up %d lost claim(s) "
            "and registered again",
            rt.root,
            reason,
            lost,
        )
        self.lifecycle.bus.emit(rt, DaemonLeaseLost(pid=os.getpid(), claims_lost=lost))

    def _give_up_claims_renamed_away(self, rt: SpoolRuntime) -> None:
        # A claim recovered by another daemon while our lease stayed (our renewal came
        # in between): its folder is gone; stop the work, its result would be fenced.
        lost = self.lifecycle.give_up_lost_claims("claim lost: recovered by another daemon")
        if lost:
            log.warning("%d claim(s) on %s were recovered by another daemon", lost, rt.root)
