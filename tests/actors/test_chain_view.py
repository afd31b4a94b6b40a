"""The multi-chain view against the sandbox wallet: the 5-minute cache, the USD total, capped swaps."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from actors.chain_view import ChainView, read_addresses, wallet_client_factory
from actors.policy.buckets import PolicyError
from actors.policy.chains import CHAINS
from messages.envelope import seeded_ids
from messages.referral_msgs import ChainSwapRejected
from runtime.journal import read_journal
from tests.kit.referral import onboard

pytestmark = pytest.mark.redis

TTL_MS = 5 * 60_000
ETH = 10**18


class Counting:
    """A wallet client that counts the calls that reach it."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls += 1
            return attr(*args, **kwargs)

        return counted


def fund(sandbox, chain: str, address: str, token: str, units: int) -> None:
    r = httpx.post(f"{sandbox.urls['wallet']}/_sandbox/fund",
                   json={"chain": chain, "address": address, "token": token, "units": units})
    r.raise_for_status()


def force_slippage(sandbox, bps: int | None) -> None:
    httpx.post(f"{sandbox.urls['wallet']}/_sandbox/swap-slippage", json={"bps": bps}).raise_for_status()


@pytest.fixture
def agent(steps, sandbox, clock):
    onboard(steps, sandbox, "viv", clock)
    return "viv"


@pytest.fixture
def wallet(steps, sandbox, agent):
    return Counting(wallet_client_factory(steps.client, steps.keys, sandbox.urls["wallet"])(agent))


def test_balances_are_cached_five_minutes_then_read_again(steps, sandbox, clock, agent, wallet, rclient, keys):
    view = ChainView(rclient, keys, clock, lambda _: wallet)
    addr = read_addresses(rclient, keys, agent)
    fund(sandbox, "base", addr["base"], "USDC", 250_000_000)
    fund(sandbox, "tron", addr["tron"], "USDC", 50_000_000)
    fund(sandbox, "base", addr["base"], "native", ETH)

    first = view.balances(agent)
    assert set(first.holdings) == set(CHAINS) and first.complete
    assert first.refreshed == tuple(sorted(CHAINS))
    assert first.usdc_total == 300_000_000
    assert first.holdings["base"].native == ETH
    assert first.holdings["arbitrum"].native is None and first.holdings["bitcoin"].usdc is None  # unreadable
    assert first.prices == {"ETH": Decimal(3400)}
    assert first.total_usd == 300_000_000 + 3_400_000_000
    calls = wallet.calls

    fund(sandbox, "base", addr["base"], "USDC", 100_000_000)
    clock.advance(TTL_MS - 1)
    cached = view.balances(agent)
    assert wallet.calls == calls  # served from Redis, not a single wallet call
    assert cached.refreshed == () and cached.total_usd == first.total_usd

    clock.advance(1)  # exactly five minutes: stale
    fresh = view.balances(agent)
    assert wallet.calls > calls
    assert fresh.refreshed == tuple(sorted(CHAINS))
    assert fresh.usdc_total == 400_000_000 and fresh.total_usd == 400_000_000 + 3_400_000_000


def test_the_cache_is_per_agent_and_refresh_forces_a_read(steps, sandbox, clock, agent, wallet, rclient, keys):
    view = ChainView(rclient, keys, clock, lambda _: wallet)
    view.balances(agent)
    calls = wallet.calls
    assert view.balances(agent, refresh=True).refreshed == tuple(sorted(CHAINS))
    assert wallet.calls > calls
    assert rclient.exists(keys.chains(agent))


def test_swap_within_the_cap_is_placed_and_journaled(steps, sandbox, clock, agent, wallet, rclient, keys):
    view = ChainView(rclient, keys, clock, lambda _: wallet, steps=steps, new_id=seeded_ids(5, "s"))
    force_slippage(sandbox, 10)
    try:
        outcome = view.swap_to_usdc(agent, "base", 2 * ETH, 50)
    finally:
        force_slippage(sandbox, None)
    assert outcome.placed and not outcome.deposited
    # 2 ETH at $3400 less the 0.5 % fee, less the 50 bp cap
    assert outcome.min_out == 6_732_170_000
    assert outcome.quote_out == 6_766_000_000 and outcome.expected_out >= outcome.min_out
    placed = [e.body for e in read_journal(rclient, keys, agent) if type(e.body).__name__ == "ChainSwapPlaced"]
    assert placed and placed[0].order_id == outcome.order_id and placed[0].amount == str(2 * ETH)


def test_swap_refused_when_the_fill_breaks_the_slippage_cap(steps, sandbox, clock, agent, wallet, rclient, keys):
    view = ChainView(rclient, keys, clock, lambda _: wallet, steps=steps, new_id=seeded_ids(6, "s"))
    swaps = sandbox.ctx.store.scalar("SELECT COUNT(*) FROM wallet_swaps", (), 0)
    force_slippage(sandbox, 120)  # the fill comes 1.2 % under the quote
    try:
        outcome = view.swap_to_usdc(agent, "base", ETH, 50)
    finally:
        force_slippage(sandbox, None)
    assert outcome.status == "refused" and "fill below the minimum" in outcome.reason
    assert sandbox.ctx.store.scalar("SELECT COUNT(*) FROM wallet_swaps", (), 0) == swaps  # no order exists
    # the venue refused the order: the venue's refusal is journaled as ...Rejected
    refused = [e.body for e in read_journal(rclient, keys, agent) if isinstance(e.body, ChainSwapRejected)]
    assert refused and refused[0].min_out == outcome.min_out


def test_swap_refused_when_the_quote_is_below_the_policy_minimum(steps, sandbox, clock, agent, wallet, rclient, keys):
    # The reference price says $3500 while the wallet quotes $3400: 2.9 % short, beyond a 50 bp cap.
    view = ChainView(rclient, keys, clock, lambda _: wallet, price_of=lambda _a, _asset: Decimal(3500))
    swaps = sandbox.ctx.store.scalar("SELECT COUNT(*) FROM wallet_swaps", (), 0)
    outcome = view.swap_to_usdc(agent, "base", ETH, 50)
    assert outcome.status == "refused" and outcome.reason.startswith("quote pays")
    assert outcome.quote_out < outcome.min_out
    assert sandbox.ctx.store.scalar("SELECT COUNT(*) FROM wallet_swaps", (), 0) == swaps


def test_swap_caps_and_chains_the_wallet_cannot_send_from(steps, sandbox, clock, agent, wallet, rclient, keys):
    view = ChainView(rclient, keys, clock, lambda _: wallet)
    with pytest.raises(PolicyError):
        view.swap_to_usdc(agent, "base", ETH, 51)  # looser than the policy's 50 bp
    with pytest.raises(PolicyError):
        view.swap_to_usdc(agent, "base", 0, 50)
    refused = view.swap_to_usdc(agent, "bitcoin", 10**8, 50)
    assert refused.status == "refused" and "cannot send" in refused.reason


def test_an_unreadable_usdc_balance_is_unknown_never_zero(steps, sandbox, clock, agent, wallet, rclient, keys):
    """The real wallet answers 200 with `usdc_balance: 0, error: "fetch failed"` per chain it
    cannot read: that chain is unread, and the total is unknown, not a smaller number."""
    from venue.client import SandboxAdmin
    from venue.errors import VenueUnavailable

    view = ChainView(rclient, keys, clock, lambda _: wallet)
    addr = read_addresses(rclient, keys, agent)
    fund(sandbox, "base", addr["base"], "USDC", 250_000_000)
    admin = SandboxAdmin(sandbox.root_url)
    admin.set_chain(up=False)
    try:
        b = view.balances(agent, refresh=True)
        with pytest.raises(VenueUnavailable) as info:  # anything deciding from it fails closed
            wallet.inner.usdc_balance("base", addr["base"])
    finally:
        admin.set_chain(up=True)
    assert info.value.code == "balance_unreadable"
    assert "base" in b.unread and "fetch failed" in b.unread["base"]
    assert not b.complete and b.known_total_usd is None
    assert "base" not in b.holdings or b.holdings["base"].usdc != 0


def test_treasury_balances_prints_unknown_when_a_chain_is_unreadable():
    from actors.chain_view import ChainBalances
    from supervisor.balances_cli import balances_title

    read = ChainBalances("alice", {}, {}, 0, (), {"base": "usdc: fetch failed", "arbitrum": "usdc: fetch failed"})
    assert balances_title(read).startswith("alice: total unknown (2 chain(s) unreadable: arbitrum, base")
    assert "$0.00 across" not in balances_title(read)
    from actors.chain_view import ChainHolding

    whole = ChainBalances("alice", {"base": ChainHolding("base", "0xa", 12_500_000, 0, 0)}, {}, 12_500_000, (), {})
    assert balances_title(whole) == "alice: $12.50 across 1 chains (USDC $12.50 + native coins $0.00)"
