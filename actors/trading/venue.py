"""The trading bucket's side of the venue: per-agent clients, and turning what the venue says (or
no longer says) about a position into one settlement.

The venue keeps two records that can disagree — its database (positions, SL/TP orders) and the
exchange (where the margin really is) — and it forgets answers it has given: a lost close answer,
a stop that fired while the treasury was down, a liquidation that left the database row `open`.
Everything here answers one question for the actor: what happened to this position, in money?
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Iterable

import redis

from actors.trading.book import OrderPlan, PositionRecord
from actors.venues import TIMEOUT_S, AgentClients
from messages.money import CENT, MICRO
from runtime.keys import Keys
from venue.client.trading import POSITIONS_PAGE, TradingClient, listing_covers
from venue.client.trading_types import ClosedPosition, ExitExecution, Position
from venue.errors import VenueRejected

HL_FEE_BP = Decimal("3.5")
BUILDER_FEE_BP = {"free": Decimal(2), "pro": Decimal(1), "whale": Decimal(0)}
"""The venue's published fees per fill, in basis points of the notional (see the API reference)."""

GONE_CODES = frozenset({"position_not_found", "close_failed", "position_not_open"})
"""Close refusals that mean the position is no longer there to close: find out what became of it."""


def estimated_fee(notional: int, tier: str) -> int:
    """The fee of one fill, computed as the venue does (each part rounded half-even to the micro).

    Used when an answer was lost and the position was found by a look-up: listings carry no fees.
    An unknown tier is charged at the free tier's rate, the highest, so the ledger errs low."""
    dollars = Decimal(notional) / MICRO
    parts = (HL_FEE_BP, BUILDER_FEE_BP.get(tier, BUILDER_FEE_BP["free"]))
    return sum(int((dollars * bp / 10_000 * MICRO).to_integral_value(rounding=ROUND_HALF_EVEN)) for bp in parts)


@dataclass(frozen=True)
class Settlement:
    """What closing a position came to: the venue's pnl (fees excluded), the closing fee, the exit."""

    pnl: int
    fee: int
    exit_price: str
    liquidated: bool = False
    reconstructed: bool = False


def exact_pnl(record: PositionRecord, exit_price: object, reported: int) -> int:
    """The P&L on the notional for the move from entry to exit, to the micro.

    The venue keeps its account at full precision but reports `pnl` rounded to the cent, so a
    ledger that booked the reported figure would drift from the exchange a fraction of a cent per
    trade. The prices it reports give the exact figure; the reported one stays the authority when
    the two disagree by more than its rounding (a partial fill, a different rule)."""
    try:
        entry, exit_ = Decimal(record.entry_price), Decimal(str(exit_price))
        move = (exit_ - entry) / entry
    except (InvalidOperation, ZeroDivisionError):
        return reported
    if record.side == "short":
        move = -move
    exact = int((Decimal(record.notional) / MICRO * move * MICRO).to_integral_value(rounding=ROUND_HALF_EVEN))
    return exact if abs(exact - reported) <= CENT // 2 else reported


def from_close(closed: ClosedPosition, tier: str, record: PositionRecord | None = None) -> Settlement:
    fee = estimated_fee(closed.size_usd, tier) if closed.reconstructed else closed.fee
    pnl = exact_pnl(record, closed.exit_price, closed.pnl) if record is not None else closed.pnl
    return Settlement(pnl, fee, str(closed.exit_price), reconstructed=closed.reconstructed)


def from_execution(execution: ExitExecution, record: PositionRecord) -> Settlement:
    """A stop or target the venue fired. A fill without a fee is the service's "simulated" fill
    for a position the exchange no longer held (liquidated): its pnl never reached the account."""
    if execution.fee == 0:
        return liquidation(record, str(execution.exit_price))
    return Settlement(exact_pnl(record, execution.exit_price, execution.pnl), execution.fee,
                      str(execution.exit_price))


def liquidation(record: PositionRecord, price: str) -> Settlement:
    """The exchange closed the position against its margin: book the whole margin as lost. (The
    exchange may hand back a sliver above its maintenance margin; the reconciler finds it.)"""
    return Settlement(-record.margin, 0, price, liquidated=True)


def resolve_gone(venue: TradingClient, record: PositionRecord, tier: str,
                 rows: Iterable[Position] | None = None) -> Settlement:
    """A position the treasury still books but the exchange no longer holds: its database row says
    `closed` (a close or an exit whose answer was lost) or still `open` (liquidated)."""
    listed = rows if rows is not None else venue.positions(show_all=True).positions
    row = next((p for p in listed if p.position_id == record.position_id), None)
    if row is not None and row.status != "open":
        return from_close(ClosedPosition.from_position(row), tier, record)
    price = row.current_price if row is not None and row.current_price is not None else venue.price(record.coin)
    return liquidation(record, str(price))


def close_position(venue: TradingClient, record: PositionRecord, tier: str, key: str) -> Settlement:
    """Close at the market, exactly once; a position already gone is resolved, not an error."""
    try:
        return from_close(venue.close_position_once(record.position_id, idempotency_key=key), tier, record)
    except VenueRejected as exc:
        if exc.code not in GONE_CODES:
            raise
    return resolve_gone(venue, record, tier)


def find_opened(venue: TradingClient, plan: OrderPlan, tracked: set[str]) -> Position | None:
    """The position a lost attempt of this plan opened, if any: a row listed now but not before the
    plan, with its market, side and notional (within the exchange's lot rounding), that the
    treasury does not already book. Two candidates cannot be told apart: fail, do not guess."""
    before = set(plan.before) | tracked
    tolerance = max(plan.notional // 100, MICRO)
    rows = venue.positions(show_all=True).positions
    matches = [p for p in rows
               if p.position_id and p.position_id not in before and p.side == plan.side
               and _ticker(p.coin) == _ticker(plan.coin) and abs(p.size_usd - plan.notional) <= tolerance]
    if len(matches) > 1:
        raise RuntimeError(f"{len(matches)} venue positions match the lost open of {plan.coin} {plan.side}: "
                           f"refusing to guess which one is the treasury's")
    if not matches and not listing_covers(rows, set(plan.before)):
        raise RuntimeError(f"the lost open of {plan.coin} {plan.side} may be beyond the venue's position listing "
                           f"(newest {POSITIONS_PAGE}): refusing to open again on an unknown")
    return matches[0] if matches else None


def exchange_holds(listing: Iterable[Position], records: Iterable[PositionRecord]) -> set[str]:
    """Ids of booked positions the exchange still holds. A listed row without an id (an exchange
    that does not name positions) makes every booked position of its coin count as held: the
    treasury cannot tell which one went, so none is settled on that evidence."""
    rows = list(listing)
    named = {p.position_id for p in rows if p.position_id}
    anonymous = {_ticker(p.coin) for p in rows if not p.position_id}
    return {r.position_id for r in records if r.position_id in named or _ticker(r.coin) in anonymous}


def _ticker(coin: str) -> str:
    return coin.replace("xyz:", "").upper()


def same_market(a: str, b: str) -> bool:
    """Whether two coin names name one market (`xyz:` prefix and case ignored)."""
    return _ticker(a) == _ticker(b)


def trading_client_factory(client: redis.Redis, keys: Keys, base_url: str) -> AgentClients[TradingClient]:
    """Per-agent trading clients, built from `trading_key` in the agent's credentials hash.

    One client per agent and process: the client serialises its opens so that its look-ups after
    a lost answer can only match its own orders."""
    return AgentClients(client, keys, "trading", lambda key: TradingClient(base_url, key, timeout_s=TIMEOUT_S))
