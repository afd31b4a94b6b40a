"""`treasury balances` says per chain and token what was read, what could not be (and why), and
what is not there: never `unreadable` for USDC on bitcoin or monero, never a null amount (probe item 19)."""

from __future__ import annotations

import json

import pytest

from actors.chain_view import ChainBalances, ChainHolding
from actors.policy.chains import CHAINS
from runtime.atomic import AtomicSteps
from runtime.clock import ManualClock
from sandbox.clock import ManualClock as SandboxClock
from sandbox.runner import start_sandbox
from supervisor.balances_view import NO_USDC, token_states
from supervisor.deployment import record_deployment
from tests.kit.referral import onboard
from tests.supervisor.cli_helpers import clean_env, treasury

pytestmark = pytest.mark.redis


@pytest.fixture
def deployed(rclient, keys, redis_url):
    with start_sandbox(seed=5, clock=SandboxClock()) as sandbox:
        steps = AtomicSteps(rclient, keys)
        record_deployment(rclient, keys, sandbox.urls, "paper")
        onboard(steps, sandbox, "dora", ManualClock(1_767_258_000_000))
        yield ["--redis-url", redis_url, "--prefix", keys.prefix]


def _nulls(value, path="") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{path}.{k}")]
    return []


def test_json_says_what_each_token_is(deployed):
    proc = treasury("balances", "dora", "--json", *deployed, env=clean_env())
    assert proc.returncode == 0, proc.stderr
    chains = json.loads(proc.stdout)["chains"]
    assert list(chains) == list(CHAINS)
    for name in ("bitcoin", "monero"):
        assert chains[name]["usdc"] == {"status": "none", "reason": NO_USDC}
    for name, coin in (("arbitrum", "ETH"), ("bsc", "BNB")):
        assert chains[name]["native"] == {"status": "unknown", "symbol": coin,
                                          "reason": f"the wallet API reads no {coin} balance on {name}"}
    for name in ("base", "ethereum", "solana", "tron"):
        assert chains[name]["usdc"]["status"] == "read" and isinstance(chains[name]["usdc"]["amount_micros"], int)
    assert _nulls(chains) == []


def test_text_marks_absent_and_unread_tokens(deployed):
    proc = treasury("balances", "dora", *deployed, env=clean_env(COLUMNS="80"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "unreadable" not in out
    assert out.count(NO_USDC) == 2
    assert "not read: the wallet API reads" in out
    assert max(len(line) for line in out.splitlines() if "│" in line) <= 80


def test_a_chain_the_wallet_failed_to_read_is_unknown_with_the_reason():
    held = {name: ChainHolding(name, f"addr-{name}", 0 if CHAINS[name].reads_usdc else None,
                               1 if CHAINS[name].reads_native else None, 0)
            for name in CHAINS if name != "solana"}
    b = ChainBalances("dora", held, {}, 0, tuple(held), unread={"solana": "usdc: fetch failed"})
    states = token_states(b)
    assert states["solana"]["usdc"] == {"status": "unknown", "reason": "usdc: fetch failed"}
    assert states["solana"]["native"] == {"status": "unknown", "reason": "usdc: fetch failed", "symbol": "SOL"}
    assert states["base"]["usdc"] == {"status": "read", "amount_micros": 0}
    assert states["base"]["native"] == {"status": "read", "amount_units": 1, "amount_coins": "0.000000000000000001",
                                        "symbol": "ETH"}  # no price known: no value, never a guessed one


def test_native_coins_are_shown_in_coins_and_dollars_and_the_headline_adds_up():
    from decimal import Decimal

    from messages.money import format_usd, parse_usd
    from supervisor.balances_cli import balances_title
    from supervisor.balances_view import cell

    held = {name: ChainHolding(name, f"addr-{name}", 0 if CHAINS[name].reads_usdc else None,
                               0 if CHAINS[name].reads_native else None, 0) for name in CHAINS}
    held["base"] = ChainHolding("base", "addr-base", 400_000_000, 10**16, 0)  # $400 and 0.01 ETH
    held["solana"] = ChainHolding("solana", "addr-sol", 1_005_000, 2 * 10**9, 0)  # $1.005 and 2 SOL
    prices = {"ETH": Decimal("3318.9999"), "SOL": Decimal("150.125")}
    b = ChainBalances("dora", held, prices, 0, tuple(held))
    states = token_states(b)
    assert states["base"]["native"]["value_micros"] == 33_189_999
    assert cell(states["base"]["native"], format_usd) == "0.01 ETH ($33.18)"
    assert cell(states["solana"]["native"], format_usd) == "2 SOL ($300.25)"
    shown = [cell(states[n][t], format_usd) for n in CHAINS for t in ("usdc", "native")]
    assert not [s for s in shown if "units" in s]
    title = balances_title(b, states)
    cells = sum(parse_usd(s.split("(")[-1].rstrip(")")) for s in shown if "$" in s)
    assert title.startswith(f"dora: {format_usd(cells)} across 8 chains"), (title, cells)
    assert title == "dora: $734.43 across 8 chains (USDC $401.00 + native coins $333.43)"
