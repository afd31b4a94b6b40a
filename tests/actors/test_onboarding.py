"""Onboarding against the sandbox: once per venue, once per allocation, and no secret in sight."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import pytest

from actors.bootstrap import allocate
from actors.chain_view import read_addresses
from actors.onboarding import SERVICES
from messages.money import parse_usd
from runtime.journal import read_journal
from tests.kit.referral import ledger, onboard
from venue.client.casino import CasinoClient

pytestmark = pytest.mark.redis


def venue_accounts(sandbox) -> dict[str, int]:
    store = sandbox.ctx.store
    return {s: store.scalar(f"SELECT COUNT(*) FROM {s}_agents", (), 0) for s in SERVICES}


def secrets_of(rclient, keys, agent) -> list[str]:
    creds = {k.decode(): v.decode() for k, v in rclient.hgetall(keys.credentials(agent)).items()}
    found = [v for k, v in creds.items() if k.endswith("_key") or k == "wallet_mnemonic"]
    assert len(found) >= 4  # three API keys and the mnemonic (plus the Monero view key)
    return found


def journal_types(rclient, keys, agent) -> Counter:
    return Counter(type(e.body).__name__ for e in read_journal(rclient, keys, agent))


def test_onboarding_twice_registers_once_allocates_once_and_hides_every_secret(
        steps, sandbox, clock, rclient, keys, caplog):
    caplog.set_level(logging.DEBUG)
    before = venue_accounts(sandbox)

    first = onboard(steps, sandbox, "ada", clock)
    second = onboard(steps, sandbox, "ada", clock)

    assert first.registered == ("casino", "wallet", "trading") and second.registered == ()
    assert first.allocation == "ok" and second.allocation == "duplicate"
    assert first.wallet_created and not second.wallet_created
    assert first.venue_agent_ids == second.venue_agent_ids
    assert all(v.startswith("ag_") for v in first.venue_agent_ids.values())
    after = venue_accounts(sandbox)
    assert {s: after[s] - before[s] for s in SERVICES} == {"casino": 1, "wallet": 1, "trading": 1}

    creds = {k.decode() for k in rclient.hgetall(keys.credentials("ada"))}
    assert {"casino_agent_id", "casino_key", "trading_agent_id", "trading_key", "wallet_agent_id",
            "wallet_key", "wallet_mnemonic"} <= creds
    assert set(read_addresses(rclient, keys, "ada")) == {"base", "ethereum", "arbitrum", "bsc", "solana", "tron",
                                                         "bitcoin", "monero"}

    counts = journal_types(rclient, keys, "ada")
    assert counts == Counter({"VenueRegistered": 3, "WalletCreated": 1, "FaucetChecked": 1,
                              "CapitalAllocated": 1, "AgentOnboarded": 1})
    book = ledger(rclient, keys, "ada")
    assert {b: book[b] for b in allocate(parse_usd("1000"))} == allocate(parse_usd("1000"))
    assert rclient.sismember(keys.agents(), "ada")

    raw_journal = b"".join(v for _, f in rclient.xrange(keys.events("ada")) for v in f.values())
    for secret in secrets_of(rclient, keys, "ada"):
        assert secret.encode() not in raw_journal
        assert secret not in caplog.text
    assert "registered at casino" in caplog.text  # the log does speak, just not secrets


def test_only_the_days_first_registration_gets_the_faucet_dollar(steps, clock, rclient, keys):
    """As on the real services: the casino's registration claims the faucet from its one IP, so
    the first agent of a day finds $1 (not_empty); the next finds an empty balance, and its own
    claim is refused per IP (rate_limited) — onboarding goes on either way."""
    from sandbox import start_sandbox
    from sandbox.clock import ManualClock as SandboxClock

    with start_sandbox(seed=12, clock=SandboxClock()) as fresh:
        first = onboard(steps, fresh, "bea", clock)
        second = onboard(steps, fresh, "bob", clock)
    assert first.faucet == "not_empty" and first.allocation == "ok"
    checked = [e.body for e in read_journal(rclient, keys, "bea") if type(e.body).__name__ == "FaucetChecked"]
    assert checked[0].casino_balance == 1_000_000
    assert second.faucet == "rate_limited" and second.allocation == "ok"
    checked = [e.body for e in read_journal(rclient, keys, "bob") if type(e.body).__name__ == "FaucetChecked"]
    assert (checked[0].casino_balance, checked[0].credited) == (0, 0)


class EmptyCasino(CasinoClient):
    """A casino whose balance reads empty, as when registration's own claim has not landed yet."""

    def balance(self):
        import msgspec

        return msgspec.structs.replace(super().balance(), balance=0)


def test_an_empty_balance_claims_and_a_refused_claim_is_fine(steps, sandbox, clock, rclient, keys):
    from venue.client.faucet import FaucetClient
    from venue.client.trading import TradingClient
    from venue.client.wallet import WalletClient

    urls = sandbox.urls
    clients = {"casino": EmptyCasino(urls["casino"]), "wallet": WalletClient(urls["wallet"]),
               "trading": TradingClient(urls["trading"]), "faucet": FaucetClient(urls["faucet"], retries=0)}
    result = onboard(steps, sandbox, "cal", clock, clients=clients)
    assert result.faucet in ("already_claimed", "rate_limited")  # per agent, or per IP for the day
    assert result.allocation == "ok"


def test_a_late_rerun_never_reallocates_over_live_balances(steps, sandbox, clock, rclient, keys):
    onboard(steps, sandbox, "dee", clock)
    rclient.hincrby(keys.ledger("dee"), "casino", -5_000_000)  # the agent has been living since
    live = ledger(rclient, keys, "dee")
    rclient.delete(keys.applied("dee"))  # seven days on: the applied set has forgotten `open:dee`
    again = onboard(steps, sandbox, "dee", clock)
    assert again.allocation == "duplicate" and again.registered == ()
    assert ledger(rclient, keys, "dee") == live


def test_two_concurrent_onboardings_store_one_account_per_venue(steps, sandbox, clock, rclient, keys):
    results, errors = [], []

    def run():
        try:
            results.append(onboard(steps, sandbox, "eve", clock))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results[0].venue_agent_ids == results[1].venue_agent_ids
    counts = journal_types(rclient, keys, "eve")
    assert counts["VenueRegistered"] == 3 and counts["CapitalAllocated"] == 1 and counts["AgentOnboarded"] == 1
    assert sorted(r.allocation for r in results) == ["duplicate", "ok"]


class CountingFaucet:
    """A faucet client that counts claims and answers each with a 429 of the day's per-IP limit."""

    def __init__(self):
        self.claims = 0

    def claim(self, agent_casino_id, referral_code=None):
        from venue.errors import VenueRateLimited

        self.claims += 1
        raise VenueRateLimited("faucet", "Already claimed from this IP today", code="ip_rate_limited", status=429)


def test_after_the_faucet_refuses_the_ip_the_next_agents_of_the_batch_do_not_ask(steps, sandbox, clock, rclient,
                                                                                 keys):
    from actors.onboarding import FaucetLimit
    from venue.client.trading import TradingClient
    from venue.client.wallet import WalletClient

    now = [1000.0]
    limit = FaucetLimit(clock=lambda: now[0])
    faucet = CountingFaucet()
    urls = sandbox.urls

    def clients():
        return {"casino": EmptyCasino(urls["casino"]), "wallet": WalletClient(urls["wallet"]),
                "trading": TradingClient(urls["trading"]), "faucet": faucet}

    results = [onboard(steps, sandbox, name, clock, clients=clients(), faucet_limit=limit)
               for name in ("fay", "fin", "flo")]
    assert [r.faucet for r in results] == ["rate_limited"] * 3
    assert faucet.claims == 1  # the day's per-IP refusal holds for the whole batch
    now[0] += 24 * 3600  # a day later the faucet is asked again
    onboard(steps, sandbox, "fox", clock, clients=clients(), faucet_limit=limit)
    assert faucet.claims == 2
