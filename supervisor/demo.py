"""`treasury demo`: one agent, a seeded session of casino bets, played until a breaker fires.

It runs the real thing end to end: a Redis server (embedded unless REDIS_URL is set), the
sandbox venue over HTTP, and the CasinoBucket and RiskGuard actors in two worker processes
exchanging typed messages over Redis streams. The driver sends one `PlaceBet` at a time, waits
for its outcome in the journal and for RiskGuard to have judged it, so the same seed always tells
the same story. Time is a simulated clock shared by every process (30 s per bet).
"""

from __future__ import annotations

import itertools
import random
import time
import uuid
from dataclasses import dataclass, field

from actors.ledger import read_ledger, read_risk
from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BetRefused, BetRejected, BetSettled, CoinFlip, Dice, Multiplier, PlaceBet, RiskStateChanged
from runtime.atomic import AtomicSteps
from runtime.bus import command_client
from runtime.clock import RedisClock
from runtime.journal import JournalFollower, wait_caught_up
from runtime.keyring import generate_key
from runtime.keys import DEFAULT_SHARDS, Keys
from runtime.signing import sign
from supervisor.paper import open_paper_casino_agent
from supervisor.processes import redis_for_run, spawn_worker
from supervisor.scenario_harness import forget_prefix

DEMO_START_MS = 1_767_258_000_000  # 2026-01-01T09:00:00Z
STEP_MS = 30_000
AGENT = "demo-agent"


@dataclass
class Tally:
    placed: int = 0
    won: int = 0
    lost: int = 0
    staked: int = 0
    paid_out: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)

    def record(self, body) -> None:
        if isinstance(body, BetSettled):
            self.placed += 1
            self.staked += body.stake
            self.paid_out += body.payout
            if body.pnl > 0:
                self.won += 1
            else:
                self.lost += 1
        elif isinstance(body, BetRefused):
            self.refused[body.code] = self.refused.get(body.code, 0) + 1
        elif isinstance(body, BetRejected):
            self.failed[body.code] = self.failed.get(body.code, 0) + 1


def next_bet(rng: random.Random) -> PlaceBet:
    """The demo agent's habits: mostly long shots it believes it has an edge on, some coin flips
    on the house's odds (refused: no edge), some fixed-stake dice it explicitly opted into."""
    r = rng.random()
    if r < 0.15:
        return PlaceBet(game=CoinFlip(side=rng.choice(["heads", "tails"])), kelly="half")
    if r < 0.30:
        return PlaceBet(game=Dice(direction="over", threshold=50), fixed_stake=parse_usd("1.00"))
    return PlaceBet(game=Multiplier(target=10.0), win_prob=0.12, kelly="full")


def run_demo(seed: int = 7, capital_usd: str = "1000", max_bets: int = 1500) -> dict:
    from sandbox.runner import start_sandbox
    from venue.client.casino import CasinoClient

    started = time.monotonic()
    capital = parse_usd(capital_usd, field="capital")
    with redis_for_run() as (url, embedded), start_sandbox(seed=seed) as sandbox:
        prefix = "tr" if embedded else f"demo-{seed}-{uuid.uuid4().hex[:10]}"
        keys = Keys(prefix, DEFAULT_SHARDS)
        client = command_client(url)
        clock = RedisClock(client, Keys(prefix).clock())
        clock.set(DEMO_START_MS)
        steps = AtomicSteps(client, keys)
        new_id = seeded_ids(seed, prefix="cmd")

        casino_url = sandbox.urls["casino"]
        open_paper_casino_agent(steps, AGENT, capital, casino_url, now_ms=clock.now_ms(), new_id=new_id)
        casino_key = client.hget(keys.credentials(AGENT), "casino_key").decode()

        signing_key = generate_key("demo-agent-key", "agent")
        common = dict(prefix=prefix, shard_count=DEFAULT_SHARDS, casino_url=casino_url,
                      clock=f"redis:{Keys(prefix).clock()}",
                      env={"TREASURY_KEYS": signing_key.env_entry()})
        workers = [spawn_worker("casino", url, **common), spawn_worker("risk", url, **common)]
        try:
            tally, stop_reason, probe, journal = _play(client, keys, clock, new_id, seed, max_bets, signing_key)
        finally:
            exit_codes = {w.role: w.terminate() for w in workers}
        summary = _summary(client, keys, seed, capital, tally, stop_reason, probe, journal)
        venue_balance = CasinoClient(casino_url, casino_key).balance().balance
        casino_total = read_ledger(client, keys, AGENT).bucket("casino")
        summary["conservation"] = {
            "casino_bucket_micros": casino_total, "venue_casino_balance_micros": venue_balance,
            "matches": casino_total == venue_balance,
        }
        summary["timing"] = {
            "wall_ms": round((time.monotonic() - started) * 1000),
            "redis": "embedded" if embedded else "REDIS_URL",
            "workers": {w.role: {"pid": w.pid, "exit_code": exit_codes[w.role]} for w in workers},
        }
        client.close()
        if not embedded:
            forget_prefix(url, prefix)
        return summary


def _play(client, keys: Keys, clock: RedisClock, new_id, seed: int, max_bets: int, signing_key):
    rng = random.Random(seed)
    follower = JournalFollower(client, keys, AGENT)
    tally = Tally()
    cmd_stream = keys.agent_commands(AGENT, "casino")
    risk_stream = keys.agent_commands(AGENT, "risk")
    counter = itertools.count()
    env_nonce_prefix = f"demo{seed:08d}"  # reproducible nonces: the demo's JSON must not vary

    def send(bet: PlaceBet):
        now = clock.now_ms()
        env = sign(wrap(bet, agent=AGENT, now_ms=now, new_id=new_id), signing_key, now_ms=now,
                   nonce=f"{env_nonce_prefix}{next(counter):012d}")
        client.xadd(cmd_stream, {FIELD: encode(env)})
        outcome = follower.wait_for(env.id, (BetSettled, BetRefused, BetRejected))
        wait_caught_up(client, risk_stream, "g:risk")  # RiskGuard has judged this bet
        return outcome.body

    for _ in range(max_bets):
        body = send(next_bet(rng))
        tally.record(body)
        clock.advance(STEP_MS)
        risk = read_risk(client, keys, AGENT)
        if risk.state != "ACTIVE":
            probe = send(next_bet(rng))  # one more bet: the fence must refuse it
            return tally, f"breaker {risk.breaker} fired: {risk.reason}", probe, follower.seen
    return tally, f"bet limit of {max_bets} reached with no breaker fired", None, follower.seen


def breakers_fired(journal) -> list[dict]:
    """Every risk-state change in the journal, with how long it holds in milliseconds (`hold_ms`;
    None: until an operator) and until when (`until_ms`, epoch ms)."""
    return [{"breaker": e.body.breaker, "state": e.body.state, "reason": e.body.reason,
             "hold_ms": e.body.until_ms - e.created_ms if e.body.until_ms else None, "until_ms": e.body.until_ms}
            for e in journal if isinstance(e.body, RiskStateChanged)]


def _summary(client, keys: Keys, seed: int, capital: int, tally: Tally, stop_reason: str, probe, journal) -> dict:
    ledger = read_ledger(client, keys, AGENT)
    risk = read_risk(client, keys, AGENT)
    return {
        "seed": seed,
        "agent": AGENT,
        "capital_micros": capital,
        "bets": {
            "placed": tally.placed,
            "won": tally.won,
            "lost": tally.lost,
            "refused": dict(sorted(tally.refused.items())),
            "failed": dict(sorted(tally.failed.items())),
        },
        "staked_micros": tally.staked,
        "paid_out_micros": tally.paid_out,
        "pnl_micros": tally.paid_out - tally.staked,
        "buckets_micros": {b: ledger.bucket(b) for b in sorted(ledger.available)},
        "total_micros": ledger.total,
        "risk": {
            "state": risk.state,
            "breaker": risk.breaker,
            "reason": risk.reason,
            "peak_micros": risk.peak,
            "day_start_micros": risk.day_start,
        },
        "breakers_fired": breakers_fired(journal),
        "stopped_because": stop_reason,
        "after_stop": (
            {
                "type": type(probe).__name__,
                "code": getattr(probe, "code", None),
                "reason": getattr(probe, "reason", None),
            }
            if probe is not None
            else None
        ),
        "journal_events": client.xlen(keys.events(AGENT)),
    }



