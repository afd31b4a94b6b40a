"""The chains the reserve's wallet funds can sit on, what the wallet API can read of each, and valuing them.

Eight chains take deposits (the casino's deposit addresses cover all of them), but the wallet
API reads them unevenly: `/wallet/balance` returns the native coin only, for base, ethereum,
solana, bitcoin, tron and monero (monero needs its view key); `/wallet/usdc-balance` reads USDC
on base, ethereum, arbitrum, bsc, solana and tron. So arbitrum and bsc can be read for USDC only,
bitcoin and monero for the native coin only, and `/wallet/send` works on base, ethereum, solana,
tron and monero (bitcoin answers 501). Balances are polled through a 5-minute cache so a
dashboard or a rebalance does not hammer the RPCs, and valued in integer micro-USD.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from actors.policy.buckets import BP_SCALE, DEFAULT_POLICY, PolicyError, require_int
from messages.money import MAX_MICROS, MICRO

SWAP_FEE_BP = 50
"""The wallet's swap integrator fee: 0.5 % of the output."""

USDC = "USDC"


@dataclass(frozen=True)
class Chain:
    """One chain: its native coin and what the wallet API can do there."""

    name: str
    native: str
    decimals: int
    """Decimals of the native coin's base unit (wei, lamports, satoshis, …)."""
    reads_native: bool
    """`GET /wallet/balance/:address?chain=` works."""
    reads_usdc: bool
    """`GET /wallet/usdc-balance` covers it."""
    can_send: bool
    """`POST /wallet/send` works."""


CHAINS: dict[str, Chain] = {c.name: c for c in (
    Chain("base", "ETH", 18, reads_native=True, reads_usdc=True, can_send=True),
    Chain("ethereum", "ETH", 18, reads_native=True, reads_usdc=True, can_send=True),
    Chain("arbitrum", "ETH", 18, reads_native=False, reads_usdc=True, can_send=False),
    Chain("bsc", "BNB", 18, reads_native=False, reads_usdc=True, can_send=False),
    Chain("solana", "SOL", 9, reads_native=True, reads_usdc=True, can_send=True),
    Chain("tron", "TRX", 6, reads_native=True, reads_usdc=True, can_send=True),
    Chain("bitcoin", "BTC", 8, reads_native=True, reads_usdc=False, can_send=False),
    Chain("monero", "XMR", 12, reads_native=True, reads_usdc=False, can_send=True),
)}


def chain(name: str) -> Chain:
    """The chain called `name`, or a `PolicyError` naming the known ones."""
    try:
        return CHAINS[name]
    except KeyError:
        raise PolicyError(f"chain {name!r} is not one of {', '.join(CHAINS)}") from None


# ---------------------------------------------------------------- balance cache


@dataclass(frozen=True)
class Cached:
    value: object
    fetched_ms: int


@dataclass(frozen=True)
class BalanceCache:
    """Balances by key (a chain, or a (chain, address) pair) with the time each was read.

    Immutable: `put` returns a new cache. An entry is fresh while its age is under the TTL
    (5 min); at exactly the TTL it is stale. An entry read "in the future" (the clock stepped
    back) counts as stale too, so a doubtful clock means a fresh read, never an old balance.
    """

    ttl_ms: int = DEFAULT_POLICY.balance_ttl_ms
    entries: Mapping[Hashable, Cached] = field(default_factory=dict)

    def fresh(self, key: Hashable, now_ms: int) -> bool:
        entry = self.entries.get(key)
        return entry is not None and 0 <= now_ms - entry.fetched_ms < self.ttl_ms

    def get(self, key: Hashable, now_ms: int) -> object | None:
        """The cached value while fresh, else None (read it again)."""
        return self.entries[key].value if self.fresh(key, now_ms) else None

    def put(self, key: Hashable, value: object, now_ms: int) -> BalanceCache:
        """A cache that also holds `value`, read at `now_ms`."""
        require_int(now_ms, "now_ms", minimum=0)
        return BalanceCache(self.ttl_ms, {**self.entries, key: Cached(value, now_ms)})

    def stale(self, keys: Iterable[Hashable], now_ms: int) -> tuple[Hashable, ...]:
        """The keys among `keys` that need a new read."""
        return tuple(key for key in keys if not self.fresh(key, now_ms))


# ---------------------------------------------------------------- valuation


def _quantity(value: object, name: str) -> Fraction:
    """A non-negative, finite coin quantity or price, exactly; floats are refused."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise PolicyError(f"{name}: expected a Decimal, int or string, got {type(value).__name__}")
    try:
        number = Decimal(value)
    except ArithmeticError:
        raise PolicyError(f"{name}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise PolicyError(f"{name}: {value!r} must be a non-negative finite number")
    return Fraction(number)


def total_usd(balances_by_chain: Mapping[str, Mapping[str, object]], prices: Mapping[str, object]) -> int:
    """The USD value, in micro-USD (floored), of coin quantities held on the chains.

    `balances_by_chain` is `{chain: {asset: quantity in whole coins}}`, e.g.
    `{"base": {"ETH": Decimal("0.5"), "USDC": Decimal("120")}}`; `prices` is `{asset: USD per
    coin}`. USDC is worth $1 unless priced. A held asset without a price is an error, not zero:
    an under-valued treasury would trip the breakers for nothing.
    """
    total = Fraction(0)
    for name, holdings in balances_by_chain.items():
        chain(name)
        for asset, quantity in holdings.items():
            amount = _quantity(quantity, f"{name} {asset}")
            if amount == 0:
                continue
            if asset in prices:
                price = _quantity(prices[asset], f"price of {asset}")
            elif asset == USDC:
                price = Fraction(1)
            else:
                raise PolicyError(f"no price for {asset} held on {name}")
            total += amount * price
    micros = int(total * MICRO)
    if micros > MAX_MICROS:
        raise PolicyError(f"holdings worth {micros} micro-USD are beyond the {MAX_MICROS} limit")
    return micros


def swap_min_out(amount: object, price: object, slippage_bp: int, *, fee_bp: int = SWAP_FEE_BP) -> int:
    """The least micro-USDC to accept for swapping `amount` coins at `price`: the slippage cap.

    Expected output is amount × price less the wallet's 0.5 % swap fee; the minimum is that less
    `slippage_bp`, floored to the micro (USDC's base unit), so a fill exactly at the cap passes.
    """
    require_int(slippage_bp, "slippage_bp", minimum=0)
    require_int(fee_bp, "fee_bp", minimum=0)
    if slippage_bp >= BP_SCALE or fee_bp >= BP_SCALE:
        raise PolicyError(f"slippage {slippage_bp} bp and fee {fee_bp} bp must each be below 10000")
    value = _quantity(amount, "amount") * _quantity(price, "price") * MICRO
    return int(value * (BP_SCALE - fee_bp) * (BP_SCALE - slippage_bp) / (BP_SCALE * BP_SCALE))
