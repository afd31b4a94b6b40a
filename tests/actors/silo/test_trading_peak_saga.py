"""The probe's path end to end (real Redis, the sandbox, the real Rebalancer, SiloExecutor and
RiskGuard): money leaves trading for the reserve after a small real trading loss, the trading ->
wallet transfer is impossible and the held part comes back. RiskGuard evaluates after every single
step, and also with each step landing in the middle of its evaluation: the trading drawdown sees
the real loss only, never the move. And the planner no longer plans such a move at all: an
emergency rebalance that could only take money out of trading closes no position and moves nothing."""

from __future__ import annotations

import pytest

import actors.risk_guard as risk_guard_module
from actors.risk_guard import RiskGuard
from messages.envelope import seeded_ids
from messages.schema import BalancesChanged, BucketHalted
from messages.silo_msgs import HeldReturned, MoveFunds
from messages.treasury_msgs import FundsDebited, RebalancePlanned, RebalanceSkipped
from runtime.journal import group_caught_up
from tests.kit.rebalancer import usd
from tests.kit.silo import SILO_ROLES, SiloHarness

pytestmark = pytest.mark.redis

LOSS = usd("5")  # what closing the open position loses


@pytest.fixture
def h(redis_url, keys):
    harness = SiloHarness(redis_url, keys, trading_pnl=-LOSS)
    guard = RiskGuard.start(harness.steps, harness.clock, seeded_ids(51, prefix="g"))
    harness.buses["risk"] = harness._bus("risk", lambda d: guard.ask(d))
    yield harness
    harness.close()
    guard.stop()


def open_with_a_position(h) -> None:
    h.onboard(reserve="150", trading="650", casino="100", referral="100")  # reserve 15 %: under its 20 % floor
    c = h.steps.new_commit(h.agent)  # a position open: $100 of trading posted as margin
    c.incr(h.keys.ledger(h.agent), "trading", -usd("100")).incr(h.keys.ledger(h.agent), "trading:margin", usd("100"))
    h.steps.commit(c, "open-position", h.clock.now_ms())


def step_by_step(h, racing: bool, monkeypatch) -> int:
    """Deliver one entry at a time, RiskGuard judging after each; with `racing`, every entry is
    delivered while RiskGuard evaluates, between its read of the ledger and the rest of its reads
    (as on a deployment, where the bucket actors run beside RiskGuard)."""
    real, inside = risk_guard_module.read_ledger, []

    def read_then_step(client, keys, agent):
        view = real(client, keys, agent)
        if inside:
            h.pump_role(inside.pop())
        return view
    monkeypatch.setattr(risk_guard_module, "read_ledger", read_then_step)
    steps = 0
    for _ in range(400):
        moved = 0
        for role in SILO_ROLES:
            if racing and not group_caught_up(h.client, h.keys.agent_commands(h.agent, role), f"g:{role}"):
                inside.append(role)
                h.send(BalancesChanged(cause="tick"), role="risk")
                h.pump_role("risk")  # the role's entry is delivered inside this evaluation
                moved += 1
            else:
                moved += h.pump_role(role)
            while h.pump_role("risk"):
                moved += 1
        steps += moved
        if not moved:
            return steps
    raise AssertionError("the saga did not settle")


def risk_micros(h, name: str) -> int:
    return int(h.client.hget(h.keys.risk(h.agent), name))


@pytest.mark.parametrize("racing", [False, True], ids=["sequential", "racing"])
def test_a_move_out_of_trading_that_is_returned_is_not_a_trading_loss(h, racing, monkeypatch):
    h.onboard(reserve="400", trading="500", casino="100", referral="100")
    c = h.steps.new_commit(h.agent)  # a position closed at a real loss
    c.incr(h.keys.ledger(h.agent), "trading", -LOSS)
    h.steps.commit(c, "closed-at-a-loss", h.clock.now_ms())
    h.send(BalancesChanged(cause="position closed"), role="risk")
    h.send(MoveFunds(source="trading", dest="reserve", amount=usd("200.59"), reason="operator derisks"))
    step_by_step(h, racing, monkeypatch)
    out = [d for d in h.journal(FundsDebited) if d.source == "trading"]
    returned = [r for r in h.journal(HeldReturned) if r.source == "trading"]
    assert sum(d.amount for d in out) == sum(r.amount for r in returned) == usd("200.59")  # no API: returned
    assert h.journal(BucketHalted) == []
    value, peak = risk_micros(h, "trading_value"), risk_micros(h, "trading_peak")
    assert value == h.ledger().bucket("trading") == usd("500") - LOSS
    assert peak - value == LOSS  # the only trading loss is the real one, not $200.59 more


def test_an_emergency_rebalance_plans_no_move_out_of_trading_and_closes_no_position(h, monkeypatch):
    open_with_a_position(h)
    h.send(BalancesChanged(cause="operator adjustment"), role="risk")
    step_by_step(h, False, monkeypatch)
    skipped, = h.journal(RebalanceSkipped)
    assert "trading -> reserve" in skipped.reason and "no collateral withdrawal API" in skipped.reason
    assert h.journal(RebalancePlanned) == [] and h.trading.closes == 0
    assert h.fields()["trading:margin"] == usd("100")  # the position stays open: nothing could move
    assert h.journal(BucketHalted) == []
