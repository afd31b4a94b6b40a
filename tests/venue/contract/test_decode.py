"""Every recorded answer of the real services decodes with the client's types into the right
values, and no field the real service did not send comes out as a made-up value.

Success bodies go through the same decoders the clients use; error bodies through the client's
error mapping (`ServiceClient._interpret`). `assert_faithful` walks every decoded msgspec struct
against the JSON it came from: a field present on the wire must hold that value (money via
`usd_from_venue`), and a field absent from the wire must be None (optional) — never 0, "" or [].
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from messages.money import usd_from_venue
from venue.client.base import DecimalText, Secret, ServiceClient, SignedUsdMicros, UsdMicros, decode
from venue.client.casino import CasinoClient, _BatchWire, _Deposits, _Entries, _Withdrawals
from venue.client.trading_types import (
    ExitCheck,
    LimitOrderBook,
    PositionList,
    RiskSettings,
    TradingAccount,
    TradingReferralStats,
    TradingRegistration,
)
from venue.client.types import (
    BetError,
    BetHistory,
    BetWire,
    CasinoBalance,
    CasinoRegistration,
    Escrow,
    EscrowCreated,
    EscrowRelease,
    EscrowStats,
    EscrowTransition,
    FaucetClaim,
    FaucetStats,
    KellyConfig,
    KellyLimits,
    Payment,
    ReferralCode,
    ReferralStats,
    SeedHash,
    SeedRotation,
    VerificationWire,
    WithdrawResult,
)
from venue.client.wallet_types import (
    CreatedWallet,
    Portfolio,
    UsdcBalances,
    WalletReferralStats,
    WalletRegistration,
)
from venue.errors import VenueRateLimited, VenueRejected, VenueUnavailable

from .recordings import Exchange, every


def assert_faithful(value: Any, wire: Any, where: str) -> None:
    """`value` (decoded) says exactly what `wire` (JSON) says, field by field."""
    if isinstance(value, msgspec.Struct):
        assert isinstance(wire, dict), f"{where}: a struct from {type(wire).__name__}"
        for info in msgspec.structs.fields(value):
            got = getattr(value, info.name)
            if info.encode_name not in wire:
                if info.name in ("recovered", "revealed", "reconstructed"):
                    continue
                assert got is None, f"{where}.{info.encode_name}: absent on the wire but decoded as {got!r}"
                continue
            assert_faithful(got, wire[info.encode_name], f"{where}.{info.encode_name}")
        return
    if isinstance(value, (UsdMicros, SignedUsdMicros)):
        assert value == usd_from_venue(wire, allow_negative=True), f"{where}: {value} from {wire!r}"
        return
    if isinstance(value, DecimalText):
        assert Decimal(value) == Decimal(repr(wire) if isinstance(wire, float) else str(wire)), where
        return
    if isinstance(value, Secret):
        assert value.reveal() == wire, where
        return
    if isinstance(value, list):
        assert isinstance(wire, list) and len(value) == len(wire), where
        for i, (v, w) in enumerate(zip(value, wire, strict=True)):
            assert_faithful(v, w, f"{where}[{i}]")
        return
    if isinstance(value, dict) and isinstance(wire, dict):
        for k, v in value.items():
            assert_faithful(v, wire[k], f"{where}.{k}")
        return
    assert value == wire, f"{where}: {value!r} from {wire!r}"


def _msgspec(tp: type) -> Callable[[Any], Any]:
    def run(body: Any) -> Any:
        decoded = decode(body, tp)
        assert_faithful(decoded, body, tp.__name__)
        return decoded
    return run


def _batch(body: Any) -> Any:
    raw = decode(body, _BatchWire)
    items = [decode(item, BetError if "error" in item else BetWire) for item in raw.results]
    for item, wire in zip(items, raw.results, strict=True):
        assert_faithful(item, wire, "batch item")
    return raw, items


def _usdc(body: Any) -> UsdcBalances:
    balances = UsdcBalances.from_wire(body)
    for row, wire in zip(balances.balances, body["balances"], strict=True):
        if "error" in wire:
            assert row.usdc_balance is None and row.error == wire["error"], "an unreadable chain must be unknown"
    if any("error" in w for w in body["balances"]):
        assert balances.total_usdc is None
    return balances


def _limit_orders(body: Any) -> LimitOrderBook:
    book = LimitOrderBook.from_wire(body)
    assert (len(book.pending), len(book.filled), len(book.cancelled)) == \
        (len(body["pending"]), len(body["filled"]), len(body["cancelled"]))
    return book


def _trading_stats(body: Any) -> TradingReferralStats:
    stats = TradingReferralStats.from_wire(body)
    assert (stats.available_usd is None) == ("available_usd" not in body), "available_usd is not sent by trading"
    assert stats.total_earned_usd == usd_from_venue(body["total_earned_usd"])
    return stats


def _wallet_stats(body: Any) -> WalletReferralStats:
    stats = WalletReferralStats.from_wire(body)
    assert (stats.pending_usd is None) == ("pending_usd" not in body)
    assert stats.available_usd == usd_from_venue(body["available_usd"], allow_negative=True)
    return stats


# (file or "*", method, path regex) → decoder of a 2xx body
DECODERS: list[tuple[str, str, str, Callable[[Any], Any]]] = [
    ("*", "POST", r"/api/v1/auth/register$", _msgspec(CasinoRegistration)),
    ("*", "GET", r"/api/v1/auth/balance$", _msgspec(CasinoBalance)),
    ("*", "GET", r"/api/v1/auth/ledger$", _msgspec(_Entries)),
    ("*", "GET", r"/api/v1/auth/deposits$", _msgspec(_Deposits)),
    ("*", "GET", r"/api/v1/auth/withdrawals$", _msgspec(_Withdrawals)),
    ("*", "POST", r"/api/v1/auth/withdraw$", _msgspec(WithdrawResult)),
    ("*", "POST", r"/api/v1/stats/pay$", _msgspec(Payment)),
    ("*", "GET", r"/api/v1/auth/referral/code$", _msgspec(ReferralCode)),
    ("*", "GET", r"/api/v1/auth/referral/stats$", _msgspec(ReferralStats)),
    ("*", "POST", r"/api/v1/games/[a-z-]+$", _msgspec(BetWire)),
    ("*", "GET", r"/api/v1/bets/history", _msgspec(BetHistory)),
    ("*", "POST", r"/api/v1/bets/batch$", _batch),
    ("*", "GET", r"/api/v1/kelly/limits$", _msgspec(KellyLimits)),
    ("*", "PUT", r"/api/v1/kelly/config$", _msgspec(KellyConfig)),
    ("*", "GET", r"/api/v1/fairness/seed-hash$", _msgspec(SeedHash)),
    ("*", "POST", r"/api/v1/fairness/verify$", _msgspec(VerificationWire)),
    ("*", "POST", r"/api/v1/fairness/rotate$", _msgspec(SeedRotation)),
    ("*", "POST", r"/escrow/create$", _msgspec(EscrowCreated)),
    ("*", "GET", r"/escrow/stats$", _msgspec(EscrowStats)),
    ("*", "GET", r"/escrow/esc_[0-9a-f]+$", _msgspec(Escrow)),
    ("*", "POST", r"/escrow/(complete|dispute)/", _msgspec(EscrowTransition)),
    ("*", "POST", r"/escrow/release/", _msgspec(EscrowRelease)),
    ("*", "POST", r"/faucet/claim$", _msgspec(FaucetClaim)),
    ("*", "GET", r"/faucet/stats$", _msgspec(FaucetStats)),
    ("trading", "POST", r"/v1/auth/register$", TradingRegistration.from_wire),
    ("trading", "GET", r"/v1/auth/account$", TradingAccount.from_wire),
    ("trading", "GET", r"/v1/auth/deposit-address$", lambda d: str(d["deposit_address"])),
    ("trading", "GET", r"/v1/referral/code$", lambda d: str(d["referral_code"])),
    ("trading", "GET", r"/v1/referral/stats$", _trading_stats),
    ("trading", "GET", r"/v1/trade/positions", PositionList.from_wire),
    ("trading", "GET", r"/v1/trade/risk-settings$", RiskSettings.from_wire),
    ("trading", "POST", r"/v1/trade/risk-settings$", RiskSettings.from_wire),
    ("trading", "GET", r"/v1/trade/limit-orders$", _limit_orders),
    ("trading", "POST", r"/v1/trade/check-exits$", ExitCheck.from_wire),
    ("wallet", "POST", r"/v1/auth/register$", WalletRegistration.from_wire),
    ("wallet", "POST", r"/v1/wallet/create$", CreatedWallet.from_wire),
    ("wallet", "GET", r"/v1/wallet/usdc-balance", _usdc),
    ("wallet", "GET", r"/v1/referral/code$", lambda d: str(d["referral_code"])),
    ("wallet", "GET", r"/v1/referral/stats$", _wallet_stats),
    ("wallet", "GET", r"/v1/wallet/portfolio/addresses$", lambda d: list(d["addresses"])),
    ("wallet", "GET", r"/v1/wallet/portfolio$", Portfolio.from_wire),
]


def decoder_for(x: Exchange) -> Callable[[Any], Any] | None:
    for file, method, pattern, run in DECODERS:
        if file in ("*", x.file) and method == x.method and re.search(pattern, x.path):
            return run
    return None


SUCCESSES = [x for x in every() if 200 <= x.status < 300 and x.body is not None]
FAILURES = [x for x in every() if x.status >= 400]
CSV = [x for x in every() if x.path.endswith("export.csv")]


@pytest.mark.parametrize("x", SUCCESSES, ids=lambda x: x.id)
def test_recorded_success_decodes_faithfully(x: Exchange) -> None:
    run = decoder_for(x)
    assert run is not None, f"no client decoder for {x.method} {x.path}"
    run(x.body)


CLIENTS: dict[str, type[ServiceClient]] = {"casino": CasinoClient}


def _mapped(x: Exchange) -> Exception:
    client = CLIENTS.get(x.service, ServiceClient)("http://venue.invalid")
    response = httpx.Response(x.status, content=json.dumps(x.body).encode())
    with pytest.raises((VenueRejected, VenueRateLimited, VenueUnavailable)) as info:
        client._interpret(f"{x.method} {x.path}", response)
    return info.value


@pytest.mark.parametrize("x", FAILURES, ids=lambda x: x.id)
def test_recorded_error_maps_to_what_it_means_for_money(x: Exchange) -> None:
    exc = _mapped(x)
    assert exc.code == x.error
    if x.status == 429:
        assert isinstance(exc, VenueRateLimited)
    elif x.status == 500 and x.error == "withdrawal_failed":
        # the casino refunded the balance before answering: nothing was spent
        assert isinstance(exc, VenueRejected) and exc.details.get("refunded") is True
    elif 400 <= x.status < 500:
        assert isinstance(exc, VenueRejected)
    else:
        assert isinstance(exc, VenueUnavailable)


def test_kelly_refusal_carries_the_cap_in_micros() -> None:
    over = next(x for x in FAILURES if x.error == "kelly_limit_exceeded")
    client = CasinoClient("http://venue.invalid", "sk_live_x", transport=httpx.MockTransport(
        lambda request: httpx.Response(over.status, json=over.body)))
    with pytest.raises(VenueRejected) as info:
        client.bet("coin_flip", 40_000_000, {"side": "heads"}, client_seed="s", idempotency_key="k")
    assert info.value.details["max_bet_micros"] == usd_from_venue(over.body["max_bet"])


def test_every_recorded_success_has_a_decoder_and_the_counts_are_known() -> None:
    assert len(SUCCESSES) + len(FAILURES) + len(CSV) == 150
    assert all(decoder_for(x) for x in SUCCESSES)
