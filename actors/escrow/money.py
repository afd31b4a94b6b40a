"""How an escrow moves the reserve's money in the ledger, at each step (pure, integer micro-USD).

The venue debits the AMOUNT from the casino balance at creation and takes its 1 % fee out of
that amount: on release the counterparty gets amount − fee, on a timeout the creator gets
amount − fee back. So what the treasury has at the venue while an escrow is open is exactly the
amount, and that is what `reserve:locked` holds for it.

The fee is still counted on top when the escrow is judged, on the safe side: the fence reserves
amount + fee (so the reserve must have both available) under a cap that is breaker 7 itself
(locked + amount + fee ≤ 30 % of the reserve). Once the venue has the escrow, the fee part of
that reservation goes back to available: it has not left, and keeping it aside would make the
ledger disagree with the venue by the fee.

Ledger total (what RiskGuard judges) through an escrow's life:
create: unchanged (available → locked); dispute: unchanged; release: − amount (the payment and
the fee leave); refund: − fee (amount − fee comes back to available).
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.policy.buckets import DEFAULT_POLICY, Policy, share_floor
from actors.policy.escrow_rules import escrow_fee, returned_to_reserve

BUCKET = "reserve"
AVAILABLE = BUCKET
RESERVED = f"{BUCKET}:reserved"
LOCKED = f"{BUCKET}:locked"

CASINO_HOMED = ("casino", "referral")
"""The buckets whose money lives in the casino balance (`rebalancer.HOME_SILO`): the casino
bucket bets from it, casino referral commissions land in it. An escrow, paid from that same
balance, may take only what is beyond their claims (the reserve's parked money, or money nothing
booked); reconciliation counts what it took against the reserve (`actors/silo/reconcile.py`)."""


def to_reserve(amount: int, policy: Policy = DEFAULT_POLICY) -> int:
    """What the fence reserves for a new escrow: the amount plus its fee (rounded up)."""
    return amount + escrow_fee(amount, policy.escrow_fee_bp)


def lock_cap(reserve_total: int, locked: int, policy: Policy = DEFAULT_POLICY) -> int:
    """The fence cap that IS breaker 7: the most (amount + fee) a new escrow may reserve.

    `escrow_lock` fires when (locked + amount + fee) × 10 000 > reserve × 3 000; for integers
    that is exactly (amount + fee) > ⌊reserve × 3 000 / 10 000⌋ − locked. May be negative (the
    reserve shrank under existing locks): then every new escrow is refused.
    """
    return share_floor(reserve_total, policy.escrow_reserve_bp) - locked


@dataclass(frozen=True)
class LedgerMove:
    """Deltas to the agent's ledger fields, and how much left the treasury (the ledger total)."""

    deltas: tuple[tuple[str, int], ...]
    left: int
    """Micro-USD that left the ledger total: paid out or spent on the fee."""


def on_created(amount: int, reserved: int) -> LedgerMove:
    """Settle the fence reservation (`reserved` = amount + fee): amount locked, the fee part freed."""
    return LedgerMove(((RESERVED, -reserved), (LOCKED, amount), (AVAILABLE, reserved - amount)), 0)


def on_released(amount: int) -> LedgerMove:
    """The locked amount leaves: amount − fee to the counterparty, the fee to the venue."""
    return LedgerMove(((LOCKED, -amount),), amount)


def on_refunded(amount: int, policy: Policy = DEFAULT_POLICY) -> LedgerMove:
    """Timeout: amount − fee comes back to the reserve's available money; the fee is gone."""
    back = returned_to_reserve(amount, "refunded", policy.escrow_fee_bp)
    return LedgerMove(((LOCKED, -amount), (AVAILABLE, back)), amount - back)


def on_failed(reserved: int) -> LedgerMove:
    """The venue refused: the whole reservation goes back, nothing else changes."""
    return LedgerMove(((RESERVED, -reserved), (AVAILABLE, reserved)), 0)

