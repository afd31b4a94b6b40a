"""Decoded responses of the casino, escrow and faucet, with money as integer micro-USD.

Field names follow the venue's JSON, except that a dollar field loses its `_usd` suffix once it
holds micro-USD (`balance_usd` → `balance`), so a name never lies about its unit. Multipliers and
rolls stay exact decimal text. Unknown fields (`_info`, hints, next steps) are ignored.
"""

from __future__ import annotations

from typing import Any

import msgspec

from venue.client.base import DecimalText, Secret, SignedUsdMicros, UsdMicros

# ── casino: account ──────────────────────────────────────────────────────────────────────────


class CasinoRegistration(msgspec.Struct, frozen=True):
    agent_id: str
    api_key: Secret
    referral_code: str
    balance: UsdMicros = UsdMicros(0)
    tier: str = "free"
    risk_factor: float = 0.25


class CasinoLifetime(msgspec.Struct, frozen=True):
    total_deposited: UsdMicros = UsdMicros(0)
    total_withdrawn: UsdMicros = UsdMicros(0)
    total_wagered: UsdMicros = UsdMicros(0)
    total_won: UsdMicros = UsdMicros(0)
    net_profit: SignedUsdMicros = SignedUsdMicros(0)


class Activity(msgspec.Struct, frozen=True):
    type: str
    amount: UsdMicros
    balance_after: UsdMicros | None = None
    reason: str | None = None
    service: str | None = None
    at: str | None = None


class CasinoBalance(msgspec.Struct, frozen=True):
    agent_id: str
    balance: UsdMicros = msgspec.field(name="balance_usd")
    tier: str = "free"
    risk_factor: float = 0.25
    lifetime: CasinoLifetime = CasinoLifetime()
    recent_activity: list[Activity] = []


class LedgerEntry(msgspec.Struct, frozen=True, rename="camel"):
    """A casino ledger row (the venue sends these camelCase)."""

    id: int | str
    type: str
    amount: UsdMicros
    agent_id: str | None = None
    balance_after: UsdMicros | None = None
    reason: str | None = None
    reference: str | None = None
    service: str | None = None
    created_at: int | str | None = None
    at: str | None = None


class Deposit(msgspec.Struct, frozen=True, rename="camel"):
    id: str | int
    amount: UsdMicros
    status: str
    agent_id: str | None = None
    chain: str | None = None
    token: str | None = None
    tx_hash: str | None = None
    created_at: int | str | None = None
    credited_at: int | str | None = None


class Withdrawal(msgspec.Struct, frozen=True, rename="camel"):
    id: str | int
    amount: UsdMicros
    status: str
    fee: UsdMicros | None = None
    agent_id: str | None = None
    chain: str | None = None
    token: str | None = None
    address: str | None = None
    tx_hash: str | None = None
    created_at: int | str | None = None
    completed_at: int | str | None = None


class DepositAddress(msgspec.Struct, frozen=True):
    chain: str
    address: str
    send_token: str | None = None
    auto_swap: bool | None = None
    swap_fee: str | None = None
    minimum: str | None = None


class WithdrawResult(msgspec.Struct, frozen=True):
    """`status` is `completed` (sent on-chain) or `pending_review` (> $1000, already debited)."""

    status: str
    withdrawal_id: str
    amount: UsdMicros
    fee: UsdMicros = UsdMicros(500_000)
    address: str | None = None
    tx_hash: str | None = None
    new_balance: UsdMicros | None = None


class Payment(msgspec.Struct, frozen=True):
    tx_id: str
    sender_new_balance: UsdMicros
    to: str | None = None
    amount: UsdMicros | None = None
    memo: str | None = None


class ReferralCode(msgspec.Struct, frozen=True):
    referral_code: str


class ReferralStats(msgspec.Struct, frozen=True):
    total_referrals: int = 0
    total_earned: UsdMicros = msgspec.field(name="total_earned_usd", default=UsdMicros(0))
    last_30_days: UsdMicros = msgspec.field(name="last_30_days_usd", default=UsdMicros(0))
    by_level: dict[str, Any] = {}


# ── casino: bets ─────────────────────────────────────────────────────────────────────────────


class BetKelly(msgspec.Struct, frozen=True):
    bankroll: UsdMicros | None = None
    risk_factor: float | None = None
    max_bet_this_game: UsdMicros | None = None
    bets_until_ruin: float | None = None  # null stands for Infinity
    suggested_bet: UsdMicros | None = None


class BetResult(msgspec.Struct, frozen=True):
    """One settled bet. `amount_won` is GROSS (stake included; 0 on a loss), so the net result is
    `amount_won - amount_bet`; `won` is also true on pushes and sub-1× payouts.

    `recovered` marks a bet found by lookup after a lost response: then `new_balance` is the
    balance read at lookup time and `kelly` is absent.
    """

    bet_id: str
    game: str
    amount_bet: int
    amount_won: int
    won: bool
    payout_multiplier: str
    roll: str
    new_balance: int
    client_seed: str
    nonce: int | None = None
    server_seed_hash: str | None = None
    result_hash: str | None = None
    result: dict[str, Any] = {}
    kelly: BetKelly | None = None
    recovered: bool = False

    @property
    def net(self) -> int:
        return self.amount_won - self.amount_bet


class BetProof(msgspec.Struct, frozen=True):
    client_seed: str
    server_seed_hash: str | None = None
    nonce: int | None = None
    result_hash: str | None = None


class BetWire(msgspec.Struct, frozen=True):
    """A bet as the venue sends it; `CasinoClient` flattens it into `BetResult`."""

    bet_id: str
    game: str
    amount_bet: UsdMicros
    won: bool
    payout_multiplier: DecimalText
    amount_won: UsdMicros
    new_balance: UsdMicros
    proof: BetProof
    result: dict[str, Any] = {}
    kelly: BetKelly | None = None


class BetError(msgspec.Struct, frozen=True):
    """A batch item that failed on its own (the batch itself still answered 200)."""

    error: str
    message: str | None = None
    max_bet: UsdMicros | None = None


class BatchSummary(msgspec.Struct, frozen=True):
    """`total_wagered` is recomputed from the results: the venue's own figure is always 0."""

    total: int
    won: int
    lost: int
    errors: int
    total_wagered: int
    total_won: int


class BatchResult(msgspec.Struct, frozen=True):
    results: list[BetResult | BetError]
    summary: BatchSummary
    balance_after: int
    kelly_max_next_bet: int


class HistoryBet(msgspec.Struct, frozen=True):
    id: str
    game: str
    amount: UsdMicros
    amount_won: UsdMicros
    won: bool
    multiplier: DecimalText | None = None
    net: SignedUsdMicros | None = None
    verify: str | None = None
    at: str | None = None
    client_seed: str | None = None  # sandbox rows carry it; real rows do not

    @property
    def result_hash(self) -> str | None:
        if self.verify and "hash=" in self.verify:
            return self.verify.rsplit("hash=", 1)[1].strip() or None
        return None


class BetHistory(msgspec.Struct, frozen=True):
    bets: list[HistoryBet] = []


class KellyConfig(msgspec.Struct, frozen=True):
    risk_factor: float
    new_limits: dict[str, Any] = {}


class SeedHash(msgspec.Struct, frozen=True):
    server_seed_hash: str
    current_nonce: int | None = None


class BetVerification(msgspec.Struct, frozen=True):
    bet_id: str
    client_seed: str
    nonce: int
    result_hash: str
    server_seed_hash: str
    server_seed: str | None = None
    revealed: bool = False
    valid: bool | None = None
    roll: DecimalText | None = None


class SeedRotation(msgspec.Struct, frozen=True):
    previous_seed: str
    previous_seed_hash: str
    new_seed_hash: str


# ── escrow ───────────────────────────────────────────────────────────────────────────────────


class EscrowCreated(msgspec.Struct, frozen=True):
    escrow_id: str
    amount: UsdMicros = msgspec.field(name="amount_usd")
    commission: UsdMicros = msgspec.field(name="commission_usd")
    net_to_counterparty: UsdMicros = UsdMicros(0)
    creator_id: str = ""
    counterparty_id: str = ""
    status: str = "funded"
    timeout_hours: int = 24
    auto_release_at: str | None = None
    description: str | None = None
    recovered: bool = False


class EscrowEvent(msgspec.Struct, frozen=True):
    event: str
    actor_id: str | None = None
    note: str | None = None
    created_at: int | str | None = None


class Escrow(msgspec.Struct, frozen=True):
    """`GET /escrow/:id`. States: funded → (completed) → released; or disputed / refunded."""

    escrow_id: str
    status: str
    amount: UsdMicros = msgspec.field(name="amount_usd")
    commission: UsdMicros = msgspec.field(name="commission_usd")
    net_to_counterparty: UsdMicros = UsdMicros(0)
    description: str = ""
    creator_id: str = ""
    counterparty_id: str = ""
    timeout_hours: int = 24
    created_at: str | None = None
    auto_release_at: str | None = None
    completed_at: str | None = None
    released_at: str | None = None
    disputed_at: str | None = None
    events: list[EscrowEvent] = []


class EscrowTransition(msgspec.Struct, frozen=True):
    """complete / dispute answers."""

    status: str
    escrow_id: str | None = None
    auto_release_at: str | None = None
    reason: str | None = None


class EscrowRelease(msgspec.Struct, frozen=True):
    status: str
    amount_released: UsdMicros
    commission: UsdMicros
    referral_commission: UsdMicros = UsdMicros(0)
    counterparty_id: str | None = None
    escrow_id: str | None = None


class EscrowStats(msgspec.Struct, frozen=True):
    total_created: int = 0
    total_released: int = 0
    total_disputed: int = 0
    total_volume: UsdMicros = msgspec.field(name="total_volume_usd", default=UsdMicros(0))
    total_commission: UsdMicros = msgspec.field(name="total_commission_usd", default=UsdMicros(0))


# ── faucet ───────────────────────────────────────────────────────────────────────────────────


class FaucetClaim(msgspec.Struct, frozen=True):
    credited: UsdMicros
    claim_id: str
    agent_id: str
    referral_tracked: bool = False


class FaucetStats(msgspec.Struct, frozen=True):
    total_claims: int = 0
    total_distributed: UsdMicros = msgspec.field(name="total_distributed_usd", default=UsdMicros(0))
