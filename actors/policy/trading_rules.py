"""Rules every perpetual-futures order must pass, and the sizing and exits that go with them.

Prices are `Decimal` (they are quotes, not money); sizes, margins and risks are integer micro-USD.
The venue takes `size_usd` as notional, `leverage` as an integer it silently caps, and stop-loss
and take-profit as absolute trigger prices it only checks when polled; it has no trailing stop.
So the treasury checks the caps itself (never trusting a silent cap), computes absolute stops here,
and runs the trailing stop as the pure state machine below.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from actors.kelly import KellyResult, kelly_stake
from actors.policy.buckets import (
    BP_SCALE,
    DEFAULT_POLICY,
    Policy,
    PolicyError,
    bp_text,
    exceeds_share,
    require_int,
    share_floor,
    usd,
)
from messages.money import floor_to_cent

Side = Literal["long", "short"]
SIDES: tuple[Side, ...] = ("long", "short")


def _price(value: object, name: str) -> Decimal:
    """A positive finite Decimal price; floats are refused so no binary rounding sneaks in."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise PolicyError(f"{name}: expected a Decimal, int or string price, got {type(value).__name__}")
    try:
        price = Decimal(value)
    except ArithmeticError:
        raise PolicyError(f"{name}: {value!r} is not a number") from None
    if not price.is_finite() or price <= 0:
        raise PolicyError(f"{name}: {value!r} must be a positive finite price")
    return price


def _side(side: object) -> Side:
    if side not in SIDES:
        raise PolicyError(f"side: {side!r} must be long or short")
    return side  # type: ignore[return-value]


# ---------------------------------------------------------------- stops


def stop_prices(entry: object, side: str, stop_pct: object, tp_multiple: object = 2) -> tuple[Decimal, Decimal]:
    """The absolute stop-loss and take-profit for an entry, as the venue wants them.

    `stop_pct` is a percentage of the entry (`Decimal("2")` = 2 %); the take-profit sits
    `tp_multiple` times as far from the entry on the other side. Long: stop below, profit above.
    """
    price = _price(entry, "entry")
    pct = _price(stop_pct, "stop_pct")
    multiple = _price(tp_multiple, "tp_multiple")
    if pct >= 100:
        raise PolicyError(f"stop_pct: {stop_pct!r} must be below 100 (%)")
    distance = price * pct / 100
    if _side(side) == "long":
        return price - distance, price + distance * multiple
    if distance * multiple >= price:
        raise PolicyError(f"a short take-profit {multiple} × {pct} % below {price} would be at or below zero")
    return price + distance, price - distance * multiple


# ---------------------------------------------------------------- order validation


@dataclass(frozen=True)
class OrderCheck:
    """The verdict on one order: every rule it breaks (code and sentence), and its margin."""

    codes: tuple[str, ...]
    reasons: tuple[str, ...]
    margin: int
    """Margin the order would post: ceil(notional / leverage), 0 if leverage is unusable."""
    leverage_cap: int
    """The leverage ceiling that applied: the lower of the policy's and the venue's."""

    @property
    def ok(self) -> bool:
        return not self.codes


def validate_order(*, side: str, entry: object, size_usd: int, leverage: int, stop_loss: object | None,
                   take_profit: object | None, trading_balance: int, venue_max_leverage: int,
                   policy: Policy = DEFAULT_POLICY) -> OrderCheck:
    """Check one order against the trading rules; never raises for a bad order, lists what is wrong.

    The rules: a known side and a positive entry; a positive notional `size_usd`; a stop-loss on
    the losing side of the entry; a take-profit on the winning side at least `min_reward_risk`
    (2) times as far as the stop; an integer leverage of at least 1 and at most the lower of the
    policy's cap (5×) and the venue's; margin (notional / leverage) of at most 10 % of the trading
    bucket; and a stop nearer than the liquidation distance (1 / leverage), or it would never fire.
    At each cap the order is still allowed. The treasury's own figures (`trading_balance`,
    `venue_max_leverage`) must be integers; a bad one raises `PolicyError`.
    """
    require_int(trading_balance, "trading_balance", minimum=0)
    cap = min(policy.max_leverage, require_int(venue_max_leverage, "venue_max_leverage", minimum=1))
    problems: list[tuple[str, str]] = []
    if side not in SIDES:
        problems.append(("invalid_side", f"side {side!r} must be long or short"))
    price = _order_price(entry, "entry", problems)
    if isinstance(size_usd, bool) or not isinstance(size_usd, int) or size_usd <= 0:
        problems.append(("invalid_size", f"size {size_usd!r} must be a positive integer of micro-USD"))
        size_usd = 0
    stop = _order_price(stop_loss, "stop_loss", problems)
    target = _order_price(take_profit, "take_profit", problems)
    risk = None
    if price is not None and side in SIDES:
        risk = _exit_problems(side, price, stop, target, policy.min_reward_risk, problems)

    margin = 0
    if isinstance(leverage, bool) or not isinstance(leverage, int) or leverage < 1:
        problems.append(("invalid_leverage", f"leverage {leverage!r} must be an integer of at least 1"))
    elif leverage > cap:
        problems.append(("leverage_above_cap", f"leverage {leverage}× is above the {cap}× cap "
                                               f"(policy {policy.max_leverage}×, venue {venue_max_leverage}×)"))
    else:
        margin = -(-size_usd // leverage)
        if exceeds_share(size_usd, trading_balance * leverage, policy.max_trade_margin_bp):
            problems.append(("margin_above_cap", f"margin {usd(margin)} is above {bp_text(policy.max_trade_margin_bp)} "
                                                 f"of the {usd(trading_balance)} trading bucket"))
        if risk is not None and risk * leverage >= price:
            problems.append(("stop_beyond_liquidation", f"a stop {risk} from {price} is beyond the 1/{leverage} "
                                                        f"liquidation distance at {leverage}×"))
    return OrderCheck(tuple(c for c, _ in problems), tuple(r for _, r in problems), margin, cap)


def _order_price(value: object | None, name: str, problems: list[tuple[str, str]]) -> Decimal | None:
    """The price, or None with the problem (`missing_<name>` / `invalid_<name>`) recorded."""
    if value is None:
        problems.append((f"missing_{name}", f"an order must carry a {name.replace('_', '-')}"))
        return None
    try:
        return _price(value, name)
    except PolicyError as exc:
        problems.append((f"invalid_{name}", str(exc)))
        return None


def _exit_problems(side: str, price: Decimal, stop: Decimal | None, target: Decimal | None, min_reward_risk: int,
                   problems: list[tuple[str, str]]) -> Decimal | None:
    """Record what is wrong with the stop and take-profit; return the stop distance when usable."""
    sign = 1 if side == "long" else -1
    losing, winning = ("below", "above") if sign > 0 else ("above", "below")
    risk = None if stop is None else (price - stop) * sign
    reward = None if target is None else (target - price) * sign
    if risk is not None and risk <= 0:
        problems.append(("stop_on_wrong_side", f"a {side} stop-loss at {stop} must be {losing} the entry {price}"))
        risk = None
    if reward is not None and reward <= 0:
        problems.append(
            ("take_profit_on_wrong_side", f"a {side} take-profit at {target} must be {winning} the entry {price}")
        )
        reward = None
    if risk is not None and reward is not None and reward < risk * min_reward_risk:
        problems.append(("reward_risk_too_low", f"take-profit distance {reward} is less than "
                                                f"{min_reward_risk} × the stop distance {risk}"))
    return risk


# ---------------------------------------------------------------- sizing


@dataclass(frozen=True)
class TradeSize:
    """How big a trade should be: Kelly sets what may be lost at the stop, the margin cap bounds it."""

    kelly: KellyResult
    risk: int
    """Micro-USD lost if the stop fills: the Kelly stake, at most 2 % of the bucket."""
    notional: int
    """`size_usd` for the venue, floored to the cent."""
    margin: int
    leverage: int
    margin_capped: bool


def size_trade(win_rate: object, win_loss_ratio: object, trading_balance: int, stop_pct: object, leverage: int,
               policy: Policy = DEFAULT_POLICY) -> TradeSize:
    """Size a trade from the strategy's record: win rate p and average win / average loss b.

    Kelly (`actors.kelly`, with the policy's fraction and the 2 % per-bet cap) gives the amount
    to risk; the notional is that risk divided by the stop distance; the margin it needs at
    `leverage` is then held to 10 % of the bucket, shrinking the trade (and its risk) if needed.
    """
    require_int(trading_balance, "trading_balance", minimum=0)
    require_int(leverage, "leverage", minimum=1)
    if leverage > policy.max_leverage:
        raise PolicyError(f"leverage {leverage}× is above the policy's {policy.max_leverage}× cap")
    pct = _price(stop_pct, "stop_pct")
    if pct >= 100:
        raise PolicyError(f"stop_pct: {stop_pct!r} must be below 100 (%)")
    stop_share = Fraction(pct) / 100
    kelly = kelly_stake(win_rate, win_loss_ratio, trading_balance, policy.kelly_fraction,
                        Fraction(policy.max_bet_bp, BP_SCALE))
    notional = floor_to_cent(int(kelly.stake / stop_share))
    margin_cap = share_floor(trading_balance, policy.max_trade_margin_bp)
    capped = notional > margin_cap * leverage
    if capped:
        notional = floor_to_cent(margin_cap * leverage)
    risk = min(kelly.stake, int(notional * stop_share))
    return TradeSize(kelly, risk, notional, -(-notional // leverage), leverage, capped)


# ---------------------------------------------------------------- trailing stop


@dataclass(frozen=True)
class TrailingStop:
    """A stop that follows the best price by `trail_bp` and never gives ground.

    Long: the best price is the highest seen and the stop only ratchets up. Short: the lowest
    seen, and the stop only ratchets down. It triggers like the venue's stops: a long at a price
    at or below the stop, a short at or above it.
    """

    side: Side
    trail_bp: int
    best_price: Decimal
    stop_price: Decimal

    def __post_init__(self) -> None:
        _side(self.side)
        if isinstance(self.trail_bp, bool) or not isinstance(self.trail_bp, int) or not 0 < self.trail_bp < BP_SCALE:
            raise PolicyError(f"trail_bp: {self.trail_bp!r} must be an integer in (0, 10000)")
        _price(self.best_price, "best_price")
        _price(self.stop_price, "stop_price")

    @classmethod
    def start(cls, side: str, entry: object, trail_bp: int) -> TrailingStop:
        """A trailing stop opened at `entry`, its stop `trail_bp` away on the losing side."""
        price = _price(entry, "entry")
        return cls(_side(side), trail_bp, price, cls._trail(side, price, trail_bp))

    @staticmethod
    def _trail(side: str, best: Decimal, trail_bp: int) -> Decimal:
        offset = BP_SCALE - trail_bp if side == "long" else BP_SCALE + trail_bp
        return best * offset / BP_SCALE

    def update(self, price: object) -> tuple[TrailingStop, bool]:
        """The state after seeing `price`, and whether the stop is hit (close the position)."""
        seen = _price(price, "price")
        if self.side == "long":
            best = max(self.best_price, seen)
            stop = max(self.stop_price, self._trail("long", best, self.trail_bp))
            return TrailingStop("long", self.trail_bp, best, stop), seen <= stop
        best = min(self.best_price, seen)
        stop = min(self.stop_price, self._trail("short", best, self.trail_bp))
        return TrailingStop("short", self.trail_bp, best, stop), seen >= stop
