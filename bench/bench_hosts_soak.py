"""Soak: 3 emulated hosts on one spool, skewed clocks, freezes and kills, a steady stream.

Each host is a real daemon seeing the spool through its own bindfs mount
(tests/hosts.py), its wall clock up to +-120 s off. For `--duration` seconds jobs
arrive steadily through random hosts while, every few leases, one host is frozen
(SIGSTOP of the daemon and its workers) for one to three leases, or killed (SIGKILL)
and restarted. Then every host is thawed and running, the backlog drains, and:

  submitted, published, lost (in none of done/, failed/, inbox/, running/),
  still queued, published twice, claims taken from live hosts (job.recovered of a
  claim whose holder was neither dead nor frozen past its lease at that moment),
  error loops (one error message logged 5 times or more by one host), and the time
  from a host's death to its claims being started again.

    python bench/bench_hosts_soak.py --duration 600
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common import report, temp_dir

from spoold.spool.eventfiles import read_events as read_log
from tests.hosts import Host, cluster, fuse_unavailable, wait_until

BENCH = "hosts_soak"
ERROR_LOOP_REPEATS = 5


@dataclass
class Chaos:
    """What the soak did to the hosts, in real (unskewed) unix time."""

    kills: dict[str, list[float]] = field(default_factory=dict)
    freezes: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def settings(lease_ttl_s: float) -> dict[str, Any]:
    return {
        "settle_ms": 200,
        "poll_interval_ms": 200,
        "scan_interval_s": 2.0,
        "lease_ttl_s": lease_ttl_s,
        "backoff_initial_s": 0.5,
        "backoff_max_s": 5.0,
        "max_attempts": 20,  # kills and freezes cost attempts: none may fail for it
        "targets": ["html"],
        "drain_s": 10,
        "min_free_mb": 0,
        "on_duplicate": "rerun",  # equal .slow bodies must still convert (and hold claims)
    }


def submit(host: Host, name: str, rng: random.Random) -> None:
    if name.endswith(".md"):
        body = f"# Soak {name}\n\nA paragraph of *text* for {name}.\n"
    else:
        body = f"{rng.uniform(0.5, 4.0):.2f}"  # .slow: seconds of pretend conversion
    tmp = host.spool / "tmp" / f".{name}.part"
    tmp.write_text(body)
    tmp.rename(host.spool / "inbox" / name)


def run_chaos(
    hosts: list[Host], args: argparse.Namespace, rng: random.Random
) -> tuple[list[str], Chaos]:
    chaos = Chaos({h.name: [] for h in hosts}, {h.name: [] for h in hosts})
    names: list[str] = []
    start = time.monotonic()
    next_job = next_action = start + 2.0
    frozen: tuple[Host, float] | None = None
    dead: tuple[Host, float] | None = None
    while time.monotonic() - start < args.duration:
        now = time.monotonic()
        if now >= next_job:
            name = f"j{len(names):05d}" + (".md" if rng.random() < 0.2 else ".slow")
            submit(rng.choice(hosts), name, rng)
            names.append(name)
            next_job += 1.0 / args.rate
        if frozen is not None and now >= frozen[1]:
            frozen[0].thaw()
            chaos.freezes[frozen[0].name][-1] = (chaos.freezes[frozen[0].name][-1][0], time.time())
            frozen = None
        if dead is not None and now >= dead[1]:
            dead[0].start()
            dead = None
        if now >= next_action and frozen is None and dead is None:
            victim = rng.choice(hosts)
            if rng.random() < 0.5:
                victim.freeze()
                chaos.freezes[victim.name].append((time.time(), float("inf")))
                frozen = (victim, now + args.lease_ttl * rng.uniform(1.0, 3.0))
            else:
                victim.kill()
                chaos.kills[victim.name].append(time.time())
                # Restarted before or after a lease: its own next instance recovers at
                # once (same host and boot: the lock), otherwise another host does.
                dead = (victim, now + args.lease_ttl * rng.uniform(0.4, 2.5))
            next_action = now + args.lease_ttl * rng.uniform(3.0, 6.0)
        time.sleep(0.05)
    if frozen is not None:
        frozen[0].thaw()
        chaos.freezes[frozen[0].name][-1] = (chaos.freezes[frozen[0].name][-1][0], time.time())
    if dead is not None:
        dead[0].start()
    return names, chaos


def read_events(spool: Path) -> list[dict[str, Any]]:
    """Every host's events, merged (spool/eventfiles.py)."""
    return list(read_log(spool / ".spoold" / "events.ndjson"))


def real_time(event: dict[str, Any], skews: dict[str, float]) -> float:
    """The event's time on the bench's clock (events carry their host's skewed time)."""
    stamp = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
    return stamp - skews.get(event.get("host", ""), 0.0)


def places(spool: Path) -> tuple[Counter[str], set[str]]:
    """(times each input was published, inputs still queued or running)."""
    published: Counter[str] = Counter()
    for state in ("done", "failed"):
        for folder in (spool / state).iterdir():
            try:
                published[json.loads((folder / "manifest.json").read_text())["input"]["name"]] += 1
            except (OSError, ValueError, KeyError):
                continue
    pending = {p.name for p in (spool / "inbox").iterdir() if not p.is_dir()}
    for folder in [*(spool / "inbox").iterdir(), *(spool / "running").iterdir()]:
        if (folder / "input").is_dir():
            pending.update(p.name for p in (folder / "input").iterdir())
    return published, pending


def recoveries(
    evs: list[dict[str, Any]], chaos: Chaos, skews: dict[str, float], ttl: float
) -> tuple[int, int, dict[str, list[float]]]:
    """(recovered claims, of them taken from live hosts, death-to-rerun delays by who
    recovered: "restarted" host itself or "other" host)."""
    claimed = {(e["job_id"], e["attempt"]): e for e in evs if e["event"] == "job.claimed"}
    starts: dict[str, list[float]] = {}
    for e in evs:
        if e["event"] == "job.started":
            starts.setdefault(e["job_id"], []).append(real_time(e, skews))
    total, from_live = 0, 0
    delays: dict[str, list[float]] = {"restarted": [], "other": []}
    for e in evs:
        if e["event"] != "job.recovered":
            continue
        total += 1
        t = real_time(e, skews)
        claim = claimed.get((e["job_id"], e["attempt"]))
        if claim is None:
            continue  # claimed before the log began: cannot judge
        owner, c = claim["host"], real_time(claim, skews)
        kill = next((k for k in chaos.kills[owner] if c <= k <= t), None)
        # Legitimate: the owner was frozen long enough for its lease to lapse. A lease
        # counts from the owner's last renewal, which may be up to ttl/3 (the renewal
        # interval) before the freeze began: so from 2/3 ttl into the freeze.
        frozen = any(
            fs <= t - (2 / 3) * ttl and fe >= c and t <= fe + ttl for fs, fe in chaos.freezes[owner]
        )
        if kill is None and not frozen:
            from_live += 1
            near = [(round(fs - t, 1), round(fe - t, 1)) for fs, fe in chaos.freezes[owner]]
            near = [f for f in near if abs(f[0]) < 6 * ttl]
            print(
                f"  live claim taken: {e['host']} took {e['job_id']} a{e['attempt']} from {owner}"
                f" (claimed {c - t:+.1f} s; owner's freezes near, start/end from then: {near})"
            )
        if kill is not None:
            later = [s for s in starts.get(e["job_id"], []) if s > t]
            if later:
                delays["restarted" if e["host"] == owner else "other"].append(min(later) - kill)
    return total, from_live, delays


def error_loops(hosts: list[Host]) -> dict[str, int]:
    """Per host: error messages (numbers and ids blanked) logged ERROR_LOOP_REPEATS+ times."""
    loops: dict[str, int] = {}
    for host in hosts:
        lines = [ln for ln in host.log().splitlines() if " ERROR " in ln]
        shapes = Counter(re.sub(r"[0-9a-f]{6,}|\d+", "#", ln.split(" ", 1)[-1]) for ln in lines)
        repeated = {shape: n for shape, n in shapes.items() if n >= ERROR_LOOP_REPEATS}
        for shape, n in repeated.items():
            print(f"  error loop on {host.name}: {n} x {shape[:120]}")
        loops[host.name] = len(repeated)
    return loops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of chaos")
    parser.add_argument("--rate", type=float, default=1.0, help="jobs per second")
    parser.add_argument("--lease-ttl", type=float, default=5.0, help="lease_ttl_s of the spool")
    parser.add_argument("--max-skew", type=float, default=120.0, help="clock skew bound, s")
    parser.add_argument("--drain", type=float, default=180.0, help="max seconds to drain")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    reason = fuse_unavailable()
    if reason is not None:
        print(f"bench_hosts_soak: skipped, cannot emulate hosts: {reason}")
        return  # `make bench` goes on with the other benches
    rng = random.Random(args.seed)
    with temp_dir("spoold-soak-") as base, cluster(base, 3, settings(args.lease_ttl)) as hosts:
        skews = [args.max_skew, -args.max_skew, rng.uniform(-args.max_skew, args.max_skew)]
        for host, skew in zip(hosts, skews, strict=True):
            host.skew_s = skew
            host.start().wait_ready()
        names, chaos = run_chaos(hosts, args, rng)
        spool = hosts[0].spool
        try:
            wait_until(lambda: set(places(spool)[0]) >= set(names), args.drain, "the drain")
        except AssertionError as exc:
            print(f"note: {exc}")
        for host in hosts:
            host.stop()
        published, pending = places(spool)
        evs = read_events(spool)
        skew_of = {h.name: h.skew_s for h in hosts}
        total, from_live, delays = recoveries(evs, chaos, skew_of, args.lease_ttl)
        loops = error_loops(hosts)
        print(f"skews: {', '.join(f'{h.name} {h.skew_s:+.0f} s' for h in hosts)}")
        kinds = Counter(e["event"] for e in evs)
        print(f"events: {len(evs)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")
        print(
            f"kills: {sum(map(len, chaos.kills.values()))}, freezes: {sum(map(len, chaos.freezes.values()))}"
        )
        lost = [n for n in names if n not in published and n not in pending]
        if lost:
            print(f"  lost: {', '.join(lost[:20])}")
        report(BENCH, "jobs submitted", len(names))
        report(BENCH, "jobs published", sum(1 for n in names if published[n]))
        report(BENCH, "jobs lost", len(lost), target="0")
        report(BENCH, "jobs still queued or running", len(set(names) & pending - set(published)))
        report(BENCH, "jobs published twice", sum(1 for n in names if published[n] > 1), target="0")
        report(BENCH, "claims recovered", total)
        report(BENCH, "claims taken from live hosts", from_live, target="0")
        report(BENCH, "error loops", sum(loops.values()), target="0", per_host=loops)
        for who, values in delays.items():
            if values:
                name = f"death to rerun, recovered by the {who} host"
                report(BENCH, f"{name}, median", statistics.median(values), "s", n=len(values))
                report(BENCH, f"{name}, max", max(values), "s", n=len(values))
            else:
                report(BENCH, f"death to rerun, recovered by the {who} host", "none measured")


if __name__ == "__main__":
    main()
