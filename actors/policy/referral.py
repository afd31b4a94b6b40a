"""Referral income: when to sweep it in, and when and how to put it to work.

Where commissions really land: casino and escrow commissions are credited straight to the casino
balance (nothing to collect); wallet and trading commissions sit with those services until
withdrawn, and a withdrawal takes the whole available amount, at least $1, and stays pending
until paid by hand. So the weekly sweep asks wallet and trading for anything of $1 or more;
the referral bucket then holds the income until it is reinvested: quarterly, or sooner once it
passes a threshold, 70 % to the reserve and 30 % to trading.
"""

from __future__ import annotations

from collections.abc import Mapping

from actors.policy.buckets import BP_SCALE, DEFAULT_POLICY, Policy, require_int, share_floor
from actors.policy.drift import Move
from messages.money import MICRO

WITHDRAW_MIN = 1 * MICRO
"""$1: the smallest referral withdrawal the wallet and trading services accept."""

SWEEP_SOURCES: tuple[str, ...] = ("wallet", "trading")
"""Services whose commissions must be withdrawn; casino and escrow credit the casino balance directly."""


def sweep_due(last_sweep_ms: int | None, now_ms: int, policy: Policy = DEFAULT_POLICY) -> bool:
    """The weekly sweep is due: never swept, or 7 days have passed (exactly 7 days is due)."""
    return last_sweep_ms is None or last_sweep_ms + policy.referral_sweep_interval_ms <= now_ms


def sweepable(available: Mapping[str, int]) -> dict[str, int]:
    """Of the commissions each service reports available, those a withdrawal would accept (≥ $1)."""
    return {
        service: require_int(available[service], f"available at {service}", minimum=0)
        for service in SWEEP_SOURCES
        if service in available and available[service] >= WITHDRAW_MIN
    }


def reinvest_due(last_reinvest_ms: int | None, now_ms: int, balance: int, policy: Policy = DEFAULT_POLICY) -> bool:
    """Reinvest now: there is income, and either 90 days have passed or it is above the threshold ($100)."""
    require_int(balance, "balance", minimum=0)
    if balance == 0:
        return False
    quarter_over = last_reinvest_ms is None or last_reinvest_ms + policy.referral_reinvest_interval_ms <= now_ms
    return quarter_over or balance > policy.referral_reinvest_threshold


def split_reinvest(amount: int, policy: Policy = DEFAULT_POLICY) -> dict[str, int]:
    """70 % to the reserve, 30 % to trading, exactly: trading's share is floored, the rest is the reserve's."""
    require_int(amount, "amount", minimum=0)
    trading = share_floor(amount, BP_SCALE - policy.referral_reserve_bp)
    return {"reserve": amount - trading, "trading": trading}


def plan_reinvest(
    amount: int, policy: Policy = DEFAULT_POLICY, *, reason: str = "referral reinvest"
) -> tuple[Move, ...]:
    """The moves out of the referral bucket for a reinvestment of `amount`.

    Under the minimum move ($10) nothing is moved: the income waits in the referral bucket until
    it is worth a move. A trading part under the minimum goes to the reserve with the rest.
    """
    parts = split_reinvest(amount, policy)
    if amount < max(policy.min_move, 1):
        return ()
    if parts["trading"] < policy.min_move:
        parts = {"reserve": amount, "trading": 0}
    return tuple(Move("referral", dest, part, reason) for dest, part in parts.items() if part)
