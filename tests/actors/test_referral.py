"""ReferralBucket against real Redis and the sandbox: every commission counted once, skips, payouts.

Commissions are planted in the sandbox's own books (a casino ledger credit, a wallet or trading
earnings row) so the amounts are exact; everything the actor does goes over HTTP.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from actors.flows import external_flows
from actors.ledger import read_ledger
from actors.referral import ReferralBucket, build, referral_venue_factory, state_key
from messages.envelope import seeded_ids, wrap
from messages.referral_msgs import ReferralPayoutLanded, SweepReferrals
from runtime.atomic import AtomicSteps
from runtime.bus import HandlerRejected
from runtime.journal import read_journal
from sandbox import casino as casino_sandbox
from tests.kit.referral import deliver, ledger, onboard, pending, redeliver

pytestmark = pytest.mark.redis

WEEK_MS = 7 * 24 * 3600 * 1000
_n = iter(range(10**6))


# ---------------------------------------------------------------- planting commissions


def creds(rclient, keys, agent) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in rclient.hgetall(keys.credentials(agent)).items()}


def casino_commission(sandbox, casino_id: str, micros: int) -> None:
    ctx = sandbox.ctx
    bet = f"bet_t{next(_n)}"
    with ctx.store.tx() as conn:
        casino_sandbox.post_entry(ctx, conn, casino_id, "credit", micros, f"referral_commission_l1:{bet}", bet)
    ctx.clock.advance(1_000)  # time passes before the next sweep: that ledger second is closed


def payout_commission(sandbox, service: str, referrer: str, micros: int) -> None:
    n = next(_n)
    now = sandbox.ctx.clock.now_ms()
    if service == "wallet":
        sandbox.ctx.store.execute(
            "INSERT INTO wallet_referral_earnings(id, referrer_id, referred_id, swap_id, fee_micros, "
            "commission_micros, created_ms) VALUES (?, ?, 'ag_other', ?, ?, ?, ?)",
            (f"re_t{n}", referrer, f"swap_t{n}", micros * 10, micros, now))
    else:
        sandbox.ctx.store.execute(
            "INSERT INTO trading_referral_earnings(id, referrer_id, referred_id, fee_micros, commission_micros, "
            "order_id, created_ms) VALUES (?, ?, 'ag_other', ?, ?, ?, ?)",
            (f"te_t{n}", referrer, micros * 5, micros, f"ord_t{n}", now))


def withdrawal_rows(sandbox, service: str, referrer: str) -> list:
    return sandbox.ctx.store.all(f"SELECT amount_micros, status FROM {service}_referral_withdrawals "
                                 "WHERE referrer_id = ?", (referrer,))


def bodies(rclient, keys, agent, name: str) -> list:
    return [e.body for e in read_journal(rclient, keys, agent) if type(e.body).__name__ == name]


def sweep_env(agent, clock, seed):
    return wrap(SweepReferrals(), agent=agent, now_ms=clock.now_ms(), new_id=seeded_ids(seed, "c"))


@pytest.fixture
def agent(steps, sandbox, clock):
    name = f"ref{next(_n)}"
    onboard(steps, sandbox, name, clock)
    return name


@pytest.fixture
def actor(steps, sandbox, clock):
    ref = build(steps, clock, seeded_ids(99, "e"), sandbox.urls)
    yield ref
    ref.stop()


class CrashBeforeCommit(AtomicSteps):
    """The worker dies after the venue calls, before its commit: the first commit never happens."""

    def __init__(self, client, keys):
        super().__init__(client, keys)
        self.crashes = 1

    def commit(self, commit, msg_id, now_ms):
        if self.crashes:
            self.crashes -= 1
            raise ConnectionError("worker killed before its commit")
        return super().commit(commit, msg_id, now_ms)


# ---------------------------------------------------------------- the weekly sweep


def performance(rclient, keys, agent) -> int:
    """What the breakers measure, from its definition: the ledger's total less the external flows."""
    return read_ledger(rclient, keys, agent).total - external_flows(rclient, keys, agent)["total"]


def test_a_weekly_sweep_counts_each_commission_once(steps, sandbox, clock, agent, actor, rclient, keys):
    ids = creds(rclient, keys, agent)
    casino_commission(sandbox, ids["casino_agent_id"], 750_000)
    casino_commission(sandbox, ids["casino_agent_id"], 500_000)
    payout_commission(sandbox, "wallet", ids["wallet_agent_id"], 2_400_000)
    payout_commission(sandbox, "trading", ids["trading_agent_id"], 1_300_000)
    start = ledger(rclient, keys, agent)
    level = performance(rclient, keys, agent)

    first = deliver(rclient, keys, "referral", sweep_env(agent, clock, 1))
    actor.ask(first)
    book = ledger(rclient, keys, agent)
    assert performance(rclient, keys, agent) == level  # commission is an inflow, not a win (docs/policy.md)
    assert book["referral"] - start["referral"] == 1_250_000  # casino commissions: in hand at once
    assert book["referral:in_transit"] == 3_700_000  # wallet + trading: requested, pending
    assert [tuple(r) for r in withdrawal_rows(sandbox, "wallet", ids["wallet_agent_id"])] == [(2_400_000, "pending")]
    assert [tuple(r) for r in withdrawal_rows(sandbox, "trading", ids["trading_agent_id"])] == [(1_300_000, "pending")]
    [swept] = bodies(rclient, keys, agent, "ReferralSwept")
    assert swept.credited == {"casino": 1_250_000, "wallet": 2_400_000, "trading": 1_300_000}
    assert swept.withdrawals == {"wallet": 2_400_000, "trading": 1_300_000}
    assert swept.in_transit == 3_700_000 and swept.income == 1_250_000
    assert rclient.xlen(keys.agent_commands(agent, "risk")) == 1  # RiskGuard told, in the same step
    assert pending(rclient, keys, agent, "referral") == 0

    actor.ask(redeliver(first))  # the same entry again: acknowledged, nothing applied twice
    again = deliver(rclient, keys, "referral", sweep_env(agent, clock, 2))
    actor.ask(again)  # a second sweep in the same week
    assert ledger(rclient, keys, agent) == book
    assert len(bodies(rclient, keys, agent, "ReferralSwept")) == 1
    [skip] = bodies(rclient, keys, agent, "ReferralSweepSkipped")
    assert skip.reason == "not_due" and skip.next_due_ms == clock.now_ms() + WEEK_MS

    # A week on: only what was earned since is counted.
    clock.advance(WEEK_MS)
    casino_commission(sandbox, ids["casino_agent_id"], 300_000)
    payout_commission(sandbox, "wallet", ids["wallet_agent_id"], 1_100_000)
    actor.ask(deliver(rclient, keys, "referral", sweep_env(agent, clock, 3)))
    later = bodies(rclient, keys, agent, "ReferralSwept")[-1]
    assert later.credited == {"casino": 300_000, "wallet": 1_100_000}
    assert later.withdrawals == {"wallet": 1_100_000}
    after = ledger(rclient, keys, agent)
    assert performance(rclient, keys, agent) == level
    assert after["referral"] - start["referral"] == 1_550_000
    assert after["referral:in_transit"] == 4_800_000
    assert pending(rclient, keys, agent, "referral") == 0


def test_a_redelivery_after_a_crash_counts_once(steps, sandbox, clock, agent, rclient, keys):
    ids = creds(rclient, keys, agent)
    casino_commission(sandbox, ids["casino_agent_id"], 420_000)
    payout_commission(sandbox, "wallet", ids["wallet_agent_id"], 3_000_000)
    payout_commission(sandbox, "trading", ids["trading_agent_id"], 2_000_000)
    start = ledger(rclient, keys, agent)
    crashing = CrashBeforeCommit(steps.client, keys)
    actor = ReferralBucket.start(crashing, clock, seeded_ids(7, "e"),
                                 referral_venue_factory(steps.client, keys, sandbox.urls))
    try:
        first = deliver(rclient, keys, "referral", sweep_env(agent, clock, 4))
        with pytest.raises(ConnectionError):
            actor.ask(first)  # the venues were asked to pay out; the commit never happened
        assert ledger(rclient, keys, agent) == start
        actor.ask(redeliver(first))  # the bus hands the entry over again
    finally:
        actor.stop()
    book = ledger(rclient, keys, agent)
    assert book["referral"] - start["referral"] == 420_000
    assert book["referral:in_transit"] == 5_000_000
    assert len(withdrawal_rows(sandbox, "wallet", ids["wallet_agent_id"])) == 1  # asked once
    assert len(withdrawal_rows(sandbox, "trading", ids["trading_agent_id"])) == 1
    [swept] = bodies(rclient, keys, agent, "ReferralSwept")
    assert swept.credited == {"casino": 420_000, "wallet": 3_000_000, "trading": 2_000_000}
    assert pending(rclient, keys, agent, "referral") == 0


class Interleaved(AtomicSteps):
    """Runs `before_commit` (another sweep, in another actor) between this sweep's reads and its commit."""

    before_commit = None

    def commit(self, commit, msg_id, now_ms):
        hook, self.before_commit = self.before_commit, None
        if hook:
            hook()
        return super().commit(commit, msg_id, now_ms)


def test_two_racing_sweeps_cannot_both_count(steps, sandbox, clock, agent, actor, rclient, keys):
    ids = creds(rclient, keys, agent)
    casino_commission(sandbox, ids["casino_agent_id"], 900_000)
    payout_commission(sandbox, "wallet", ids["wallet_agent_id"], 1_500_000)
    start = ledger(rclient, keys, agent)
    slow_steps = Interleaved(steps.client, keys)
    slow = ReferralBucket.start(slow_steps, clock, seeded_ids(8, "e"),
                                referral_venue_factory(steps.client, keys, sandbox.urls))
    fast_entry = deliver(rclient, keys, "referral", sweep_env(agent, clock, 6))
    slow_steps.before_commit = lambda: actor.ask(fast_entry)
    try:
        with pytest.raises(RuntimeError, match="refused"):
            slow.ask(deliver(rclient, keys, "referral", sweep_env(agent, clock, 5)))
    finally:
        slow.stop()
    book = ledger(rclient, keys, agent)
    assert book["referral"] - start["referral"] == 900_000
    assert book["referral:in_transit"] == 1_500_000
    assert len(bodies(rclient, keys, agent, "ReferralSwept")) == 1


def test_below_minimum_and_not_due_are_skipped(steps, sandbox, clock, agent, actor, rclient, keys):
    ids = creds(rclient, keys, agent)
    payout_commission(sandbox, "wallet", ids["wallet_agent_id"], 400_000)  # $0.40: under the $1 minimum
    start = ledger(rclient, keys, agent)
    actor.ask(deliver(rclient, keys, "referral", sweep_env(agent, clock, 7)))
    [skip] = bodies(rclient, keys, agent, "ReferralSweepSkipped")
    assert skip.reason == "below_minimum" and skip.available == {"wallet": 400_000, "trading": 0}
    assert withdrawal_rows(sandbox, "wallet", ids["wallet_agent_id"]) == []
    assert ledger(rclient, keys, agent) == start

    clock.advance(WEEK_MS - 1)
    actor.ask(deliver(rclient, keys, "referral", sweep_env(agent, clock, 8)))
    assert bodies(rclient, keys, agent, "ReferralSweepSkipped")[-1].reason == "not_due"

    clock.advance(1)  # exactly a week: due; the $0.40 plus $0.70 more is now worth a payout
    payout_commission(sandbox, "wallet", ids["wallet_agent_id"], 700_000)
    actor.ask(deliver(rclient, keys, "referral", sweep_env(agent, clock, 9)))
    [swept] = bodies(rclient, keys, agent, "ReferralSwept")
    assert swept.credited == {"wallet": 1_100_000} and swept.withdrawals == {"wallet": 1_100_000}
    assert pending(rclient, keys, agent, "referral") == 0


def test_a_full_casino_ledger_page_is_topped_up_from_the_referral_stats(steps, sandbox, clock, agent, actor,
                                                                         rclient, keys):
    ids = creds(rclient, keys, agent)
    for _ in range(60):  # more commissions than the 50-entry ledger page shows
        casino_commission(sandbox, ids["casino_agent_id"], 10_000)
    start = ledger(rclient, keys, agent)
    actor.ask(deliver(rclient, keys, "referral", sweep_env(agent, clock, 10)))
    assert ledger(rclient, keys, agent)["referral"] - start["referral"] == 600_000

    clock.advance(WEEK_MS)
    casino_commission(sandbox, ids["casino_agent_id"], 20_000)
    actor.ask(deliver(rclient, keys, "referral", sweep_env(agent, clock, 11)))
    assert ledger(rclient, keys, agent)["referral"] - start["referral"] == 620_000


# ---------------------------------------------------------------- payouts landing


def test_payouts_land_once_from_the_wallet_report_or_a_confirmation(steps, sandbox, clock, agent, actor,
                                                                    rclient, keys):
    ids = creds(rclient, keys, agent)
    payout_commission(sandbox, "wallet", ids["wallet_agent_id"], 2_000_000)
    payout_commission(sandbox, "trading", ids["trading_agent_id"], 1_200_000)
    actor.ask(deliver(rclient, keys, "referral", sweep_env(agent, clock, 12)))
    start = ledger(rclient, keys, agent)
    assert start["referral:in_transit"] == 3_200_000

    # Trading reports no paid payouts: an operator confirms the one that arrived.
    [swept] = bodies(rclient, keys, agent, "ReferralSwept")
    landed = ReferralPayoutLanded(source="trading", amount=1_200_000, withdrawal_id=swept.withdrawal_ids["trading"])
    actor.ask(deliver(rclient, keys, "referral", wrap(landed, agent=agent, now_ms=clock.now_ms(),
                                                      new_id=seeded_ids(13, "c"))))
    actor.ask(deliver(rclient, keys, "referral", wrap(landed, agent=agent, now_ms=clock.now_ms(),
                                                      new_id=seeded_ids(14, "c"))))  # told twice
    book = ledger(rclient, keys, agent)
    assert book["referral:in_transit"] == 2_000_000 and book["referral"] - start["referral"] == 1_200_000
    too_much = ReferralPayoutLanded(source="trading", amount=1)
    with pytest.raises(HandlerRejected):
        actor.ask(deliver(rclient, keys, "referral", wrap(too_much, agent=agent, now_ms=clock.now_ms(),
                                                          new_id=seeded_ids(15, "c"))))

    # The wallet marks its payout paid; the next sweep sees it in the stats.
    sandbox.ctx.store.execute("UPDATE wallet_referral_withdrawals SET status = 'completed' WHERE referrer_id = ?",
                              (ids["wallet_agent_id"],))
    clock.advance(WEEK_MS)
    actor.ask(deliver(rclient, keys, "referral", sweep_env(agent, clock, 16)))
    after = ledger(rclient, keys, agent)
    assert after["referral:in_transit"] == 0 and after["referral"] - start["referral"] == 3_200_000
    assert bodies(rclient, keys, agent, "ReferralSwept")[-1].landed == {"wallet": 2_000_000}
    state = {k.decode(): int(v) for k, v in rclient.hgetall(state_key(keys, agent)).items()
             if k.decode() in ("income", "at:chain")}
    assert state == {"income": 3_200_000, "at:chain": 3_200_000}
    assert sum(after.values()) == sum(start.values())  # landing moves money, it adds none
    assert Counter(type(e.body).__name__ for e in read_journal(rclient, keys, agent))["ReferralPayoutConfirmed"] == 1


def test_concurrent_deliveries_of_one_sweep_do_not_double_count(steps, sandbox, clock, agent, actor, rclient, keys):
    ids = creds(rclient, keys, agent)
    casino_commission(sandbox, ids["casino_agent_id"], 330_000)
    start = ledger(rclient, keys, agent)
    first = deliver(rclient, keys, "referral", sweep_env(agent, clock, 17))
    threads = [threading.Thread(target=lambda: actor.ask(redeliver(first))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger(rclient, keys, agent)["referral"] - start["referral"] == 330_000
