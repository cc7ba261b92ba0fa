"""Watching this daemon's own lease: renew it, and notice when it was taken away.

Another daemon removes the lease files of a daemon it believes gone (frozen past its
lease on another host, say) and recovers its claims. The daemon that finds its files
gone says so once (`daemon.lease_lost`), gives up the claims it lost (their results
would be fenced anyway), registers its lease again and carries on: no error loop and
no working on without a lease.
"""

from __future__ import annotations

import logging
import os

from ..events import DaemonLeaseLost
from .lifecycle import Lifecycle
from .runtime import SpoolRuntime

log = logging.getLogger("spoold")


class LeaseWatch:
    def __init__(self, spools: list[SpoolRuntime], lifecycle: Lifecycle) -> None:
        self.spools = spools
        self.lifecycle = lifecycle

    def check_and_renew(self) -> None:
        for rt in self.spools:
            lease = rt.lease
            if not (os.path.exists(lease.lock_path) and os.path.exists(lease.info_path)):
                self._lost(rt)
            else:
                lease.heartbeat()

    def _lost(self, rt: SpoolRuntime) -> None:
        lost = self.lifecycle.give_up_lost_claims()
        log.warning(
            "the lease of this daemon on %s was removed by another daemon; "
            "gave up %d lost claim(s) and registered again",
            rt.root,
            lost,
        )
        self.lifecycle.bus.emit(rt, DaemonLeaseLost(pid=os.getpid(), claims_lost=lost))
        rt.lease.release()
        rt.paths.daemons.mkdir(exist_ok=True)
        rt.lease.acquire()
