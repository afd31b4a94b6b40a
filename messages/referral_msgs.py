"""Messages of referral income, agent onboarding and the multi-chain balance view.

Money is integer micro-USD (`Micros`). On-chain amounts in a coin's base unit (wei, lamports…)
travel as decimal strings: 10 ETH is 10^19 wei, beyond what a msgpack integer holds. No message
here ever carries an API key, a mnemonic or a private key: they live in the credentials hash only.
"""

from __future__ import annotations

from typing import Literal

from messages.base import Message, Micros

ReferralSource = Literal["casino", "wallet", "trading"]
PayoutSource = Literal["wallet", "trading"]
"""Services whose commissions must be withdrawn (casino commissions land in the casino balance)."""

# ---------------------------------------------------------------- referral: commands


class SweepReferrals(Message, frozen=True):
    """Weekly: count new referral commissions into the referral bucket and ask for payouts.

    Sent on a schedule; the actor itself decides whether the sweep is due (7 days since the last),
    so sending it more often is harmless.
    """


class ReinvestReferrals(Message, frozen=True):
    """Put referral income to work (70 % reserve, 30 % trading) when the quarter is over or the
    income is above the threshold; otherwise a skip is journaled."""


class ReferralPayoutLanded(Message, frozen=True):
    """A referral payout arrived at the treasury's address (seen on-chain or by an operator).

    Needed for trading, whose referral stats do not report what has been paid; the wallet's
    payouts are also noticed by the sweep itself. The amount moves from `referral:in_transit` to
    the referral bucket's available balance; more than is in transit from `source` is refused.
    """

    source: PayoutSource
    amount: Micros
    withdrawal_id: str = ""


class MoveReferralIncome(Message, frozen=True):
    """To the rebalancer: move reinvested referral income out of the referral bucket.

    `to_reserve` + `to_trading` leave the referral bucket; `held_at` says where that money sits
    today (`casino`: in the casino balance, where casino commissions land; `chain`: payouts on
    the treasury's own address; `unknown`: income whose location was not tracked), so the mover
    knows which silo to draw from.
    """

    to_reserve: Micros
    to_trading: Micros
    held_at: dict[str, Micros]
    reason: str


# ---------------------------------------------------------------- referral: events


class ReferralSwept(Message, frozen=True):
    """One sweep's result, per source.

    `credited`: counted into the referral bucket now (casino: available at once; wallet and
    trading: `referral:in_transit` until the payout lands). `withdrawals`: payouts requested now.
    `landed`: payouts seen arriving now. `below_minimum`: what a venue holds under the $1
    withdrawal minimum and was left there. `in_transit` and `income` are the totals after.
    """

    credited: dict[str, Micros]
    withdrawals: dict[str, Micros]
    withdrawal_ids: dict[str, str]
    landed: dict[str, Micros]
    below_minimum: dict[str, Micros]
    in_transit: Micros
    income: Micros


class ReferralSweepSkipped(Message, frozen=True):
    """A sweep that moved nothing: not due yet, or every venue under the $1 minimum with nothing
    new at the casino. `available` is what each venue reported."""

    reason: Literal["not_due", "below_minimum"]
    next_due_ms: int | None = None
    available: dict[str, Micros] = {}


class ReferralPayoutConfirmed(Message, frozen=True):
    """A payout counted as landed: `referral:in_transit` → `referral`."""

    source: PayoutSource
    amount: Micros
    withdrawal_id: str = ""


class ReferralReinvested(Message, frozen=True):
    """Referral income sent to work: `to_reserve` + `to_trading` = `amount`, split 70/30 exactly
    (trading's share floored, the remainder to the reserve). `via` names who moves the money."""

    amount: Micros
    to_reserve: Micros
    to_trading: Micros
    held_at: dict[str, Micros]
    via: str


class ReferralReinvestSkipped(Message, frozen=True):
    """A reinvestment not made: not due, under the minimum move, or the treasury is not ACTIVE."""

    reason: Literal["not_due", "below_minimum", "risk_state"]
    income: Micros
    detail: str = ""


# ---------------------------------------------------------------- onboarding: events


class VenueRegistered(Message, frozen=True):
    """The agent got its own account at a venue (the venue's agent id; the key is stored, never
    journaled)."""

    service: Literal["casino", "trading", "wallet"]
    venue_agent_id: str


class WalletCreated(Message, frozen=True):
    """The agent's multi-chain wallet: public addresses only (the mnemonic is stored, never journaled)."""

    addresses: dict[str, str]


class FaucetChecked(Message, frozen=True):
    """What became of the one-time $1: `claimed`, `already_claimed` (registration claimed it),
    `not_empty` (the casino balance already held money), `has_deposits`, `rate_limited`."""

    outcome: str
    credited: Micros = 0
    casino_balance: Micros = 0


class AgentOnboarded(Message, frozen=True):
    """Onboarding finished: the venue ids, the capital and whether this run allocated it."""

    venue_agent_ids: dict[str, str]
    capital: Micros
    allocated: bool
    faucet: str


# ---------------------------------------------------------------- chain view: events


class ChainSwapPlaced(Message, frozen=True):
    """A native coin → USDC swap order accepted within the slippage cap.

    `amount` is in the coin's base units (decimal text); `quote_out`, `min_out` and
    `expected_out` are micro-USDC. `deposited` says whether the deposit was sent as well.
    """

    chain: str
    from_token: str
    amount: str
    quote_out: Micros
    min_out: Micros
    expected_out: Micros
    order_id: str
    slippage_bp: int
    deposited: bool = False


class ChainSwapRefused(Message, frozen=True):
    """A swap not made: the quote or the fill would pay less than the policy minimum, or the
    chain cannot send the deposit. Nothing moved."""

    chain: str
    from_token: str
    amount: str
    min_out: Micros
    slippage_bp: int
    reason: str
    quote_out: Micros | None = None


class ChainSwapRejected(Message, frozen=True):
    """A swap order the venue refused (its error code in `reason`). Nothing moved."""

    chain: str
    from_token: str
    amount: str
    min_out: Micros
    slippage_bp: int
    reason: str
    quote_out: Micros | None = None


MESSAGES: tuple[type, ...] = (
    SweepReferrals, ReinvestReferrals, ReferralPayoutLanded, MoveReferralIncome,
    ReferralSwept, ReferralSweepSkipped, ReferralPayoutConfirmed, ReferralReinvested, ReferralReinvestSkipped,
    VenueRegistered, WalletCreated, FaucetChecked, AgentOnboarded,
    ChainSwapPlaced, ChainSwapRefused, ChainSwapRejected,
)
