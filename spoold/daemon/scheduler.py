"""Which ready job a free worker takes next.

Higher priority first, then arrival order; among jobs of equal priority, lanes take
turns. A lane is (spool, route, owner): one person's thousand files wait behind
everyone else's next file, not in front of them. Picking costs O(lanes) plus O(1) for
jobs that arrived in order (the usual case) or O(log n) for the others, never a pass
over the queue. Jobs waiting for their backoff sit in a separate heap by time.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Collection, Hashable
from dataclasses import dataclass

from .inbox.tracker import Entry

Lane = tuple[Hashable, ...]

# A job's place in its lane: -priority << SEQ_BITS | arrival seq, one int to compare.
SEQ_BITS = 48

Item = tuple[int, "Candidate"]


@dataclass
class Candidate:
    spool: str
    entry: Entry
    priority: int
    not_before: float = 0.0

    @property
    def lane(self) -> Lane:
        return (self.spool, self.entry.route, self.entry.uid)


class LaneQueue:
    """One lane's jobs in order: a FIFO run of the jobs pushed in increasing order (most
    of them: the inbox hands jobs over in arrival order) and a heap for the rest.

    The smaller of the two heads is next. Popping from the run touches one item, where
    a heap of 100,000 would walk 17 cache-cold levels: claiming stays as cheap with a
    long queue as with a short one (SPEC 2).
    """

    __slots__ = ("heap", "run")

    def __init__(self) -> None:
        self.run: deque[Item] = deque()
        self.heap: list[Item] = []

    def push(self, item: Item) -> None:
        if not self.run or item[0] > self.run[-1][0]:
            self.run.append(item)
        else:
            heapq.heappush(self.heap, item)

    def peek(self) -> Item | None:
        run, heap = self.run, self.heap
        if run and (not heap or run[0][0] < heap[0][0]):
            return run[0]
        return heap[0] if heap else None

    def pop(self) -> Item:
        run, heap = self.run, self.heap
        if run and (not heap or run[0][0] < heap[0][0]):
            return run.popleft()
        return heapq.heappop(heap)

    def __len__(self) -> int:
        return len(self.run) + len(self.heap)


class Scheduler:
    def __init__(self) -> None:
        self._lanes: dict[Lane, LaneQueue] = {}
        self._served: dict[Lane, int] = {}
        self._delayed: list[tuple[float, int, Candidate]] = []
        self._tick = itertools.count()
        self._seq = itertools.count()

    def push(self, cand: Candidate, now: float) -> None:
        if cand.not_before > now:
            heapq.heappush(self._delayed, (cand.not_before, next(self._seq), cand))
            return
        queue = self._lanes.get(cand.lane)
        if queue is None:
            queue = self._lanes[cand.lane] = LaneQueue()
        queue.push(((-cand.priority << SEQ_BITS) + cand.entry.seq, cand))

    def _release_due(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, cand = heapq.heappop(self._delayed)
            cand.not_before = 0.0
            self.push(cand, now)

    def pop(self, now: float, skip: Collection[str] = ()) -> Candidate | None:
        """The next job to start, leaving the lanes of the spools in `skip` (paused)."""
        lane = self._next_lane(now, skip)
        if lane is None:
            return None
        queue = self._lanes[lane]
        _, cand = queue.pop()
        self._served[lane] = next(self._tick)
        if not queue:
            del self._lanes[lane]
        return cand

    def peek(self, now: float, skip: Collection[str] = ()) -> Candidate | None:
        """The job `pop` would return now, left in place."""
        lane = self._next_lane(now, skip)
        if lane is None:
            return None
        head = self._lanes[lane].peek()
        return head[1] if head is not None else None

    def _next_lane(self, now: float, skip: Collection[str]) -> Lane | None:
        """The lane whose head goes next: highest priority, then the least recently
        served lane (fair shares). Drops the heads of gone entries and empty lanes."""
        self._release_due(now)
        best: tuple[int, int, Lane] | None = None
        for lane, queue in list(self._lanes.items()):
            head = queue.peek()
            while head is not None and head[1].entry.gone:
                queue.pop()
                head = queue.peek()
            if head is None:
                del self._lanes[lane]
                continue
            if skip and head[1].spool in skip:
                continue
            prio = head[0] >> SEQ_BITS
            served = self._served.get(lane, -1)
            key = (prio, served, lane)
            if best is None or key[:2] < best[:2]:
                best = key
        return best[2] if best is not None else None

    def has_ready(self, skip: Collection[str] = ()) -> bool:
        """Whether a job could start now in a spool not in `skip`."""
        for queue in self._lanes.values():
            head = queue.peek()
            if head is not None and head[1].spool not in skip:
                return True
        return False

    def next_due(self) -> float | None:
        return self._delayed[0][0] if self._delayed else None

    def ready_count(self) -> int:
        return sum(len(q) for q in self._lanes.values())

    def __len__(self) -> int:
        return self.ready_count() + len(self._delayed)
