"""What `spoold check-events` found (checker.py): the report, and the gaps in the
log with the `events.gap` records that declare some of them.

A line can be missing from a log (checker.py says when); the checker then records a
gap against the job. A daemon that could not write the log and dropped events past its
memory bound says so in one `events.gap` record (spool/eventlog.py): how many events,
and the jobs they were about. A gap of a job such a record names is a declared loss, a
warning even in a strict check; other gaps are warnings, or problems when strict.
Gaps are judged once the whole log is read: the record may come after the gap shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Gaps:
    strict: bool
    found: list[tuple[int, str, str]] = field(default_factory=list)  # (event #, job, what)
    declared: dict[str, int] = field(default_factory=dict)  # job id -> events.gap #
    declared_all: int | None = None  # an events.gap whose list of jobs was capped
    lost: int = 0  # events the records count

    def add(self, idx: int, job_id: str, what: str) -> None:
        self.found.append((idx, job_id, what))

    def declare(self, idx: int, ev: dict[str, Any]) -> str | None:
        """Take in an events.gap record; what is wrong with it, or None."""
        count, job_ids = ev.get("count"), ev.get("job_ids")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            return f"events.gap with count {count!r} (expected a number >= 1)"
        if not isinstance(job_ids, list) or not all(isinstance(j, str) for j in job_ids):
            return "events.gap without a list of job ids"
        self.lost += count
        for job_id in job_ids:
            self.declared.setdefault(job_id, idx)
        if ev.get("job_ids_complete") is not True and self.declared_all is None:
            self.declared_all = idx
        return None

    def judge(self) -> tuple[list[str], list[str]]:
        """(problems, warnings) of the gaps found."""
        problems: list[str] = []
        warnings: list[str] = []
        for idx, job_id, what in self.found:
            msg = f"job {job_id}, event #{idx}: gap: {what}"
            declared = self.declared.get(job_id, self.declared_all)
            if declared is not None:
                warnings.append(f"{msg} (lost lines declared by events.gap #{declared})")
            else:
                (problems if self.strict else warnings).append(msg)
        return problems, warnings


@dataclass
class CheckReport:
    ok: bool
    problems: list[str]
    jobs: int
    terminal: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    events: int = 0
    open_jobs: int = 0
    lost_events: int = 0  # counted by events.gap records

    def format(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.terminal.items())) or "none"
        lines = [
            f"{self.events} events, {self.jobs} jobs ({self.open_jobs} not finished); "
            f"terminal events: {counts}",
        ]
        if self.lost_events:
            lines.append(f"events lost (declared by events.gap records): {self.lost_events}")
        lines += [f"problem: {p}" for p in self.problems]
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append("ok" if self.ok else f"{len(self.problems)} problem(s)")
        return "\n".join(lines)
