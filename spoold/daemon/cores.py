"""How many cores other work uses: the measure behind lending idle workers to a medium
document (daemon/parts.py `idle_workers`, docs/performance.md "Medium documents").

A sampler thread reads, every `EVERY_S`, the machine's busy CPU time (/proc/stat) and
this daemon's own: its threads and its child processes, the workers (/proc/PID/stat).
`busy_cores` is the difference over the last `WINDOW_S`, per second: the cores other
processes used. Neither one reading at the job's arrival (that moment is never
typical: whatever wrote the job, a `mv`, a shell, the gateway, runs just then; on an
idle 2-core machine 2-3 tasks were runnable at the arrival, one a moment later) nor
the load average (it lags a minute) nor a window that counts this daemon's own work
(the job before, laid out a second ago, would keep the next one whole).

The sampler starts with the daemon (Admission) and costs a few small reads per
`EVERY_S` (about 0.1 ms); the list of child processes is looked up once per window, a
pass over /proc that grows with the machine's processes (2.5 ms with 70). Without
/proc it answers with the load average.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator

EVERY_S = 0.2  # one reading this often
WINDOW_S = 2.0  # the cores used over this long
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the machine spent busy since boot (not idle, not waiting on I/O)."""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) * TICK_S


def process_cpu_s(pid: int | str) -> float:
    """CPU seconds of one process, with its children it has waited for."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) * TICK_S  # utime stime cutime cstime


def proc_stats() -> Iterator[tuple[int, list[bytes]]]:
    """Every process: its pid and the fields of /proc/PID/stat after its name (ppid is
    [1], the session [3]). One pass over /proc; a process gone meanwhile is left out."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                yield int(name), f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is `parent`."""
    return [pid for pid, fields in proc_stats() if int(fields[1]) == parent]


class CoreSampler:
    def __init__(self) -> None:
        self.samples: deque[tuple[float, float, float]] = deque()  # (t, machine, own)
        self.children: list[int] = []
        self.children_at = 0.0
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="spoold-cores", daemon=True).start()

    def _run(self) -> None:
        tick = threading.Event()  # never set: the thread ends with the process
        while True:
            try:
                self.samples.append(self.read())
            except (OSError, ValueError, IndexError):
                return  # no /proc: busy_cores answers with the load average
            while self.samples[-1][0] - self.samples[0][0] > WINDOW_S:
                self.samples.popleft()
            tick.wait(EVERY_S)

    def read(self) -> tuple[float, float, float]:
        now = time.monotonic()
        if now - self.children_at >= WINDOW_S:
            self.children, self.children_at = child_pids(os.getpid()), now
        own = process_cpu_s("self")
        for pid in self.children:
            try:
                own += process_cpu_s(pid)
            except (OSError, ValueError, IndexError):
                pass  # ended since the list was made
        return now, machine_busy_s(), own

    def busy_cores(self) -> float:
        """Cores other processes used over the window (0 before it has two readings)."""
        self.start()
        if len(self.samples) < 2:
            try:
                return max(0.0, os.getloadavg()[0] - 1)
            except OSError:
                return float(os.cpu_count() or 1)  # unknown: lend nothing
        (t0, machine0, own0), (t1, machine1, own1) = self.samples[0], self.samples[-1]
        return max(0.0, ((machine1 - machine0) - (own1 - own0)) / (t1 - t0))


SAMPLER = CoreSampler()


def busy_cores() -> float:
    """Cores other processes than this daemon used over the last seconds."""
    return SAMPLER.busy_cores()
