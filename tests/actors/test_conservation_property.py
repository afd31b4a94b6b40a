"""Money is conserved whatever happens, in whatever order: a stateful property test on real Redis.

Random sequences of bets (reserved through the fence, then won, lost or released), transfer legs
between buckets (debited, credited, compensated, resent, in any interleaving), escrow locks and
unlocks, and risk-state changes, all applied through the real commit and fence scripts. After
every step: the sum of every bucket and every held kind equals the expected total (which moves
only by bet P&L and escrow pay-outs), no ledger field is negative, the reservations hash agrees
with the `:reserved` fields, in-transit money equals what the open legs hold; and at every
reservation, no bet above its 2 % cap and no spend while PAUSED or HALTED was granted.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from actors.bootstrap import open_treasury
from actors.ledger import HELD_KINDS, read_ledger
from actors.policy.breakers import bet_size
from actors.policy.buckets import DEFAULT_POLICY
from actors.transfers import TransferLegs, open_leg, read_leg
from messages.envelope import seeded_ids, wrap
from messages.schema import BUCKETS
from messages.treasury_msgs import CompensateLeg, CreditLeg, DebitLeg
from runtime.atomic import AtomicSteps
from runtime.bus import Delivery, command_client
from runtime.clock import ManualClock

pytestmark = pytest.mark.redis

START = {"reserve": 400_000_000, "trading": 350_000_000, "casino": 150_000_000, "referral": 100_000_000}

PROPERTY = settings(derandomize=True, max_examples=120, stateful_step_count=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

bucket = st.sampled_from(BUCKETS)
amount = st.integers(min_value=1, max_value=120_000_000)


class Treasury(RuleBasedStateMachine):
    """One agent's ledger, driven step by step; `expected` is what the total must be."""

    steps: AtomicSteps
    counter = itertools.count()

    def __init__(self):
        super().__init__()
        self.keys = self.steps.keys
        self.client = self.steps.client
        self.clock = ManualClock()
        self.agent = f"prop-{next(self.counter)}"
        self.ids = seeded_ids(next(self.counter), prefix="p")
        self.legs = TransferLegs(self.steps, self.clock, self.ids)
        self.expected = sum(START.values())
        self.state = "ACTIVE"
        self.bets: list[tuple[str, int]] = []          # (message id, stake) reserved, not settled
        self.locks: list[tuple[str, str, int]] = []    # (message id, bucket, amount) locked in escrow
        self.moves: list[tuple[str, int, str, str, int]] = []   # (saga, leg, source, dest, amount) opened
        self.entry = itertools.count(1)

    @initialize()
    def open(self):
        result = open_treasury(self.steps, self.agent, self.expected, now_ms=self.clock.now_ms(), new_id=self.ids,
                               buckets=dict(START))
        assert result.applied

    # ------------------------------------------------------------------ helpers

    def ledger(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.keys.ledger(self.agent)).items()}

    def commit(self, commit, msg_id: str):
        return self.steps.commit(commit, msg_id, self.clock.now_ms())

    def deliver(self, role: str, body) -> None:
        env = wrap(body, agent=self.agent, now_ms=self.clock.now_ms(), new_id=self.ids)
        delivery = Delivery(self.keys.agent_commands(self.agent, role), f"g:{role}", f"0-{next(self.entry)}", env, 1)
        assert self.legs.handle(delivery)

    def reserve(self, bucket_name: str, stake: int, cap: int) -> tuple[str, bool]:
        msg_id = self.ids()
        before = self.ledger().get(bucket_name, 0)
        result = self.steps.reserve(self.agent, msg_id, bucket_name, stake, cap, self.clock.now_ms())
        if self.state != "ACTIVE":
            assert not result.granted, f"a spend was reserved while {self.state}"
            assert result.status in ("paused", "halted")
        elif result.granted:
            assert stake <= cap and stake <= before
        else:
            assert result.status in ("over_cap", "insufficient"), result.status
            assert stake > cap or stake > before
        return msg_id, result.granted

    # ------------------------------------------------------------------ bets

    @rule(stake=st.integers(min_value=1, max_value=5_000_000))
    def place_bet(self, stake):
        bankroll = self.ledger()["casino"]
        cap = bankroll * DEFAULT_POLICY.max_bet_bp // 10_000
        msg_id, granted = self.reserve("casino", stake, cap)
        if granted:
            assert bet_size(stake, bankroll) is None, "a bet above its 2 % cap was reserved"
            self.bets.append((msg_id, stake))

    @precondition(lambda self: self.bets)
    @rule(data=st.data(), outcome=st.sampled_from(["win", "loss", "release"]), odds=st.integers(1, 30))
    def settle_bet(self, data, outcome, odds):
        msg_id, stake = self.bets.pop(data.draw(st.integers(0, len(self.bets) - 1)))
        payout = {"win": stake * odds // 10 + stake, "loss": 0, "release": stake}[outcome]
        k = self.keys
        commit = self.steps.new_commit(self.agent)
        commit.incr(k.ledger(self.agent), "casino:reserved", -stake).incr(k.ledger(self.agent), "casino", payout)
        commit.hdel(k.reservations(self.agent), msg_id)
        assert self.commit(commit, msg_id).applied
        self.expected += payout - stake

    # ------------------------------------------------------------------ escrow

    @rule(bucket_name=bucket, size=amount)
    def lock_escrow(self, bucket_name, size):
        msg_id, granted = self.reserve(bucket_name, size, 10**15)
        if not granted:
            return
        k = self.keys
        commit = self.steps.new_commit(self.agent)
        commit.incr(k.ledger(self.agent), f"{bucket_name}:reserved", -size)
        commit.incr(k.ledger(self.agent), f"{bucket_name}:locked", size)
        commit.hdel(k.reservations(self.agent), msg_id)
        assert self.commit(commit, msg_id).applied
        self.locks.append((msg_id, bucket_name, size))

    @precondition(lambda self: self.locks)
    @rule(data=st.data(), paid_out=st.booleans())
    def unlock_escrow(self, data, paid_out):
        _, bucket_name, size = self.locks.pop(data.draw(st.integers(0, len(self.locks) - 1)))
        k = self.keys
        commit = self.steps.new_commit(self.agent)
        commit.incr(k.ledger(self.agent), f"{bucket_name}:locked", -size)
        if not paid_out:                                   # refunded to the bucket; else it left the treasury
            commit.incr(k.ledger(self.agent), bucket_name, size)
        assert self.commit(commit, self.ids()).applied
        if paid_out:
            self.expected -= size

    # ------------------------------------------------------------------ transfers

    @rule(source=bucket, dest=bucket, size=amount)
    def start_move(self, source, dest, size):
        if source == dest:
            return
        saga, leg = self.ids(), 0
        commit = self.steps.new_commit(self.agent)
        open_leg(commit, self.keys, self.agent, saga, leg, source, dest, size)
        assert self.commit(commit, f"open-{saga}").applied
        self.moves.append((saga, leg, source, dest, size))
        available = self.ledger()[source]
        self.deliver(source, DebitLeg(saga=saga, leg=leg, source=source, dest=dest, amount=size, reason="property"))
        facts = read_leg(self.client, self.keys, self.agent, saga, leg)
        if self.state != "ACTIVE" and dest != "reserve":
            assert not facts.debited, f"money left {source} for {dest} while {self.state}"
        else:
            assert facts.debited == (size <= available)

    @precondition(lambda self: self.moves)
    @rule(data=st.data(), step=st.sampled_from(["credit", "compensate", "debit_again"]))
    def move_step(self, data, step):
        saga, leg, source, dest, size = data.draw(st.sampled_from(self.moves))
        if step == "credit":
            self.deliver(dest, CreditLeg(saga=saga, leg=leg, source=source, dest=dest, amount=size, reason="property"))
        elif step == "compensate":
            self.deliver(
                source, CompensateLeg(saga=saga, leg=leg, source=source, dest=dest, amount=size, reason="property")
            )
        else:
            self.deliver(source, DebitLeg(saga=saga, leg=leg, source=source, dest=dest, amount=size, reason="property"))
        facts = read_leg(self.client, self.keys, self.agent, saga, leg)
        assert facts.token in (0, 1) and facts.settled in ("", "credit", "return")
        assert facts.transit + facts.credited + facts.returned == (size if facts.debited else 0)

    # ------------------------------------------------------------------ risk

    @rule(state=st.sampled_from(["ACTIVE", "PAUSED", "HALTED"]))
    def set_state(self, state):
        rk = self.keys.risk(self.agent)
        commit = self.steps.new_commit(self.agent)
        commit.next_seq(rk).hset(rk, "state", state).hset(rk, "reason", "property test").hset(rk, "until_ms", 0)
        assert self.commit(commit, self.ids()).applied
        self.state = state

    # ------------------------------------------------------------------ invariants

    @invariant()
    def total_is_conserved(self):
        view = read_ledger(self.client, self.keys, self.agent)
        if view.known():
            assert view.total == self.expected

    @invariant()
    def no_field_is_negative_and_held_money_is_accounted(self):
        fields = self.ledger()
        if not fields:
            return
        assert all(v >= 0 for v in fields.values()), fields
        assert set(fields) <= set(BUCKETS) | {f"{b}:{kind}" for b in BUCKETS for kind in HELD_KINDS}
        reservations = self.client.hvals(self.keys.reservations(self.agent))
        by_bucket = {b: 0 for b in BUCKETS}
        for value in reservations:
            name, held, *_ = value.decode().split("|")
            by_bucket[name] += int(held)
        assert by_bucket == {b: fields.get(f"{b}:reserved", 0) for b in BUCKETS}
        in_transit = {b: 0 for b in BUCKETS}
        for saga, leg, _s, dest, _a in self.moves:
            in_transit[dest] += read_leg(self.client, self.keys, self.agent, saga, leg).transit
        assert in_transit == {b: fields.get(f"{b}:in_transit", 0) for b in BUCKETS}


def test_money_is_conserved_under_any_sequence(redis_url, keys):
    client = command_client(redis_url)
    try:
        Treasury.steps = AtomicSteps(client, keys)
        run_state_machine_as_test(Treasury, settings=PROPERTY)
    finally:
        client.close()
