"""From an `OpenPosition` command to a checked order, or to the reason it is refused.

Pure: the actor reads the ledger and the venue's facts (price, caps) and passes them in, so every
refusal can be tested without a venue. The rules are those of `actors.policy.trading_rules`
(used, not repeated here): Kelly sizing from the agent's record, a stop-loss on every order, a
take-profit at least 2× the stop distance, leverage within the lower of the policy's and the
venue's cap (refused above it, never lowered silently), and margin at most 10 % of the bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import msgspec

from actors.kelly import KellyInputError
from actors.policy.buckets import DEFAULT_POLICY, Policy, PolicyError, share_ceil, usd
from actors.policy.trading_rules import size_trade, stop_prices, validate_order
from actors.trading.book import fee_allowance
from messages.money import MICRO, floor_to_cent
from messages.trading_msgs import OpenPosition, TradeSizing

MIN_NOTIONAL = 10 * MICRO
"""Hyperliquid refuses orders under $10 of notional; refusing them here keeps the fence clean."""


@dataclass(frozen=True)
class VenueFacts:
    """What the venue says about one market for one account, read just before sizing."""

    price: Decimal
    max_leverage: int
    """The lower of the account's and the market's maximum."""
    max_position: int
    """The account's largest notional, micro-USD."""


@dataclass(frozen=True)
class Refusal:
    code: str
    reason: str
    sizing: TradeSizing | None = None


@dataclass(frozen=True)
class SizedOrder:
    notional: int
    leverage: int
    margin: int
    held: int
    """What the fence reserves: the margin plus the opening-fee allowance."""
    cap: int
    """The fence's cap: 10 % of the bucket as margin, plus the fee allowance at that size."""
    stop_pct: Decimal
    take_profit_multiple: Decimal
    stop_loss: Decimal
    take_profit: Decimal
    """Both at the price read before the order; the real triggers are set from the fill price."""
    sizing: TradeSizing


def _decimal(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise PolicyError(f"{name}: {text!r} is not a number") from None
    if not value.is_finite():
        raise PolicyError(f"{name}: {text!r} is not finite")
    return value


def plan_order(
    cmd: OpenPosition, bucket: int, facts: VenueFacts, policy: Policy = DEFAULT_POLICY
) -> SizedOrder | Refusal:
    """Size and check one order against a trading bucket of `bucket` micro-USD (everything the
    bucket owns: available, reserved and posted as margin)."""
    try:
        distance = _decimal(cmd.stop_distance, "stop_distance")
        multiple = _decimal(cmd.take_profit_multiple, "take_profit_multiple")
    except PolicyError as exc:
        return Refusal("invalid_input", str(exc))
    if not 0 < distance < 1:
        return Refusal("missing_stop_loss" if distance == 0 else "invalid_stop_loss",
                       f"stop distance {cmd.stop_distance} must be a fraction of the entry in (0, 1): "
                       f"every order carries a stop-loss")
    if multiple <= 0:
        return Refusal("invalid_take_profit", f"take-profit multiple {cmd.take_profit_multiple} must be positive")
    stop_pct = distance * 100

    cap = min(policy.max_leverage, facts.max_leverage)
    if cmd.leverage > cap:
        return Refusal("leverage_above_cap", f"leverage {cmd.leverage}× is above the {cap}× cap "
                                             f"(policy {policy.max_leverage}×, venue {facts.max_leverage}×): "
                                             f"refused rather than silently lowered")
    try:
        kelly_policy = msgspec.structs.replace(policy, kelly_fraction=str(cmd.kelly))
        size = size_trade(cmd.win_rate, cmd.win_loss_ratio, bucket, stop_pct, cmd.leverage, kelly_policy)
    except (KellyInputError, PolicyError) as exc:
        return Refusal("invalid_input", str(exc))
    reason = size.kelly.reason
    if size.kelly.full_fraction <= 0:
        return Refusal("no_edge", reason, _sizing(cmd, bucket, size.kelly, 0, 0, 0, False, reason))

    notional, capped = size.notional, size.margin_capped
    if cmd.notional is not None:
        notional, reason = cmd.notional, f"notional {usd(cmd.notional)} set by the agent (Kelly: {usd(size.notional)})"
        if notional > facts.max_position:
            return Refusal("position_too_large", f"notional {usd(notional)} is above the venue's "
                                                 f"{usd(facts.max_position)} maximum position")
    elif notional > facts.max_position:
        notional, capped = floor_to_cent(facts.max_position), True
        reason = f"{reason}; held to the venue's {usd(facts.max_position)} maximum position"
    elif size.margin_capped:
        reason = f"{reason}; held to {policy.max_trade_margin_bp / 100:.2f} % of the bucket as margin"
    margin = -(-notional // cmd.leverage)
    at_stop = int(Decimal(notional) * distance)
    risk = at_stop if cmd.notional is not None else min(size.risk, at_stop)
    sizing = _sizing(cmd, bucket, size.kelly, risk, notional, margin, capped, reason)
    if notional < MIN_NOTIONAL:
        return Refusal("too_small", f"notional {usd(notional)} is under the venue's {usd(MIN_NOTIONAL)} minimum "
                                    f"({reason})", sizing)

    try:
        stop_loss, take_profit = stop_prices(facts.price, cmd.side, stop_pct, multiple)
    except PolicyError as exc:
        return Refusal("invalid_take_profit", str(exc), sizing)
    check = validate_order(side=cmd.side, entry=facts.price, size_usd=notional, leverage=cmd.leverage,
                           stop_loss=stop_loss, take_profit=take_profit, trading_balance=bucket,
                           venue_max_leverage=facts.max_leverage, policy=policy)
    if not check.ok:
        return Refusal(check.codes[0], "; ".join(check.reasons), sizing)

    margin_cap = share_ceil(bucket, policy.max_trade_margin_bp)
    return SizedOrder(notional=notional, leverage=cmd.leverage, margin=check.margin,
                      held=check.margin + fee_allowance(notional),
                      cap=margin_cap + fee_allowance(margin_cap * cmd.leverage), stop_pct=stop_pct,
                      take_profit_multiple=multiple, stop_loss=stop_loss, take_profit=take_profit, sizing=sizing)


def _sizing(cmd: OpenPosition, bucket: int, kelly, risk: int, notional: int, margin: int, capped: bool,
            reason: str) -> TradeSizing:
    return TradeSizing(win_rate=cmd.win_rate, win_loss_ratio=cmd.win_loss_ratio, full_fraction=str(kelly.full_fraction),
                       applied_fraction=str(kelly.applied_fraction), bucket=bucket, risk=risk, notional=notional,
                       margin=margin, leverage=cmd.leverage, margin_capped=capped, reason=reason)
