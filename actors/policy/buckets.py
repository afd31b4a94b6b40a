"""The four buckets, their target weights, and the operator-tunable `Policy`.

Every limit of the treasury is a share of some balance. Shares are held as integer basis points
(1 bp = 0.01 %) and compared by cross-multiplying integers, so "exactly 5 %" is exactly 5 % on
every machine and a single micro-USD beyond it is beyond it. The small helpers for that live here,
next to the numbers they serve, so the breaker, drift, escrow and referral modules all round and
compare the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import msgspec

from actors.kelly import KellyInputError, parse_fraction
from messages.base import BUCKETS
from messages.errors import ConfigError, TreasuryError
from messages.money import MAX_MICROS, MICRO, format_usd_exact

BP_SCALE = 10_000
"""Basis points in a whole."""

TARGETS_BP: dict[str, int] = {"reserve": 4000, "trading": 3500, "casino": 1500, "referral": 1000}
"""Target share of the treasury total for each bucket."""

RESERVE_FLOOR_BP = 2000
"""The reserve may drift below its 40 % target, but never below 20 % of the total."""

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class PolicyError(TreasuryError, ValueError):
    """A number the policy cannot use: a float where money belongs, a negative balance, a bad share."""


class PolicyConfigError(PolicyError, ConfigError):
    """A `Policy` setting an operator gave that is out of range or inconsistent."""


# ---------------------------------------------------------------- integer share arithmetic


def require_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """Refuse anything but a plain `int` (no bool, no float) within ±MAX_MICROS and ≥ `minimum`.

    Policy functions take micro-USD; a float reaching them is a bug upstream, and guessing how to
    round it would hide that bug, so it is refused.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if abs(value) > MAX_MICROS:
        raise PolicyError(f"{name}: {value} is beyond the {MAX_MICROS} limit")
    if minimum is not None and value < minimum:
        raise PolicyError(f"{name}: {value} is below {minimum}")
    return value


def share_floor(amount: int, bp: int) -> int:
    """`amount × bp / 10 000`, rounded down: a budget or a cap (never grants a micro too many)."""
    return (amount * bp) // BP_SCALE


def share_ceil(amount: int, bp: int) -> int:
    """`amount × bp / 10 000`, rounded up: a fee or a cost (never counts a micro too few)."""
    return -((-amount * bp) // BP_SCALE)


def exceeds_share(part: int, whole: int, limit_bp: int) -> bool:
    """True when `part / whole > limit_bp / 10 000`, exactly: at the limit is still inside it."""
    return part * BP_SCALE > whole * limit_bp


def below_share(part: int, whole: int, limit_bp: int) -> bool:
    """True when `part / whole < limit_bp / 10 000`, exactly: at the limit is not below it."""
    return part * BP_SCALE < whole * limit_bp


def usd(micros: int) -> str:
    """Dollars for a reason sentence: `messages.money.format_usd_exact` (cents when exact, every
    micro when not, so 5 % + 1 micro shows; `$1,001.0758`)."""
    return format_usd_exact(micros)


def percent(part: int, whole: int) -> str:
    """`part / whole` as a percentage for people, to six decimals with trailing zeros dropped."""
    if whole == 0:
        return "n/a %"
    value = (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.000001"))
    integral, _, decimals = f"{value:f}".rstrip("0").partition(".")
    return f"{integral}.{decimals.ljust(2, '0')} %"


def bp_text(bp: int) -> str:
    """Basis points as a percentage for people: 500 → '5.00 %'."""
    return percent(bp, BP_SCALE)


# ---------------------------------------------------------------- allocation


def allocate(capital: int, targets_bp: Mapping[str, int] = TARGETS_BP) -> dict[str, int]:
    """Split `capital` micro-USD into the buckets at their target weights, exactly.

    Every bucket but the reserve gets its share rounded down; the reserve gets what is left, so
    the parts always sum to `capital` and rounding only ever favours the safe bucket.
    """
    require_int(capital, "capital", minimum=0)
    _check_targets(targets_bp)
    parts = {name: share_floor(capital, targets_bp[name]) for name in BUCKETS if name != "reserve"}
    return {"reserve": capital - sum(parts.values()), **parts}


def _check_targets(targets_bp: Mapping[str, int]) -> None:
    if set(targets_bp) != set(BUCKETS):
        raise PolicyConfigError(f"targets must name exactly the buckets {', '.join(BUCKETS)}, got {sorted(targets_bp)}")
    for name, bp in targets_bp.items():
        if isinstance(bp, bool) or not isinstance(bp, int) or not 0 <= bp <= BP_SCALE:
            raise PolicyConfigError(f"target of {name}: {bp!r} must be an integer of basis points in [0, 10000]")
    if sum(targets_bp.values()) != BP_SCALE:
        raise PolicyConfigError(f"targets must sum to 10000 bp (100 %), got {sum(targets_bp.values())}")


# ---------------------------------------------------------------- the operator's policy


MONEY_SETTINGS = frozenset({"min_move", "referral_reinvest_threshold"})
"""The `Policy` settings that are amounts of micro-USD (the others name their unit: `*_bp`, `*_ms`,
`*_hours`, or are plain numbers and words)."""


class Policy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every tunable number of the treasury, with the product's defaults.

    Built directly or decoded from an operator's JSON/TOML with `Policy.load`; either way
    `__post_init__` checks every field, so an invalid policy cannot exist. Shares are basis points,
    money is micro-USD, durations are milliseconds (escrow timeouts are hours, as the venue takes
    them).
    """

    # buckets
    reserve_target_bp: int = TARGETS_BP["reserve"]
    trading_target_bp: int = TARGETS_BP["trading"]
    casino_target_bp: int = TARGETS_BP["casino"]
    referral_target_bp: int = TARGETS_BP["referral"]
    reserve_floor_bp: int = RESERVE_FLOOR_BP
    # breakers
    daily_loss_bp: int = 500
    daily_pause_ms: int = DAY_MS
    casino_session_stop_bp: int = 5000
    trading_drawdown_bp: int = 2000
    treasury_drawdown_bp: int = 2000
    max_bet_bp: int = 200
    escrow_reserve_bp: int = 3000
    # escrow
    escrow_fee_bp: int = 100
    escrow_max_timeout_hours: int = 72
    # rebalancing
    drift_bp: int = 500
    min_move: int = 10 * MICRO
    rebalance_interval_ms: int = DAY_MS
    big_win_bp: int = 2000
    large_escrow_bp: int = 1000
    max_transfer_fee_bp: int = 200
    """A move between silos whose venue fees exceed this share of it is not made (2 %)."""
    # trading
    max_leverage: int = 5
    max_trade_margin_bp: int = 1000
    min_reward_risk: int = 2
    kelly_fraction: str = "half"
    # referral income
    referral_sweep_interval_ms: int = 7 * DAY_MS
    referral_reinvest_interval_ms: int = 90 * DAY_MS
    referral_reinvest_threshold: int = 100 * MICRO
    referral_reserve_bp: int = 7000
    # chains
    balance_ttl_ms: int = 5 * 60_000
    swap_slippage_bp: int = 50

    def __post_init__(self) -> None:
        for field, (low, high) in _RANGES.items():
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise PolicyConfigError(f"{field}: {value!r} must be an integer")
            if value < low or (high is not None and value > high):
                if field in MONEY_SETTINGS:  # an amount: in dollars, as a person types it
                    top = "∞" if high is None else format_usd_exact(high)
                    raise PolicyConfigError(f"{field}: {format_usd_exact(value)} ({value} micro-USD) must be in "
                                            f"[{format_usd_exact(low)}, {top}]")
                raise PolicyConfigError(f"{field}: {value} must be in [{low}, {'∞' if high is None else high}]")
        _check_targets(self.targets_bp)
        if self.reserve_floor_bp > self.reserve_target_bp:
            raise PolicyConfigError(f"reserve_floor_bp {self.reserve_floor_bp} is above the reserve target "
                                    f"{self.reserve_target_bp}")
        try:
            parse_fraction(self.kelly_fraction)
        except KellyInputError as exc:
            raise PolicyConfigError(f"kelly_fraction: {exc}") from None

    @property
    def targets_bp(self) -> dict[str, int]:
        """The four target weights as a mapping, in bucket order."""
        return {
            "reserve": self.reserve_target_bp,
            "trading": self.trading_target_bp,
            "casino": self.casino_target_bp,
            "referral": self.referral_target_bp,
        }

    @classmethod
    def load(cls, data: Mapping[str, object]) -> Policy:
        """Build a policy from an operator's mapping (parsed JSON/TOML); unknown keys are refused."""
        try:
            return msgspec.convert(dict(data), cls)
        except msgspec.ValidationError as exc:
            raise PolicyConfigError(f"policy: {exc}") from None


_SHARE = (0, BP_SCALE)
_LIMIT = (1, BP_SCALE)
_DURATION = (1, None)
_MONEY = (0, MAX_MICROS)
_RANGES: dict[str, tuple[int, int | None]] = {
    "reserve_target_bp": _SHARE, "trading_target_bp": _SHARE, "casino_target_bp": _SHARE, "referral_target_bp": _SHARE,
    "reserve_floor_bp": _SHARE,
    "daily_loss_bp": _LIMIT, "daily_pause_ms": _DURATION, "casino_session_stop_bp": _LIMIT,
    "trading_drawdown_bp": _LIMIT, "treasury_drawdown_bp": _LIMIT, "max_bet_bp": _LIMIT, "escrow_reserve_bp": _LIMIT,
    "escrow_fee_bp": _SHARE, "escrow_max_timeout_hours": (1, 720),            # the venue's own range
    "drift_bp": _LIMIT, "min_move": _MONEY, "rebalance_interval_ms": _DURATION, "big_win_bp": _LIMIT,
    "large_escrow_bp": _LIMIT, "max_transfer_fee_bp": _SHARE,
    "max_leverage": (1, 50), "max_trade_margin_bp": _LIMIT, "min_reward_risk": (1, None),   # 50×: the venue's ceiling
    "referral_sweep_interval_ms": _DURATION, "referral_reinvest_interval_ms": _DURATION,
    "referral_reinvest_threshold": _MONEY, "referral_reserve_bp": _SHARE,
    "balance_ttl_ms": _DURATION, "swap_slippage_bp": (0, BP_SCALE - 1),
}
"""The allowed range of every integer setting (None: no upper bound)."""

DEFAULT_POLICY = Policy()
"""The product's numbers."""
