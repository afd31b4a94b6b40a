"""Fault injection: with each fault mode on, every safe spend happens exactly once or provably not
at all, and the sandbox's own records (bets, escrows, Idempotency-Key log, balances) agree.

Modes: 500 errors, dropped connections and garbage bodies, each striking BEFORE the handler
(nothing happened) or AFTER it (the spend is committed, the answer lost), plus latency, a
latency longer than the client's timeout, and a mix of everything from several threads.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest

from venue.client import CasinoClient, EscrowClient, SandboxAdmin
from venue.client.escrow import tag_description
from venue.errors import VenueNotApplied, VenueRejected, VenueUnavailable

HTTP = httpx.Client(timeout=10)
"""One pooled client for raw calls (a fresh client per call costs a TLS context)."""

BETS = 30
ESCROWS = 10
STAKE = 1_000_000  # $1 on coin flip (1.99×) keeps every payout in whole cents
ESCROW_AMOUNT = 2_000_000
TOLERANT = {"backoff_s": 0.0005, "max_backoff_s": 0.002, "retries": 8}
"""Lookups (GETs) retry hard, so an outcome is only unknown when the venue is truly gone."""


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    bets: dict = field(default_factory=dict)
    escrows: dict = field(default_factory=dict)


def outcome(call):
    try:
        result = call()
    except VenueNotApplied:
        return "not_applied", None
    except VenueRejected as exc:
        return f"rejected:{exc.code}", None
    except VenueUnavailable:
        return "unknown", None
    return ("recovered" if result.recovered else "ok"), result


def run_spends(handle, casino, escrow, counterparty, tally, prefix, *, bets=BETS, escrows=ESCROWS):
    for i in range(bets):
        seed = f"{prefix}-bet-{i}"
        kind, result = outcome(lambda seed=seed: casino.place_bet_once("coin_flip", STAKE, {"side": "heads"},
                                                                       client_seed=seed, idempotency_key=seed))
        tally.outcomes[f"bet_{kind}"] += 1
        tally.bets[seed] = (kind, result)
    for i in range(escrows):
        key = f"{prefix}-escrow-{i}"
        kind, result = outcome(lambda key=key: escrow.create_once(counterparty, ESCROW_AMOUNT, "deliver data",
                                                                  idempotency_key=key))
        tally.outcomes[f"escrow_{kind}"] += 1
        tally.escrows[key] = (kind, result)


def setup(sandbox_factory, faults, *, timeout_s=2.0):
    handle = sandbox_factory(seed=21)
    admin = SandboxAdmin(handle.root_url)
    casino = CasinoClient(handle.urls["casino"], timeout_s=timeout_s, **TOLERANT)
    reg = casino.register()
    worker = CasinoClient(handle.urls["casino"]).register()
    admin.credit(reg.agent_id, 999_000_000)
    escrow = EscrowClient(handle.urls["escrow"], reg.api_key, casino_url=handle.urls["casino"], timeout_s=timeout_s,
                          **TOLERANT)
    admin.set_faults(**faults)
    return handle, admin, casino, escrow, reg.agent_id, worker.agent_id


def verify(handle, admin, agent_id, tally, *, unknown_allowed=False):
    """Check every invariant against the sandbox's own records; returns Idempotency-Key log figures."""
    store = handle.ctx.store
    admin.set_faults()  # faults off: read the truth
    spent_twice = []
    for seed, (kind, result) in tally.bets.items():
        rows = store.all("SELECT id FROM casino_bets WHERE client_seed = ?", (seed,))
        if len(rows) > 1:
            spent_twice.append(seed)
        if kind in ("ok", "recovered"):
            assert len(rows) == 1 and rows[0]["id"] == result.bet_id, seed
        elif kind == "unknown":
            assert unknown_allowed, seed
        else:
            assert rows == [], (seed, kind)
    for key, (kind, result) in tally.escrows.items():
        rows = store.all("SELECT id FROM escrows WHERE description = ?", (tag_description("deliver data", key),))
        if len(rows) > 1:
            spent_twice.append(key)
        if kind in ("ok", "recovered"):
            assert len(rows) == 1 and rows[0]["id"] == result.escrow_id, key
        elif kind == "unknown":
            assert unknown_allowed, key
        else:
            assert rows == [], (key, kind)
    assert spent_twice == []
    # the Idempotency-Key log: no key reached a handler successfully twice
    summary = admin.idempotency_summary()
    assert summary["keys_succeeded_more_than_once"] == []
    # balances: the casino balance is exactly what the recorded bets and escrows explain
    bets = store.all("SELECT amount, amount_won FROM casino_bets WHERE agent_id = ?", (agent_id,))
    locked = store.scalar("SELECT COALESCE(SUM(amount), 0) FROM escrows WHERE creator_id = ?", (agent_id,))
    expected = 1_000_000 + 999_000_000 - sum(b["amount"] for b in bets) + sum(b["amount_won"] for b in bets) - locked
    balance = store.scalar("SELECT balance FROM casino_agents WHERE id = ?", (agent_id,))
    assert balance == expected
    # every bet on the venue belongs to a call, and every call reported done is on the venue
    on_venue = {r["client_seed"] for r in store.all("SELECT client_seed FROM casino_bets WHERE agent_id = ?",
                                                     (agent_id,))}
    reported = {seed for seed, (kind, _) in tally.bets.items() if kind in ("ok", "recovered")}
    unknown = {seed for seed, (kind, _) in tally.bets.items() if kind == "unknown"}
    assert reported <= on_venue <= reported | unknown
    return {"requests_logged": summary["requests"], "keys_retried": summary["keys_seen_more_than_once"]}


MODES = {
    "error_before": {"error_rate": 0.3, "after_ratio": 0.0},
    "error_after": {"error_rate": 0.3, "after_ratio": 1.0},
    "drop_before": {"drop_rate": 0.3, "after_ratio": 0.0},
    "drop_after": {"drop_rate": 0.3, "after_ratio": 1.0},
    "garbage_before": {"garbage_rate": 0.3, "after_ratio": 0.0},
    "garbage_after": {"garbage_rate": 0.3, "after_ratio": 1.0},
    "mixed": {"error_rate": 0.1, "drop_rate": 0.1, "garbage_rate": 0.1, "after_ratio": 0.5},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_no_spend_twice_and_none_lost(sandbox_factory, mode):
    handle, admin, casino, escrow, agent_id, worker = setup(sandbox_factory, {**MODES[mode], "seed": 5})
    tally = Tally()
    run_spends(handle, casino, escrow, worker, tally, mode)
    injected = admin.faults()["injected"]
    figures = verify(handle, admin, agent_id, tally)
    print(f"\n{mode}: outcomes={dict(tally.outcomes)} injected={injected} {figures}")
    assert sum(injected.values()) > 10  # the faults really happened
    recovered = tally.outcomes["bet_recovered"] + tally.outcomes["escrow_recovered"]
    if MODES[mode]["after_ratio"] == 0.0:
        assert recovered == 0  # a fault before the handler never leaves anything to find
        assert all(k.endswith("_before") for k in injected)
    elif MODES[mode]["after_ratio"] == 1.0:
        assert recovered > 0  # answers were lost after the spend, and the lookup found them
        assert all(k.endswith("_after") for k in injected)
    assert tally.outcomes["bet_unknown"] == tally.outcomes["escrow_unknown"] == 0
    assert tally.outcomes["bet_ok"] + tally.outcomes["bet_recovered"] >= BETS * 0.9
    casino.close()
    escrow.close()


def test_heavy_faults_end_in_not_applied_never_in_a_double_spend(sandbox_factory):
    """Most attempts fail before the handler: some spends give up, and provably did nothing."""
    handle, admin, casino, escrow, agent_id, worker = setup(
        sandbox_factory, {"error_rate": 0.35, "drop_rate": 0.35, "after_ratio": 0.0, "seed": 2})
    casino.retries = escrow.retries = 25  # lookups must get through for the proof
    tally = Tally()
    run_spends(handle, casino, escrow, worker, tally, "heavy", bets=20, escrows=6)
    injected = admin.faults()["injected"]
    verify(handle, admin, agent_id, tally)
    print(f"\nheavy: outcomes={dict(tally.outcomes)} injected={injected}")
    assert tally.outcomes["bet_not_applied"] + tally.outcomes["escrow_not_applied"] > 0
    assert tally.outcomes["bet_unknown"] == tally.outcomes["escrow_unknown"] == 0


def test_latency_slows_every_answer_but_changes_nothing(sandbox_factory):
    handle, admin, casino, escrow, agent_id, worker = setup(sandbox_factory, {"latency_ms": 40})
    tally = Tally()
    started = time.monotonic()
    run_spends(handle, casino, escrow, worker, tally, "latency", bets=5, escrows=2)
    elapsed = time.monotonic() - started
    assert elapsed >= 7 * 0.04
    assert tally.outcomes == Counter({"bet_ok": 5, "escrow_ok": 2})
    verify(handle, admin, agent_id, tally)


def test_latency_beyond_the_timeout_is_reported_unknown_never_doubled(sandbox_factory):
    handle, admin, casino, escrow, agent_id, worker = setup(sandbox_factory, {"latency_ms": 250}, timeout_s=0.1)
    casino.retries = 1
    escrow.retries = 1
    tally = Tally()
    run_spends(handle, casino, escrow, worker, tally, "slow", bets=3, escrows=1)
    # every answer (and every lookup) arrives too late: the client can only say "unknown"...
    assert tally.outcomes == Counter({"bet_unknown": 3, "escrow_unknown": 1})
    verify(handle, admin, agent_id, tally, unknown_allowed=True)
    # ...and the truth, read once the network is back, is exactly one spend each
    for seed in tally.bets:
        assert casino.find_bet(seed) is not None
    store = handle.ctx.store
    assert store.scalar("SELECT COUNT(*) FROM casino_bets WHERE agent_id = ?", (agent_id,)) == 3
    assert store.scalar("SELECT COUNT(*) FROM escrows WHERE creator_id = ?", (agent_id,)) == 1


def test_mixed_faults_from_several_threads(sandbox_factory):
    handle, admin, casino, escrow, agent_id, worker = setup(
        sandbox_factory, {"error_rate": 0.1, "drop_rate": 0.1, "garbage_rate": 0.1, "seed": 9})
    tallies = [Tally() for _ in range(4)]
    clients = [(CasinoClient(handle.urls["casino"], casino._key, **TOLERANT),
                EscrowClient(handle.urls["escrow"], casino._key, casino_url=handle.urls["casino"], **TOLERANT))
               for _ in tallies]
    threads = [threading.Thread(target=run_spends, args=(handle, c, e, worker, t, f"t{i}"),
                                kwargs={"bets": 10, "escrows": 3})
               for i, ((c, e), t) in enumerate(zip(clients, tallies, strict=True))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = Tally()
    for t in tallies:
        merged.outcomes.update(t.outcomes)
        merged.bets.update(t.bets)
        merged.escrows.update(t.escrows)
    injected = admin.faults()["injected"]
    verify(handle, admin, agent_id, merged, unknown_allowed=True)
    print(f"\nthreads: outcomes={dict(merged.outcomes)} injected={injected}")
    assert sum(injected.values()) > 0
    for c, e in clients:
        c.close()
        e.close()


def test_fault_kinds_look_like_real_failures(sandbox_factory):
    handle = sandbox_factory(seed=3)
    admin = SandboxAdmin(handle.root_url)
    url = handle.urls["escrow"] + "/escrow/stats"
    admin.set_faults(drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        HTTP.get(url)
    admin.set_faults(garbage_rate=1.0)
    r = HTTP.get(url)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    admin.set_faults(error_rate=1.0)
    r = HTTP.get(url)
    assert r.status_code == 500 and r.json()["error"] == "internal_error"
    # the admin routes are never faulted
    assert admin.health()["ok"]
    assert sum(admin.faults()["injected"].values()) == 1  # one faulted request since the last setting
    admin.set_faults()
    assert HTTP.get(url).status_code == 200


def test_faults_are_reproducible_from_their_seed(sandbox_factory):
    def pattern(seed):
        handle = sandbox_factory(seed=1, faults=None)
        SandboxAdmin(handle.root_url).set_faults(error_rate=0.5, seed=seed)
        return [HTTP.get(handle.urls["escrow"] + "/escrow/stats").status_code for _ in range(20)]

    assert pattern(4) == pattern(4) != pattern(5)
