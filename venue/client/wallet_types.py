"""Typed answers of the wallet service.

On-chain amounts travel as decimal strings in each chain's own unit; they are kept here as exact
integers of the chain's base unit (wei, lamports, satoshis, sun, piconero) next to the decimal
text. USDC has six decimals on every supported chain, so a USDC base unit *is* one micro-USD and
USDC amounts come out directly as the treasury's money type. USD valuations (portfolio, fees) are
JSON floats and go through `usd_from_venue` like every other venue amount.

Secrets the service hands out once (API key, mnemonic, Monero keys) are kept on the objects for
the caller to store, but never appear in their `repr`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from messages.errors import MoneyError
from messages.money import MAX_MICROS
from venue.client.base import Secret
from venue.client.trading_types import ReferralWithdrawal, WireReader

__all__ = [
    "NATIVE_DECIMALS",
    "USDC_DECIMALS",
    "USDC_CONTRACTS",
    "WalletRegistration",
    "CreatedWallet",
    "NativeBalance",
    "UsdcBalance",
    "UsdcBalances",
    "PortfolioWallet",
    "Portfolio",
    "SavedAddress",
    "SendResult",
    "SwapQuote",
    "SwapOrder",
    "SwapStatus",
    "WalletReferralStats",
    "ReferralWithdrawal",
    "to_base_units",
    "from_base_units",
]

NATIVE_DECIMALS: dict[str, int] = {
    "ethereum": 18,
    "base": 18,
    "solana": 9,
    "bitcoin": 8,
    "tron": 6,
    "monero": 12,
}
"""Decimals of each chain's native coin."""

NATIVE_SYMBOLS: dict[str, str] = {
    "ethereum": "ETH",
    "base": "ETH",
    "solana": "SOL",
    "bitcoin": "BTC",
    "tron": "TRX",
    "monero": "XMR",
}

USDC_DECIMALS = 6
"""The wallet's `send` parses every token amount at 6 decimals; USDC has 6 everywhere."""

USDC_CONTRACTS: dict[str, str] = {
    "base": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
    "ethereum": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
    "arbitrum": "0xaf88d065e77c8cC2239327C5EDb3A432268e5831",
    "bsc": "0x8AC76a51cc950d9822D68b83fE1Ad97B32Cd580d",
}
"""USDC token contracts on the EVM chains; the `token` field of a send names one of these."""

_BASE_UNIT_KEYS = ("wei", "lamports", "total_satoshis", "satoshis", "sun", "piconero", "base_units")


def to_base_units(amount: str | Decimal, decimals: int) -> int:
    """`"1.5"` at 6 decimals → `1500000`, exactly, or `MoneyError` (too many decimals, negative,
    not a number)."""
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise MoneyError(f"{amount!r} is not a decimal amount") from None
    if not value.is_finite() or value < 0:
        raise MoneyError(f"{amount!r} is not a non-negative finite amount")
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{amount!r} has more than {decimals} decimals")
    return int(scaled)


def from_base_units(units: int, decimals: int) -> str:
    """`1500000` at 6 decimals → `"1.5"`: the decimal string the wallet's `send` expects."""
    if units < 0:
        raise MoneyError("negative amount")
    text = format(Decimal(units).scaleb(-decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _usdc_micros(reader: WireReader, *keys: str) -> int:
    """A USDC amount (a decimal string or number of whole USDC) as micro-USD."""
    value = reader.raw(*keys)
    if value is None:
        return 0
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        units = Decimal(text).scaleb(USDC_DECIMALS)
    except InvalidOperation:
        raise MoneyError(f"{keys[0]}: {value!r} is not an amount") from None
    if not units.is_finite() or units < 0:
        raise MoneyError(f"{keys[0]}: {value!r} is not a non-negative finite amount")
    micros = int(units.to_integral_value())
    if micros > MAX_MICROS:
        raise MoneyError(f"{keys[0]}: {micros} micro-USD is beyond the limit")
    return micros


class WalletRegistration(msgspec.Struct, frozen=True):
    agent_id: str
    api_key: Secret
    referral_code: str

    @classmethod
    def from_wire(cls, data: Any) -> "WalletRegistration":
        r = WireReader(data, "register")
        return cls(agent_id=r.text("agent_id"), api_key=Secret(r.text("api_key")),
                   referral_code=r.text("referral_code", default=""))


class CreatedWallet(msgspec.Struct, frozen=True):
    """`POST /wallet/create`: one address per chain (base = ethereum). Calling again replaces the
    wallet server-side, so the caller must keep the mnemonic of the one it funds.

    `private_keys` is filled only by the sandbox (`sandbox_private_keys`, its own derivation); with
    the real service the keys are derived from the mnemonic along `derivation_paths`."""

    addresses: dict[str, str]
    mnemonic: Secret
    monero_keys: dict[str, Secret]
    private_keys: dict[str, Secret]

    @classmethod
    def from_wire(cls, data: Any) -> "CreatedWallet":
        r = WireReader(data, "wallet_create")
        addresses = r.raw("addresses")
        if not isinstance(addresses, dict) or not addresses:
            raise ValueError("wallet_create: missing addresses")
        monero = r.raw("monero_keys")
        private = r.raw("sandbox_private_keys")
        return cls(
            addresses={str(k): str(v) for k, v in addresses.items()},
            mnemonic=Secret(r.text("mnemonic", default="")),
            monero_keys={str(k): Secret(str(v)) for k, v in monero.items() if k != "note"}
            if isinstance(monero, dict) else {},
            private_keys={str(k): Secret(str(v)) for k, v in private.items()} if isinstance(private, dict) else {},
        )


class NativeBalance(msgspec.Struct, frozen=True):
    """`GET /wallet/balance/:address`: the native coin only (never USDC)."""

    address: str
    chain: str
    symbol: str
    amount: Decimal
    base_units: int

    @classmethod
    def from_wire(cls, data: Any) -> "NativeBalance":
        r = WireReader(data, "balance")
        chain = r.text("chain", default="base")
        native = r.child("balance").child("native")
        amount = native.decimal("amount", required=False) or Decimal(0)
        units = native.raw(*_BASE_UNIT_KEYS)
        if units is None:
            base_units = to_base_units(amount, NATIVE_DECIMALS.get(chain, 18))
        else:
            base_units = int(Decimal(str(units)))
        return cls(
            address=r.text("address", default=""),
            chain=chain,
            symbol=native.text("symbol", default=NATIVE_SYMBOLS.get(chain, "")),
            amount=amount,
            base_units=base_units,
        )


class UsdcBalance(msgspec.Struct, frozen=True):
    chain: str
    wallet_address: str
    usdc_balance: int
    """Micro-USD (= USDC base units)."""


class UsdcBalances(msgspec.Struct, frozen=True):
    """`GET /wallet/usdc-balance`: USDC across the given chains' addresses."""

    total_usdc: int
    balances: list[UsdcBalance]

    @classmethod
    def from_wire(cls, data: Any) -> "UsdcBalances":
        r = WireReader(data, "usdc_balance")
        rows = []
        for row in r.items("balances"):
            rr = WireReader(row, "usdc_balance.balances")
            rows.append(
                UsdcBalance(
                    chain=rr.text("chain"),
                    wallet_address=rr.text("wallet_address", "address", default=""),
                    usdc_balance=_usdc_micros(rr, "usdc_balance", "balance"),
                )
            )
        total = _usdc_micros(r, "total_usdc") if r.has("total_usdc") else sum(b.usdc_balance for b in rows)
        return cls(total_usdc=total, balances=rows)


class PortfolioWallet(msgspec.Struct, frozen=True):
    label: str | None
    chain: str
    address: str
    symbol: str
    balance: Decimal
    price_usd: Decimal | None
    value_usd: int | None


class Portfolio(msgspec.Struct, frozen=True):
    """`GET /wallet/portfolio`: USD value of native balances at the agent's saved addresses."""

    total_value_usd: int
    by_chain: dict[str, int]
    wallets: list[PortfolioWallet]

    @classmethod
    def from_wire(cls, data: Any) -> "Portfolio":
        r = WireReader(data, "portfolio")
        wallets = []
        for row in r.items("wallets"):
            rr = WireReader(row, "portfolio.wallets")
            wallets.append(
                PortfolioWallet(
                    label=rr.text("label", required=False),
                    chain=rr.text("chain"),
                    address=rr.text("address"),
                    symbol=rr.text("symbol", default=""),
                    balance=rr.decimal("balance", required=False) or Decimal(0),
                    price_usd=rr.decimal("price_usd", required=False),
                    value_usd=rr.money("value_usd", required=False),
                )
            )
        by_chain_raw = r.raw("by_chain")
        by_chain: dict[str, int] = {}
        if isinstance(by_chain_raw, dict):
            for chain, value in by_chain_raw.items():
                if isinstance(value, dict):
                    value = value.get("value_usd", 0)
                by_chain[str(chain)] = WireReader({"v": value}, f"portfolio.by_chain.{chain}").money_or_zero("v")
        return cls(total_value_usd=r.money_or_zero("total_value_usd"), by_chain=by_chain, wallets=wallets)


class SavedAddress(msgspec.Struct, frozen=True):
    label: str
    chain: str
    address: str
    note: str | None = None
    id: str | None = None

    @classmethod
    def from_wire(cls, data: Any) -> "SavedAddress":
        r = WireReader(data, "portfolio_address")
        inner = r.child("address") if isinstance(r.raw("address"), dict) else r
        return cls(
            label=inner.text("label", default=""),
            chain=inner.text("chain"),
            address=inner.text("address"),
            note=inner.text("note", required=False),
            id=inner.text("id", required=False),
        )


class SendResult(msgspec.Struct, frozen=True):
    """`POST /wallet/send`. EVM sends are answered after the receipt, so `tx_hash` is final."""

    tx_hash: str
    chain: str
    from_address: str | None
    to: str
    amount: str
    token: str | None
    reconstructed: bool = False
    """True when the answer was lost and the send was proven by the sender's balance instead; the
    transaction hash is then unknown ("")."""

    @classmethod
    def from_wire(cls, data: Any) -> "SendResult":
        r = WireReader(data, "send")
        return cls(
            tx_hash=r.text("tx_hash"),
            chain=r.text("chain", default=""),
            from_address=r.text("from", required=False),
            to=r.text("to", default=""),
            amount=r.text("amount", default=""),
            token=r.text("token", required=False),
        )


class SwapQuote(msgspec.Struct, frozen=True):
    """`GET /wallet/swap/quote`: amounts in base units of each side's token."""

    from_chain: str
    to_chain: str
    from_token: str
    to_token: str
    from_amount: int
    to_amount: int
    from_amount_usd: int
    fee_rate: str
    estimated_fee_usd: int

    @classmethod
    def from_wire(cls, data: Any) -> "SwapQuote":
        r = WireReader(data, "swap_quote")
        q = r.child("quote")
        fee = r.child("integrator_fee")
        return cls(
            from_chain=q.text("fromChain", "from_chain", default=""),
            to_chain=q.text("toChain", "to_chain", default=""),
            from_token=q.text("fromToken", "from_token", default=""),
            to_token=q.text("toToken", "to_token", default=""),
            from_amount=q.integer("fromAmount", "from_amount"),
            to_amount=q.integer("toAmount", "to_amount", "expectedOutput"),
            from_amount_usd=q.money_or_zero("fromAmountUsd", "from_amount_usd"),
            fee_rate=fee.text("rate", default="0.5%"),
            estimated_fee_usd=fee.money_or_zero("estimated_fee_usd"),
        )


class SwapOrder(msgspec.Struct, frozen=True):
    """`POST /wallet/swap`: an order waiting for the caller's own deposit of `deposit_amount`."""

    swap_id: str
    order_id: str
    status: str
    deposit_address: str
    deposit_chain: str
    deposit_token: str
    deposit_amount: str
    expected_output: int
    fee_usd: int
    expires_at: str | None

    @classmethod
    def from_wire(cls, data: Any) -> "SwapOrder":
        r = WireReader(data, "swap")
        deposit = r.child("deposit")
        output = r.child("output")
        fee = r.raw("fee")
        fee_usd = WireReader(fee, "swap.fee").money_or_zero("amount_usd") if isinstance(fee, dict) else (
            WireReader({"v": fee}, "swap").money_or_zero("v")
        )
        return cls(
            swap_id=r.text("swap_id"),
            order_id=r.text("order_id"),
            status=r.text("status", default="awaiting_deposit"),
            deposit_address=deposit.text("address"),
            deposit_chain=deposit.text("chain", default=""),
            deposit_token=deposit.text("token", default=""),
            deposit_amount=deposit.text("amount"),
            expected_output=output.integer("expected_amount"),
            fee_usd=fee_usd,
            expires_at=r.text("expires_at", required=False),
        )


class SwapStatus(msgspec.Struct, frozen=True):
    order_id: str
    status: str
    output_amount: int | None
    refund_amount: int | None
    reason: str | None

    @classmethod
    def from_wire(cls, data: Any) -> "SwapStatus":
        r = WireReader(data, "swap_status")
        return cls(
            order_id=r.text("order_id", "orderId"),
            status=r.text("status"),
            output_amount=r.integer("output_amount", "outputAmount", default=-1)
            if r.has("output_amount", "outputAmount")
            else None,
            refund_amount=r.integer("refund_amount", "refundAmount", default=-1)
            if r.has("refund_amount", "refundAmount")
            else None,
            reason=r.text("reason", required=False),
        )


class WalletReferralStats(msgspec.Struct, frozen=True):
    """`available_usd` is earned − completed payouts; queued (`pending`) payouts are not deducted
    from it, so what can still be withdrawn is `available_usd − pending_usd`."""

    total_referrals: int
    total_earned_usd: int
    total_withdrawn_usd: int
    available_usd: int
    pending_usd: int | None = None

    @classmethod
    def from_wire(cls, data: Any) -> "WalletReferralStats":
        r = WireReader(data, "referral_stats")
        return cls(
            total_referrals=r.integer("total_referrals", default=0),
            total_earned_usd=r.money_or_zero("total_earned_usd"),
            total_withdrawn_usd=r.money_or_zero("total_withdrawn_usd"),
            available_usd=r.money_or_zero("available_usd", signed=True),
            pending_usd=r.money("pending_usd", required=False),
        )
