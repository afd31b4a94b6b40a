"""Seeded, reproducible prices for the sandbox's perpetual markets and wallet assets.

The real services quote live Hyperliquid and CoinGecko prices. Paper mode needs prices that move
(or stop losses, take profits and liquidations would never fire) yet replay identically, so each
instrument follows a geometric random walk whose every step is drawn from its own counter-seeded
generator: step `n` of `BTC` under seed `s` is always the same shock, whatever happened before,
whichever process computes it, and across restarts. Only `(step, price)` per instrument has to
be stored to continue a walk exactly.

Prices are not money: they stay `Decimal` here and travel as JSON numbers on the wire.

A walk advances in two ways:
* with the injected clock, one step every `step_ms` of clock time (a `ManualClock` therefore
  freezes prices until a test advances it);
* by an explicit tick (the sandbox's admin route), which tests use to move prices on purpose.
An admin may also pin a price; the walk continues from the pinned value.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

__all__ = [
    "Instrument",
    "Market",
    "MARKETS",
    "SPOT_ASSETS",
    "PriceBook",
    "resolve_market",
]


@dataclass(frozen=True)
class Instrument:
    """Something with a price: a start value, a per-step volatility and a price tick."""

    name: str
    start: Decimal
    volatility: float
    """Standard deviation of one step's log return."""
    tick: Decimal
    """Prices are rounded to a multiple of this, as an exchange would."""


@dataclass(frozen=True)
class Market:
    """A perpetual market as the trading service lists it."""

    coin: str
    """Canonical Hyperliquid name: `BTC` on the main dex, `xyz:TSLA` on the HIP-3 dex."""
    category: str
    max_leverage: int
    instrument: Instrument

    @property
    def ticker(self) -> str:
        return self.coin.replace("xyz:", "")

    @property
    def dex(self) -> str:
        return "xyz" if self.coin.startswith("xyz:") else "hyperliquid"


def _market(coin: str, category: str, max_leverage: int, start: str, volatility: float, tick: str) -> Market:
    return Market(coin, category, max_leverage, Instrument(coin, Decimal(start), volatility, Decimal(tick)))


MARKETS: tuple[Market, ...] = (
    _market("BTC", "crypto", 40, "97000", 0.002, "1"),
    _market("ETH", "crypto", 25, "3400", 0.0025, "0.1"),
    _market("SOL", "crypto", 20, "190", 0.003, "0.01"),
    _market("XRP", "crypto", 20, "2.3", 0.003, "0.0001"),
    _market("DOGE", "crypto", 10, "0.32", 0.004, "0.00001"),
    _market("PURR", "crypto", 3, "0.2", 0.006, "0.00001"),
    _market("xyz:TSLA", "stocks", 10, "350", 0.002, "0.01"),
    _market("xyz:NVDA", "stocks", 10, "140", 0.002, "0.01"),
    _market("xyz:AAPL", "stocks", 10, "230", 0.0015, "0.01"),
    _market("xyz:GOLD", "commodities", 20, "2650", 0.001, "0.1"),
    _market("xyz:SILVER", "commodities", 20, "31", 0.0015, "0.001"),
    _market("xyz:XYZ100", "indices", 25, "21000", 0.0012, "1"),
)
"""The sandbox's market list: a small, varied subset of Hyperliquid's, with per-market caps.

`PURR` (3×) exists so that the default 5× request exceeds a market maximum."""

_BY_NAME = {m.coin.upper(): m for m in MARKETS} | {m.ticker.upper(): m for m in MARKETS}


def resolve_market(symbol: object) -> Market | None:
    """`"tsla"`, `"TSLA"` and `"xyz:TSLA"` all name the same market, as on the real service."""
    if not isinstance(symbol, str):
        return None
    return _BY_NAME.get(symbol.strip().upper())


SPOT_ASSETS: tuple[Instrument, ...] = (
    Instrument("ETH", Decimal("3400"), 0.0025, Decimal("0.01")),
    Instrument("SOL", Decimal("190"), 0.003, Decimal("0.001")),
    Instrument("BTC", Decimal("97000"), 0.002, Decimal("0.1")),
    Instrument("TRX", Decimal("0.25"), 0.003, Decimal("0.00001")),
    Instrument("XMR", Decimal("190"), 0.003, Decimal("0.001")),
)
"""Native coins the wallet values and swaps (USDC is pinned to $1 and is not walked)."""

MAX_CATCH_UP_STEPS = 5_000
"""Clock steps applied at most in one catch-up, so a sandbox restarted after days stays fast.
Skipped steps simply do not happen; the result is still deterministic for a given history."""


def _shock(seed: int | str, name: str, step: int) -> float:
    # A string seed is hashed (SHA-512) by `random`, so this is stable across processes.
    return random.Random(f"{seed}/{name}/{step}").gauss(0.0, 1.0)


def _next_price(price: Decimal, instrument: Instrument, z: float) -> Decimal:
    vol = instrument.volatility
    log_return = vol * z - vol * vol / 2.0
    with localcontext() as ctx:
        ctx.prec = 28
        moved = price * Decimal(repr(math.exp(log_return)))
        ticks = (moved / instrument.tick).to_integral_value(rounding=ROUND_HALF_EVEN)
        if ticks < 1:
            ticks = Decimal(1)
        return (ticks * instrument.tick).quantize(instrument.tick)


class PriceBook:
    """Current prices of a set of instruments, advanced by clock time or by explicit ticks.

    Thread-safe. `snapshot()` / `restore()` carry the whole state (a few numbers per instrument)
    so the owning service can persist it next to its other data.
    """

    def __init__(
        self,
        seed: int | str,
        instruments: tuple[Instrument, ...] | list[Instrument],
        *,
        step_ms: int = 1_000,
        epoch_ms: int = 0,
    ) -> None:
        if step_ms <= 0:
            raise ValueError("step_ms must be positive")
        self._seed = seed
        self._instruments = {i.name: i for i in instruments}
        self._step_ms = step_ms
        self._epoch_ms = epoch_ms
        self._clock_steps = 0
        self._steps = {name: 0 for name in self._instruments}
        self._prices = {name: i.start for name, i in self._instruments.items()}
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self._instruments)

    def price(self, name: str, now_ms: int | None = None) -> Decimal:
        """The current price; with `now_ms`, first applies the clock steps due by then."""
        with self._lock:
            if now_ms is not None:
                self._advance_locked(now_ms)
            return self._prices[name]

    def prices(self, now_ms: int | None = None) -> dict[str, Decimal]:
        with self._lock:
            if now_ms is not None:
                self._advance_locked(now_ms)
            return dict(self._prices)

    # -- moving ------------------------------------------------------------------------------

    def advance_to(self, now_ms: int) -> bool:
        """Apply the clock steps due by `now_ms`. Returns whether any price may have moved."""
        with self._lock:
            return self._advance_locked(now_ms)

    def tick(self, steps: int = 1, name: str | None = None) -> dict[str, Decimal]:
        """Take `steps` extra walk steps for one instrument (or all). Returns the new prices."""
        if steps < 0:
            raise ValueError("steps must be >= 0")
        with self._lock:
            targets = [name] if name is not None else list(self._instruments)
            for target in targets:
                self._walk_locked(target, steps)
            return {t: self._prices[t] for t in targets}

    def set_price(self, name: str, price: Decimal) -> Decimal:
        """Pin a price (rounded to the tick); the walk continues from it."""
        instrument = self._instruments[name]
        if not price.is_finite() or price <= 0:
            raise ValueError("price must be a positive finite number")
        ticks = (price / instrument.tick).to_integral_value(rounding=ROUND_HALF_EVEN)
        pinned = (max(ticks, Decimal(1)) * instrument.tick).quantize(instrument.tick)
        with self._lock:
            self._prices[name] = pinned
        return pinned

    # -- persistence -------------------------------------------------------------------------

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "epoch_ms": self._epoch_ms,
                "clock_steps": self._clock_steps,
                "walks": {n: [self._steps[n], str(self._prices[n])] for n in self._instruments},
            }

    def restore(self, state: dict) -> None:
        """Continue a walk saved by `snapshot()`; instruments unknown to the state keep defaults."""
        with self._lock:
            self._epoch_ms = int(state.get("epoch_ms", self._epoch_ms))
            self._clock_steps = int(state.get("clock_steps", 0))
            for name, (step, price) in dict(state.get("walks", {})).items():
                if name in self._instruments:
                    self._steps[name] = int(step)
                    self._prices[name] = Decimal(price)

    # -- internals ---------------------------------------------------------------------------

    def _advance_locked(self, now_ms: int) -> bool:
        due = (now_ms - self._epoch_ms) // self._step_ms - self._clock_steps
        if due <= 0:
            return False
        applied = min(due, MAX_CATCH_UP_STEPS)
        for name in self._instruments:
            self._walk_locked(name, applied)
        self._clock_steps += due
        return True

    def _walk_locked(self, name: str, steps: int) -> None:
        instrument = self._instruments[name]
        price = self._prices[name]
        step = self._steps[name]
        for _ in range(steps):
            step += 1
            price = _next_price(price, instrument, _shock(self._seed, name, step))
        self._steps[name] = step
        self._prices[name] = price
