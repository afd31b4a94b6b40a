"""Fuzzing every venue client decoder with hostile answers.

Each client call below is answered, through an in-process transport, by a hostile version of
what the real service sends: the recorded real answer for that path (tests/venue/contract
recordings) with fields dropped, retyped or set to edge values; any JSON; bytes that are not
JSON; nesting thousands deep; and any status. The oracle: the call returns a typed value or raises
a `VenueError` (a clear error naming the service and call) — never a KeyError, TypeError,
RecursionError or any other exception that would kill an actor's handler with a confusing
message. 30 examples per call (64 calls) in the default run; 500 per call under `-m soak`.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from venue.client.casino import CasinoClient
from venue.client.escrow import EscrowClient
from venue.client.faucet import FaucetClient
from venue.client.trading import TradingClient
from venue.client.wallet import WalletClient
from venue.errors import VenueError

RECORDED = Path(__file__).parent / "contract" / "recorded"

OPTS = {"sleep": lambda s: None, "retries": 1, "timeout_s": 1.0}
T0 = 1_767_258_000_000

CALLS = {
    # casino
    "casino.register": (CasinoClient, lambda c: c.register()),
    "casino.balance": (CasinoClient, lambda c: c.balance()),
    "casino.ledger": (CasinoClient, lambda c: c.ledger()),
    "casino.deposit_address": (CasinoClient, lambda c: c.deposit_address()),
    "casino.deposits": (CasinoClient, lambda c: c.deposits()),
    "casino.withdrawals": (CasinoClient, lambda c: c.withdrawals()),
    "casino.withdraw": (CasinoClient, lambda c: c.withdraw(2_000_000, "0x" + "a" * 40, idempotency_key="k1")),
    "casino.lookup_withdrawal": (CasinoClient, lambda c: c.lookup_withdrawal(2_000_000, "0x" + "a" * 40,
                                                                             since_ms=T0)),
    "casino.pay": (CasinoClient, lambda c: c.pay("ag_0123456789ab", 1_000_000, "m", idempotency_key="k2")),
    "casino.referral_code": (CasinoClient, lambda c: c.referral_code()),
    "casino.referral_stats": (CasinoClient, lambda c: c.referral_stats()),
    "casino.bet": (CasinoClient, lambda c: c.bet("coin_flip", 1_000_000, {"side": "heads"}, client_seed="s1",
                                                  idempotency_key="k4")),
    "casino.bet_history": (CasinoClient, lambda c: c.bet_history()),
    "casino.lookup_bet": (CasinoClient, lambda c: c.lookup_bet("s1", since_ms=T0)),
    "casino.kelly_limits": (CasinoClient, lambda c: c.kelly_limits()),
    "casino.max_stake": (CasinoClient, lambda c: c.max_stake("multiplier", {"target": 10.0})),
    "casino.seed_hash": (CasinoClient, lambda c: c.seed_hash()),
    "casino.verify_bet": (CasinoClient, lambda c: c.verify_bet("bet_1")),
    "casino.rotate_seed": (CasinoClient, lambda c: c.rotate_seed()),
    # escrow
    "escrow.create": (EscrowClient, lambda c: c.create("ag_0123456789ab", 5_000_000, "work", idempotency_key="k5")),
    "escrow.lookup_created": (EscrowClient, lambda c: c.lookup_created("work [tr:x]", 5_000_000, since_ms=T0)),
    "escrow.complete": (EscrowClient, lambda c: c.complete("esc_1")),
    "escrow.release": (EscrowClient, lambda c: c.release("esc_1")),
    "escrow.dispute": (EscrowClient, lambda c: c.dispute("esc_1", "late")),
    "escrow.get_escrow": (EscrowClient, lambda c: c.get_escrow("esc_1")),
    "escrow.stats": (EscrowClient, lambda c: c.stats()),
    # faucet
    "faucet.claim": (FaucetClient, lambda c: c.claim("ag_0123456789ab")),
    "faucet.stats": (FaucetClient, lambda c: c.stats()),
    # trading
    "trading.register": (TradingClient, lambda c: c.register()),
    "trading.account": (TradingClient, lambda c: c.account()),
    "trading.deposit_address": (TradingClient, lambda c: c.deposit_address()),
    "trading.markets": (TradingClient, lambda c: c.markets()),
    "trading.price": (TradingClient, lambda c: c.price("BTC")),
    "trading.open_position": (TradingClient, lambda c: c.open_position("BTC", "long", 10_000_000, 2)),
    "trading.close_position": (TradingClient, lambda c: c.close_position("pos_1")),
    "trading.positions": (TradingClient, lambda c: c.positions()),
    "trading.close_all": (TradingClient, lambda c: c.close_all()),
    "trading.set_stop_loss": (TradingClient, lambda c: c.set_stop_loss("pos_1", "90000")),
    "trading.set_take_profit": (TradingClient, lambda c: c.set_take_profit("pos_1", "120000")),
    "trading.check_exits": (TradingClient, lambda c: c.check_exits()),
    "trading.place_limit": (TradingClient, lambda c: c.place_limit("BTC", "long", 10_000_000, "90000")),
    "trading.limit_orders": (TradingClient, lambda c: c.limit_orders()),
    "trading.cancel_limit": (TradingClient, lambda c: c.cancel_limit("ord_1")),
    "trading.check_limits": (TradingClient, lambda c: c.check_limits()),
    "trading.risk_settings": (TradingClient, lambda c: c.risk_settings()),
    "trading.referral_code": (TradingClient, lambda c: c.referral_code()),
    "trading.referral_stats": (TradingClient, lambda c: c.referral_stats()),
    # wallet
    "wallet.register": (WalletClient, lambda c: c.register()),
    "wallet.create_wallet": (WalletClient, lambda c: c.create_wallet()),
    "wallet.native_balance": (WalletClient, lambda c: c.native_balance("0x" + "b" * 40)),
    "wallet.usdc_balances": (WalletClient, lambda c: c.usdc_balances({"base": "0x" + "b" * 40})),
    "wallet.usdc_balance": (WalletClient, lambda c: c.usdc_balance("base", "0x" + "b" * 40)),
    "wallet.portfolio": (WalletClient, lambda c: c.portfolio()),
    "wallet.saved_addresses": (WalletClient, lambda c: c.saved_addresses()),
    "wallet.send": (WalletClient, lambda c: c.send("base", "0x" + "c" * 40, "1.5", "0x" + "1" * 64)),
    "wallet.send_usdc_once": (WalletClient, lambda c: c.send_usdc_once("base", "0x" + "b" * 40, "0x" + "c" * 40,
                                                                       1_500_000, "0x" + "1" * 64,
                                                                       idempotency_key="k3")),
    "wallet.swap_quote": (WalletClient, lambda c: c.swap_quote("base", "ethereum", "USDC", "USDC", 10_000_000)),
    "wallet.swap_status": (WalletClient, lambda c: c.swap_status("ord_1")),
    "wallet.referral_code": (WalletClient, lambda c: c.referral_code()),
    "wallet.referral_stats": (WalletClient, lambda c: c.referral_stats()),
}


def _recorded_bodies() -> list:
    bodies = []
    for f in sorted(RECORDED.glob("*.json")):
        for ex in json.loads(f.read_text()).get("exchanges", []):
            if isinstance(ex.get("body"), (dict, list)):
                bodies.append(ex["body"])
    return bodies


BODIES = _recorded_bodies()

EDGES = st.sampled_from([None, True, 0, -1, 1, 2**63, -(2**63), 10**30, 1e308, -1e308, 5e-324, "", "abc",
                         "NaN", "Infinity", "-0", "1e400", "٣", "1_000", "\x00", "💸" * 50, "9" * 400, [], {},
                         [None], {"": None}])

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                  max_size=5),
                    max_leaves=25)


@st.composite
def mutated(draw):
    """A recorded real answer with some fields dropped or replaced by edge values, at any depth."""
    body = json.loads(json.dumps(draw(st.sampled_from(BODIES))))

    def visit(node):
        if isinstance(node, dict):
            for key in list(node):
                roll = draw(st.integers(0, 9))
                if roll == 0:
                    del node[key]
                elif roll == 1:
                    node[key] = draw(EDGES)
                elif roll == 2:
                    node[key] = draw(JSON)
                else:
                    visit(node[key])
        elif isinstance(node, list):
            for item in node:
                visit(item)
    visit(body)
    return json.dumps(body).encode()


RAW = st.one_of(
    mutated(),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.integers(1, 50_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 50_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b"NaN", b"Infinity", b'{"balance": NaN}', b'{"balance": 1e400}', b"null", b'"text"', b"",
                     b"agent_id,client_seed\nx,s1\n", b"\xff\xfe"]),
)
STATUS = st.sampled_from([200, 200, 200, 201, 202, 204, 301, 400, 401, 402, 404, 409, 422, 429, 500, 502, 503])


def _run(name: str, status: int, body: bytes) -> None:
    cls, call = CALLS[name]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})

    extra = {"casino_url": "http://casino.test"} if cls is EscrowClient else {}
    client = cls("http://venue.test", "sk_test", transport=httpx.MockTransport(answer), **OPTS, **extra)
    try:
        call(client)
    except VenueError as exc:
        assert str(exc)
    finally:
        client.close()


@pytest.mark.parametrize("name", sorted(CALLS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(status=STATUS, body=RAW)
@example(status=200, body=b'{"a":' * 21846 + b"1" + b"}" * 21846)  # one csv field over csv's 128 KiB limit
@example(status=200, body=b"bet_id,client_seed\n\x00,\x00\n")         # NUL bytes
def test_hostile_answers_give_a_value_or_a_venue_error(name, status, body):
    _run(name, status, body)


@pytest.mark.soak
@pytest.mark.parametrize("name", sorted(CALLS))
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(status=STATUS, body=RAW)
def test_hostile_answers_long(name, status, body):
    _run(name, status, body)
