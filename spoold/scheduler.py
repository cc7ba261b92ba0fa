"""Which ready job a free worker takes next.

Higher priority first, then arrival order; among jobs of equal priority, lanes take
turns. A lane is (spool, route, owner): one person's thousand files wait behind
everyone else's next file, not in front of them. Picking costs O(lanes + log n), never
a pass over the queue. Jobs waiting for their backoff sit in a separate heap by time.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from .detect import Entry

Lane = tuple[Hashable, ...]


@dataclass
class Candidate:
    spool: str
    entry: Entry
    priority: int
    not_before: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lane(self) -> Lane:
        return (self.spool, self.entry.route, self.entry.uid)


class Scheduler:
    def __init__(self) -> None:
        self._lanes: dict[Lane, list[tuple[int, int, Candidate]]] = {}
        self._served: dict[Lane, int] = {}
        self._delayed: list[tuple[float, int, Candidate]] = []
        self._tick = itertools.count()
        self._seq = itertools.count()

    def push(self, cand: Candidate, now: float) -> None:
        if cand.not_before > now:
            heapq.heappush(self._delayed, (cand.not_before, next(self._seq), cand))
            return
        heap = self._lanes.setdefault(cand.lane, [])
        heapq.heappush(heap, (-cand.priority, cand.entry.seq, cand))

    def _release_due(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, cand = heapq.heappop(self._delayed)
            cand.not_before = 0.0
            self.push(cand, now)

    def pop(self, now: float) -> Candidate | None:
        self._release_due(now)
        best: tuple[int, int, Lane] | None = None
        for lane, heap in list(self._lanes.items()):
            while heap and heap[0][2].entry.gone:
                heapq.heappop(heap)
            if not heap:
                del self._lanes[lane]
                continue
            prio = heap[0][0]
            served = self._served.get(lane, -1)
            key = (prio, served, lane)
            if best is None or key[:2] < best[:2]:
                best = key
        if best is None:
            return None
        lane = best[2]
        _, _, cand = heapq.heappop(self._lanes[lane])
        self._served[lane] = next(self._tick)
        if not self._lanes[lane]:
            del self._lanes[lane]
        return cand

    def next_due(self) -> float | None:
        return self._delayed[0][0] if self._delayed else None

    def ready_count(self) -> int:
        return sum(len(h) for h in self._lanes.values())

    def __len__(self) -> int:
        return self.ready_count() + len(self._delayed)
