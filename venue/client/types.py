"""Decoded responses of the casino, escrow and faucet, with money as integer micro-USD.

Field names follow the venue's JSON, except that a dollar field loses its `_usd` suffix once it
holds micro-USD (`balance_usd` → `balance`), so a name never lies about its unit. Multipliers and
rolls stay exact decimal text. Unknown fields (`_info`, hints, next steps) are ignored.

Guaranteed and optional, checked against the real services' recorded answers
(tests/venue/contract): a field WITHOUT a default is guaranteed — the real service always sends
it (possibly as `null` when its type says `| None`), and an answer without it is refused as
`unexpected_response`. A field with the default `None` is optional: the real service leaves it
out in some answers (or only the sandbox sends it), and `None` means "not told", never zero.
No wire field defaults to a value (0, "", [], {}); the only non-None defaults are fields the
client itself fills in (`recovered`, `revealed`), never read from the wire. The treasury decides
money only from guaranteed fields, or from an optional field it checked was present.
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
    balance: UsdMicros
    tier: str
    risk_factor: float


class CasinoLifetime(msgspec.Struct, frozen=True):
    total_deposited: UsdMicros
    total_withdrawn: UsdMicros
    total_wagered: UsdMicros
    total_won: UsdMicros
    net_profit: SignedUsdMicros


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
    tier: str
    risk_factor: float
    lifetime: CasinoLifetime
    recent_activity: list[Activity]


class LedgerEntry(msgspec.Struct, frozen=True, rename="camel"):
    """A casino ledger row (the venue sends these camelCase). `id` is an opaque string (UUIDs,
    `<escrow>_debit`…): it does not order. `created_at` is whole Unix SECONDS, and rows of one
    second come oldest first (the list is newest second first). Reasons seen on the real casino:
    `deposit:<chain>:<token>`, `faucet_claim: …`, `reservation` / `reservation_release` (a bet's
    stake and gross payout, `reference` = bet id), `payment_sent` / `payment_received`,
    `escrow_lock: <id>`, `escrow_release: <id>`, `referral_commission_l<n>:<bet>`, `withdrawal`."""

    id: str
    type: str
    amount: UsdMicros
    agent_id: str
    balance_after: UsdMicros
    reason: str
    reference: str | None
    service: str
    created_at: int
    at: str

    @property
    def created_ms(self) -> int:
        return self.created_at * 1000


class Deposit(msgspec.Struct, frozen=True, rename="camel"):
    """`GET /auth/deposits` row. The dollar value is `amountUsd` (there is no `amount`);
    `amountRaw` is in the token's base units. Times are Unix seconds."""

    id: str
    amount: UsdMicros = msgspec.field(name="amountUsd")
    status: str
    agent_id: str
    chain: str
    token: str
    tx_hash: str | None
    created_at: int
    credited_at: int | None
    amount_raw: int | None = None


class Withdrawal(msgspec.Struct, frozen=True, rename="camel"):
    """`GET /auth/withdrawals` row; status `pending`, `completed`, `failed` (refunded) or
    `reviewing` (over $1000, debited). Times are Unix seconds."""

    id: str
    amount: UsdMicros
    status: str
    fee: UsdMicros
    agent_id: str
    chain: str
    token: str
    address: str
    tx_hash: str | None
    created_at: int
    completed_at: int | None

    @property
    def created_ms(self) -> int:
        return self.created_at * 1000


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
    fee: UsdMicros | None = None
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
    """Casino referral stats. Commissions are credited straight to the casino balance, so there
    is no `available`: `total_earned` is cumulative."""

    total_referrals: int
    total_earned: UsdMicros = msgspec.field(name="total_earned_usd")
    last_30_days: UsdMicros = msgspec.field(name="last_30_days_usd")
    by_level: dict[str, Any]


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
    """A bet as the venue sends it; `CasinoClient` flattens it into `BetResult`. `kelly` is
    absent in batch items."""

    bet_id: str
    game: str
    amount_bet: UsdMicros
    won: bool
    payout_multiplier: DecimalText
    amount_won: UsdMicros
    new_balance: UsdMicros
    proof: BetProof
    result: dict[str, Any]
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


class HistoryPagination(msgspec.Struct, frozen=True):
    total: int
    limit: int
    offset: int
    has_more: bool


class BetHistory(msgspec.Struct, frozen=True):
    """`GET /bets/history?limit=&offset=`: newest second first (rows of one second oldest
    first), at most 200 a page; `pagination.has_more` says whether older rows exist."""

    bets: list[HistoryBet]
    pagination: HistoryPagination


class KellyLimit(msgspec.Struct, frozen=True):
    """One line of `GET /kelly/limits`: the largest stake the venue accepts for that game now."""

    max_bet: UsdMicros
    kelly_fraction: float
    adjusted_fraction: float
    suggested_bet: UsdMicros


class KellyLimits(msgspec.Struct, frozen=True):
    """`GET /kelly/limits`. Keys of `limits`: coin_flip, dice_over_50/75/90/95,
    custom_25pct/50pct/75pct, roulette_red, roulette_number. The venue advertises these with
    1.96-style payouts, but its bet-time check uses round2(bankroll × risk_factor × p) for every
    negative-EV game, which the listed figures equal for the games the treasury plays."""

    bankroll: UsdMicros
    risk_factor: float
    limits: dict[str, KellyLimit]


class KellyConfig(msgspec.Struct, frozen=True):
    risk_factor: float
    new_limits: KellyLimits


class SeedHash(msgspec.Struct, frozen=True):
    """`GET /fairness/seed-hash`. The real service sends no nonce; `current_nonce` is optional."""

    server_seed_hash: str
    current_nonce: int | None = None


class VerificationProof(msgspec.Struct, frozen=True):
    server_seed: str
    server_seed_hash: str
    client_seed: str
    nonce: int
    result_hash: str
    hash_matches: bool
    computed_result: DecimalText | None = None


class VerificationWire(msgspec.Struct, frozen=True):
    """`POST /fairness/verify` as sent: before the seed is revealed `status:
    "seed_not_yet_revealed"` with the commitment fields at top level; after, `verified` and
    everything under `proof`."""

    bet_id: str
    status: str | None = None
    verified: bool | None = None
    proof: VerificationProof | None = None
    server_seed_hash: str | None = None
    client_seed: str | None = None
    nonce: int | None = None
    result_hash: str | None = None


class BetVerification(msgspec.Struct, frozen=True):
    """Built by `CasinoClient.verify_bet` from either shape of `VerificationWire`. `revealed`
    False: the seed is still secret, `valid` and `server_seed` are None."""

    bet_id: str
    client_seed: str
    nonce: int
    result_hash: str
    server_seed_hash: str
    revealed: bool
    server_seed: str | None = None
    valid: bool | None = None
    roll: DecimalText | None = None


class RevealedSeed(msgspec.Struct, frozen=True):
    seed: str
    seed_hash: str
    bets_made: int


class SeedRotation(msgspec.Struct, frozen=True):
    """`POST /fairness/rotate`: the old seed revealed (an object) and the new commitment."""

    previous_seed: RevealedSeed
    new_seed_hash: str


# ── escrow ───────────────────────────────────────────────────────────────────────────────────


class EscrowCreated(msgspec.Struct, frozen=True):
    escrow_id: str
    amount: UsdMicros = msgspec.field(name="amount_usd")
    commission: UsdMicros = msgspec.field(name="commission_usd")
    net_to_counterparty: UsdMicros
    creator_id: str
    counterparty_id: str
    status: str
    timeout_hours: int
    auto_release_at: str
    description: str
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
    net_to_counterparty: UsdMicros
    description: str
    creator_id: str
    counterparty_id: str
    timeout_hours: int
    created_at: str
    auto_release_at: str
    completed_at: str | None
    released_at: str | None
    disputed_at: str | None
    events: list[EscrowEvent] | None = None
    """Only participants (a request with a participant's key) get the events."""


class EscrowTransition(msgspec.Struct, frozen=True):
    """complete / dispute answers."""

    status: str
    escrow_id: str
    auto_release_at: str | None = None
    """Sent by complete only."""
    reason: str | None = None
    """Sent by dispute only."""


class EscrowRelease(msgspec.Struct, frozen=True):
    status: str
    amount_released: UsdMicros
    commission: UsdMicros
    referral_commission: UsdMicros
    counterparty_id: str
    escrow_id: str


class EscrowStats(msgspec.Struct, frozen=True):
    total_created: int
    total_released: int
    total_disputed: int
    total_volume: UsdMicros = msgspec.field(name="total_volume_usd")
    total_commission: UsdMicros = msgspec.field(name="total_commission_usd")


# ── faucet ───────────────────────────────────────────────────────────────────────────────────


class FaucetClaim(msgspec.Struct, frozen=True):
    credited: UsdMicros
    claim_id: str
    agent_id: str
    referral_tracked: bool


class FaucetStats(msgspec.Struct, frozen=True):
    """`GET /faucet/stats`: the dollar total is `total_value_usd`."""

    total_claims: int
    total_agents: int
    total_value: UsdMicros = msgspec.field(name="total_value_usd")
    avg_per_agent: UsdMicros


CLIENT_BUILT: tuple[type, ...] = (BetResult, BatchSummary, BatchResult, BetVerification)
"""Types the client assembles itself (never decoded straight from the wire)."""

CLIENT_FILLED_FIELDS = frozenset({"recovered", "revealed", "reconstructed"})
"""Fields the client sets (never read from the wire): the only ones with a non-None default."""
