"""Escrow: what an escrow costs, how long it may lock money, and what comes back.

Facts of the real service: the creator's casino balance is debited the full amount at creation;
the fee is 1 % of the amount, taken out of it (the counterparty gets amount − fee on release);
at timeout the creator is refunded the amount **minus the fee**, even if the counterparty marked
the task complete; a disputed escrow stays locked until a manual review. The service clamps the
timeout to 1–720 h and refunds up to 5 min after the deadline.

The treasury's own rules on top: at most 72 h, refused (not clamped) beyond it, because silently
shortening a deadline changes what the counterparty agreed to; and the escrow-locked total may
not pass 30 % of the reserve (breaker 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from actors.policy.breakers import BreakerResult, escrow_lock
from actors.policy.buckets import DEFAULT_POLICY, HOUR_MS, Policy, PolicyError, require_int, share_ceil, usd

ESCROW_MIN = 100_000
"""$0.10: the service's smallest escrow."""

DEFAULT_TIMEOUT_HOURS = 24
"""The service's default deadline."""

REFUND_LAG_MS = 5 * 60_000
"""The service's timeout job runs every 5 min, so a refund can land up to this long after the deadline."""

Outcome = Literal["released", "refunded", "disputed"]


def escrow_fee(amount: int, fee_bp: int = DEFAULT_POLICY.escrow_fee_bp) -> int:
    """The 1 % fee in micro-USD, rounded up so the treasury never counts a micro of it too few.

    The service computes it to 6 decimals; rounding up here can only overstate it by one micro,
    which the reconciler sees as a tiny surplus, never a shortfall.
    """
    require_int(amount, "amount", minimum=0)
    return share_ceil(amount, fee_bp)


def returned_to_reserve(amount: int, outcome: Outcome, fee_bp: int = DEFAULT_POLICY.escrow_fee_bp) -> int:
    """What comes back to the treasury when an escrow ends.

    `released`: nothing (the counterparty is paid amount − fee); `refunded` (timeout): amount − fee;
    `disputed`: nothing yet — the money stays locked until a person decides.
    """
    require_int(amount, "amount", minimum=0)
    if outcome == "refunded":
        return amount - escrow_fee(amount, fee_bp)
    if outcome in ("released", "disputed"):
        return 0
    raise PolicyError(f"outcome: {outcome!r} must be released, refunded or disputed")


def net_to_counterparty(amount: int, fee_bp: int = DEFAULT_POLICY.escrow_fee_bp) -> int:
    """What the counterparty receives on release: the amount minus the fee."""
    return amount - escrow_fee(amount, fee_bp)


def timeout_problem(hours: object, policy: Policy = DEFAULT_POLICY) -> str | None:
    """Why a timeout is refused (not an integer of hours in 1–72), or None when it is fine."""
    if isinstance(hours, bool) or not isinstance(hours, int):
        return f"timeout {hours!r} must be a whole number of hours"
    if not 1 <= hours <= policy.escrow_max_timeout_hours:
        return f"timeout {hours} h is outside 1–{policy.escrow_max_timeout_hours} h"
    return None


def refund_due_ms(created_ms: int, timeout_hours: int) -> tuple[int, int]:
    """(deadline, latest expected refund) in ms: the refund lands between the two, if not released."""
    require_int(created_ms, "created_ms", minimum=0)
    require_int(timeout_hours, "timeout_hours", minimum=1)
    deadline = created_ms + timeout_hours * HOUR_MS
    return deadline, deadline + REFUND_LAG_MS


@dataclass(frozen=True)
class EscrowCheck:
    """The verdict on a new escrow: what it costs, what it locks, and every rule it breaks."""

    codes: tuple[str, ...]
    reasons: tuple[str, ...]
    fee: int
    locked_after: int
    """Escrow-locked total if it goes ahead (existing + amount + fee)."""
    breaker: BreakerResult | None

    @property
    def ok(self) -> bool:
        return not self.codes


def check_escrow(amount: int, timeout_hours: object, locked: int, reserve: int,
                 policy: Policy = DEFAULT_POLICY) -> EscrowCheck:
    """Check a new escrow of `amount` against the minimum, the timeout rule and breaker 7."""
    require_int(amount, "amount", minimum=0)
    require_int(locked, "locked", minimum=0)
    require_int(reserve, "reserve")
    problems: list[tuple[str, str]] = []
    if amount < ESCROW_MIN:
        problems.append(("below_minimum", f"escrow {usd(amount)} is below the {usd(ESCROW_MIN)} minimum"))
    timeout = timeout_problem(timeout_hours, policy)
    if timeout is not None:
        problems.append(("invalid_timeout", timeout))
    fee = escrow_fee(amount, policy.escrow_fee_bp)
    breaker = escrow_lock(locked, amount, fee, reserve, limit_bp=policy.escrow_reserve_bp)
    if breaker is not None:
        problems.append((breaker.breaker, breaker.reason))
    return EscrowCheck(
        tuple(c for c, _ in problems), tuple(r for _, r in problems), fee, locked + amount + fee, breaker
    )
