"""The trading drawdown measures trading performance, never a deliberate move: a transfer out of
trading (and its return when the physical transfer fails) must not move the trading peak, even
when the transfer's commit lands while RiskGuard is part-way through an evaluation (real Redis)."""

from __future__ import annotations

import pytest

import actors.risk_guard as risk_guard_module
from actors.bootstrap import open_treasury
from actors.ledger import read_risk
from actors.risk_guard import RiskGuard
from actors.transfers import record_net_transfer
from messages.codec import FIELD, decode, encode
from messages.envelope import seeded_ids, wrap
from messages.money import parse_usd
from messages.schema import BalancesChanged, BucketHalted
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import ManualClock

pytestmark = pytest.mark.redis

AGENT = "peaky"
START = 1_767_258_000_000  # 2026-01-01T09:00Z
BUCKETS = {"reserve": "300", "trading": "500", "casino": "150", "referral": "50"}


class Guard:
    """RiskGuard on the real bus, with helpers that commit what the legs and the trading actor commit."""

    def __init__(self, redis_url, keys):
        self.keys, self.clock = keys, ManualClock(START)
        self.steps = AtomicSteps(command_client(redis_url), keys)
        self.ids = seeded_ids(7)
        open_treasury(self.steps, AGENT, sum(parse_usd(v) for v in BUCKETS.values()), now_ms=START, new_id=self.ids,
                      buckets={b: parse_usd(v) for b, v in BUCKETS.items()})
        self.actor = RiskGuard.start(self.steps, self.clock, self.ids)
        self.bus = StreamBus(redis_url, keys, "risk", [keys.shard(AGENT)], lambda d: self.actor.ask(d), block_ms=20)
        self.bus.ensure_groups()

    # ------------------------------------------------------------ what the actors commit

    def debit(self, amount: int) -> None:
        """The debit leg of trading -> reserve (`TransferLegs._debit_safe`): trading -> reserve:in_transit."""
        c, ledger = self.steps.new_commit(AGENT), self.keys.ledger(AGENT)
        c.incr(ledger, "trading", -amount).incr(ledger, "reserve:in_transit", amount)
        record_net_transfer(c, self.keys.flows(AGENT), "trading", "reserve", amount)
        self.steps.commit(c, self.ids(), self.clock.now_ms())

    def give_back(self, amount: int) -> None:
        """`ReturnHeld` (the physical transfer failed): reserve:in_transit -> trading."""
        c, ledger = self.steps.new_commit(AGENT), self.keys.ledger(AGENT)
        c.incr(ledger, "reserve:in_transit", -amount).incr(ledger, "trading", amount)
        record_net_transfer(c, self.keys.flows(AGENT), "reserve", "trading", amount)
        self.steps.commit(c, self.ids(), self.clock.now_ms())

    def lose(self, amount: int) -> None:
        """A real trading loss (a position closed at a loss)."""
        c = self.steps.new_commit(AGENT)
        c.incr(self.keys.ledger(AGENT), "trading", -amount)
        self.steps.commit(c, self.ids(), self.clock.now_ms())

    # ------------------------------------------------------------ RiskGuard

    def poke(self):
        self.steps.client.xadd(self.keys.agent_commands(AGENT, "risk"),
                               {FIELD: encode(wrap(BalancesChanged(cause="test"), agent=AGENT,
                                                   now_ms=self.clock.now_ms(), new_id=self.ids))})
        while self.bus.poll_once(wait=False):
            pass
        return read_risk(self.steps.client, self.keys, AGENT)

    def poke_while(self, monkeypatch, step) -> object:
        """Evaluate once with `step` committed just after RiskGuard read the ledger (a leg landing
        mid-evaluation, as on a deployment where the bucket actors run beside RiskGuard)."""
        real, done = risk_guard_module.read_ledger, []

        def racing(client, keys, agent):
            view = real(client, keys, agent)
            if not done:
                done.append(1)
                step()
            return view
        monkeypatch.setattr(risk_guard_module, "read_ledger", racing)
        try:
            return self.poke()
        finally:
            monkeypatch.setattr(risk_guard_module, "read_ledger", real)

    def risk_field(self, name: str) -> int:
        return int(self.steps.client.hget(self.keys.risk(AGENT), name))

    def halts(self) -> list[BucketHalted]:
        return [decode(f[FIELD]).body for _, f in self.steps.client.xrange(self.keys.events(AGENT))
                if isinstance(decode(f[FIELD]).body, BucketHalted)]

    def close(self) -> None:
        self.bus.close()
        self.actor.stop()


@pytest.fixture
def guard(redis_url, keys):
    g = Guard(redis_url, keys)
    yield g
    g.close()


MOVE = parse_usd("200.59")


def test_a_returned_move_out_of_trading_leaves_the_peak_where_it_was(guard):
    """Sequential: RiskGuard evaluates after the debit and after the return."""
    guard.poke()
    guard.debit(MOVE)
    assert "trading" not in guard.poke().halted_buckets
    guard.give_back(MOVE)
    assert "trading" not in guard.poke().halted_buckets
    assert guard.risk_field("trading_peak") == parse_usd("500")
    assert guard.halts() == []


def test_a_debit_landing_mid_evaluation_is_not_a_gain_and_its_return_is_not_a_loss(guard, monkeypatch):
    """The probe's sequence: the debit commits while RiskGuard evaluates (between its ledger and its
    flows reads), it evaluates again with the money out, then the held part comes back."""
    guard.poke()
    guard.poke_while(monkeypatch, lambda: guard.debit(MOVE))
    assert guard.risk_field("trading_peak") <= parse_usd("500")
    risk = guard.poke()
    assert "trading" not in risk.halted_buckets, guard.halts()
    guard.poke_while(monkeypatch, lambda: guard.give_back(MOVE))
    risk = guard.poke()
    assert "trading" not in risk.halted_buckets and guard.halts() == []
    assert guard.risk_field("trading_peak") == parse_usd("500")  # not $500 + the move
    assert guard.risk_field("trading_value") == parse_usd("500")


def test_a_return_landing_mid_evaluation_is_not_a_loss(guard, monkeypatch):
    guard.poke()
    guard.debit(MOVE)
    guard.poke()
    guard.poke_while(monkeypatch, lambda: guard.give_back(MOVE))
    guard.poke()
    assert guard.halts() == [] and guard.risk_field("trading_peak") == parse_usd("500")


def test_a_real_loss_beyond_20_percent_still_halts_trading_after_a_returned_move(guard, monkeypatch):
    guard.poke()
    guard.poke_while(monkeypatch, lambda: guard.debit(MOVE))
    guard.poke_while(monkeypatch, lambda: guard.give_back(MOVE))
    guard.lose(parse_usd("100"))  # exactly 20 % of $500
    assert "trading" not in guard.poke().halted_buckets
    guard.lose(1)
    assert "trading" in guard.poke().halted_buckets
