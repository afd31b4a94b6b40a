"""The fault trials: a busy run (`BusyRun`), one kind of fault at seeded random points, then the
checks (`BusyRun.violations`). Each returns a `TrialResult`; `tests/faults/test_fault_suite.py`
runs them, a few in the default run and many behind `-m soak`.

Kinds:
- `worker_kill`   SIGKILL of a random worker process, twice, while bets are in flight;
- `redis_kill`    SIGKILL of the embedded redis-server (AOF, fsync always); the supervisor restarts it;
- `supervisor_kill` SIGKILL of the supervisor process; its workers drain and exit; a new one starts;
- `aof_suffix`    an OS crash on `appendfsync everysec`: Redis killed and the last part of its AOF
                  cut off at a random byte (up to the writes of the last stretch of the run), then
                  restarted; the publisher signs again what it never saw finish (same message ids);
- `venue_outage`  the venue drops every request for a while (half of them after doing the work, so
                  the outcome is unknown) and then answers again.
Every trial also publishes raw garbage on the command streams, and (except `aof_suffix`, where a
committed pause may itself be part of the lost suffix) pauses one agent mid-run.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.kit.faults import BusyRun

KINDS = ("worker_kill", "redis_kill", "supervisor_kill", "aof_suffix", "venue_outage")


@dataclass
class TrialResult:
    kind: str
    seed: int
    commands: int
    violations: list[str] = field(default_factory=list)
    notes: dict = field(default_factory=dict)


def garbage(run: BusyRun, rng: random.Random) -> None:
    """Raw bytes of every bad kind on the command streams: each must be dead-lettered, nothing else."""
    stream = run.keys.agent_commands(rng.choice(run.agents), "casino")
    for raw in (b"\xc1", b"\x91" * 2000 + b"\x90", os.urandom(rng.randint(1, 200)), b"\x81\xa1m\xa1x"):
        run.client.xadd(stream, {"m": raw})


def aof_file(data_dir: Path) -> Path:
    """The file Redis appends to: `appendonly.aof` (6.2) or the newest incr file (7+)."""
    single = data_dir / "appendonly.aof"
    if single.exists():
        return single
    parts = sorted((data_dir / "appendonlydir").glob("*.incr.aof"), key=lambda p: p.stat().st_mtime)
    return parts[-1]


def run_trial(kind: str, seed: int, tmp: Path, bets: int = 12) -> TrialResult:
    rng = random.Random(seed)
    run = BusyRun(tmp, seed, supervisor_in_process=kind != "supervisor_kill")
    if kind == "aof_suffix":
        run.redis.appendfsync = "everysec"
    with run:
        run.wait(lambda: len(run.worker_pids()) == 2, 60, "the workers")
        garbage(run, rng)
        fault_at = sorted(rng.sample(range(2, bets), 2))
        floor = 0
        notes: dict = {}
        for i in range(bets):
            run.bet()
            if i == bets // 2 and kind != "aof_suffix":
                run.pause(rng.choice(run.agents))
            if i == 1 and kind == "aof_suffix":
                run.wait_all_terminal(60)
                floor = aof_file(run.redis.data_dir).stat().st_size  # agents and first bets: kept
            if i in fault_at:
                time.sleep(rng.uniform(0, 0.3))  # somewhere in the middle of the work in flight
                notes.update(inject(kind, run, rng, floor, second=i == fault_at[1]) or {})
            time.sleep(rng.uniform(0, 0.05))
        if kind == "aof_suffix":
            run.wait(lambda: len(run.worker_pids()) == 2, 60, "the workers after the crash")
            notes["republished"] = run.republish_unfinished()
        if kind == "venue_outage":
            run.admin.set_faults(drop_rate=0.0)
        run.wait_all_terminal(180)
        if kind == "aof_suffix":  # the lost suffix may have taken terminal events away again
            time.sleep(1)
            run.republish_unfinished()
            run.wait_all_terminal(120)
        violations = run.violations()
        notes["dead_lettered"] = sum(run.client.xlen(run.keys.dead(s)) for s in range(run.keys.shards))
        notes["venue_bets"] = run.admin.idempotency_summary()["successes"]
        return TrialResult(kind, seed, len(run.sent), violations, notes)


def inject(kind: str, run: BusyRun, rng: random.Random, floor: int, second: bool) -> dict | None:
    if kind == "worker_kill":
        os.kill(rng.choice(run.worker_pids()), signal.SIGKILL)
    elif kind == "redis_kill":
        if not second:  # once is the trial; the second point is left to run through
            run.redis.kill()
    elif kind == "supervisor_kill":
        if not second:
            run.supervisor_proc.send_signal(signal.SIGKILL)
            run.supervisor_proc.wait(10)
            time.sleep(rng.uniform(0.5, 2.0))  # its workers notice and drain out
            run.start_supervisor()
    elif kind == "aof_suffix":
        if second:
            return
        for pid in run.worker_pids():  # the machine goes down: every process at once
            os.kill(pid, signal.SIGKILL)
        run.redis.kill()
        path = aof_file(run.redis.data_dir)
        size = path.stat().st_size
        cut = rng.randint(floor, size) if size > floor else size
        with open(path, "r+b") as f:
            f.truncate(cut)
        notes = {"aof_bytes": size, "aof_cut": size - cut}
        run.stop_supervisor()
        run.redis.restart()
        run.start_supervisor()
        return notes
    elif kind == "venue_outage":
        if not second:
            run.admin.set_faults(drop_rate=1.0, after_ratio=0.5, seed=rng.randint(0, 10**6))
        else:
            run.admin.set_faults(drop_rate=0.0)
