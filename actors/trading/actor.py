"""TradingBucket: the only writer of an agent's trading bucket; sizes, fences, opens, watches and
settles perpetual positions.

One actor serves every agent of its worker's shards (state lives in Redis). An order goes: size
with Kelly and check every rule (`actors.trading.sizing`) → write its plan → reserve margin plus
the fee allowance through the fence (refused once PAUSED/HALTED or `halt:trading` is committed) →
open at the venue, exactly once, with the message id as idempotency key → place the stop-loss and
take-profit at absolute prices from the fill → one commit: the reservation becomes posted margin
(`trading:margin`), the opening fee leaves the ledger, the position is booked, `PositionOpened`
journaled, RiskGuard told, the entry acked.

The venue fires stops only when polled and has no trailing stop, so a `CheckExits` tick ratchets
the trailing stops (moving the venue's stop-loss trigger), polls the venue's exits, and settles
every position the venue closed or liquidated. Closing — one position, or all of them — is
allowed in every risk state: it only ever returns money to the bucket.

Crash safety: a redelivered `OpenPosition` whose reservation exists looks its position up at the
venue (by the rows listed in its plan) before opening anything, so one message never opens two
positions; a close or exit whose answer was lost is found in the venue's listing and settled once.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Callable

import msgspec
import pykka

from actors.base import TreasuryActor
from actors.ledger import read_ledger, read_risk
from actors.policy.buckets import DEFAULT_POLICY, Policy, bp_text
from actors.policy.effective import effective_policy
from actors.policy.trading_rules import stop_prices
from actors.trading.book import (
    OrderPlan,
    PositionRecord,
    Trail,
    book_open,
    plans_key,
    positions_key,
    read_plan,
    read_plans,
    read_positions,
    settled_amount,
)
from actors.trading.marks import book_unrealized
from actors.trading.sizing import Refusal, VenueFacts, plan_order
from actors.trading.venue import (
    GONE_CODES,
    Settlement,
    close_position,
    estimated_fee,
    exchange_holds,
    find_opened,
    from_close,
    from_execution,
    liquidation,
    resolve_gone,
    same_market,
    trading_client_factory,
)
from messages.catalogue import role_of
from messages.envelope import Envelope, IdFactory, wrap
from messages.schema import BalancesChanged
from messages.trading_msgs import (
    CheckExits,
    CloseAllPositions,
    ClosePosition,
    OpenPosition,
    OrderRefused,
    OrderRejected,
    PositionClosed,
    PositionOpened,
    PositionsClosedAll,
    StopMoved,
    TradeSizing,
)
from runtime.atomic import AtomicSteps, Commit, FenceStatus
from runtime.bus import Delivery, HandlerRejected
from runtime.clock import Clock
from runtime.keys import Keys
from venue.client.trading import TradingClient
from venue.client.trading_types import ClosedPosition, OpenedPosition, Position
from venue.errors import VenueRateLimited, VenueRejected, VenueUnavailable

log = logging.getLogger(__name__)

LOST_OPEN_SKEW_S = 60
"""How far the venue's clock may lag ours when a position is matched to an open whose plan Redis lost."""

BUCKET = "trading"


def close_all_refusal(client, keys: Keys, env) -> str | None:
    """Why an unsigned `CloseAllPositions` must not be obeyed, or None if it may.

    RiskGuard (after the trading drawdown breaker) and the Rebalancer (before moving trading
    money) send it unsigned from inside their commits; either leaves a trace in Redis that only
    the atomic steps write: `halt:trading` in the risk hash, or an active saga in its closing
    stage. Anyone else must sign it (the gate has then verified the signature)."""
    if env.signature is not None:
        return None
    if "trading" in read_risk(client, keys, env.agent).halted_buckets:
        return None
    saga = client.hget(keys.rebalance(env.agent), "active")
    if saga is not None and client.hget(keys.saga(env.agent, saga.decode()), "state") == b"closing":
        return None
    return ("an unsigned CloseAllPositions is obeyed only while trading is halted or a rebalance waits for it; "
            "sign it to close positions by hand")


def venue_price(value: Decimal) -> Decimal:
    """A trigger price as the venue will hold it (it reads JSON numbers as doubles), so the stop the
    treasury books is the stop the venue fires."""
    return Decimal(repr(float(value)))


class TradingBucket(TreasuryActor):
    """The trading role: the only writer of each agent's trading bucket (`trading`, `trading:margin`,
    micro-USD) and of its booked positions.

    Handles `OpenPosition` (sized and checked by `actors.trading.sizing`, margin plus fee
    allowance reserved through the fence, opened once at the venue with stop-loss and take-profit),
    `CheckExits` (ratchet trailing stops, settle what the venue closed), `ClosePosition` and
    `CloseAllPositions` (allowed in every risk state), plus the transfer legs of rebalancing moves.
    Answers in the journal: `PositionOpened`, `PositionClosed` (pnl and fees in micro-USD, prices
    as decimal strings), `OrderRefused` (code, reason, the sizing). Percentages of the policy are
    basis points (`Policy`, default `DEFAULT_POLICY`, or the agent's overrides).

    `trading_for(agent)` gives the agent's `TradingClient` (`trading_client_factory`, from its
    `trading_key`); a missing key raises `HandlerRejected`. Venue errors other than a refusal
    propagate, so the bus redelivers and the open is looked up before anything is resent.
    """

    role = "trading"
    handlers = {OpenPosition: "open_position", CheckExits: "check_exits", ClosePosition: "close_one",
                CloseAllPositions: "close_all"}
    transfer_legs = True  # legs of moves into or out of the trading bucket (the rebalancer's saga)

    def __init__(self, steps: AtomicSteps, clock: Clock, new_id: IdFactory,
                 trading_for: Callable[[str], TradingClient], policy: Policy = DEFAULT_POLICY):
        super().__init__(steps, clock, new_id)
        self.trading_for = trading_for
        self.policy = policy

    def on_stop(self) -> None:
        close = getattr(self.trading_for, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------------ open

    def open_position(self, delivery: Delivery, cmd: OpenPosition) -> None:
        env = delivery.envelope
        agent = env.agent
        if self.client.zscore(self.keys.applied(agent), env.id) is not None:
            return self._ack_only(delivery)
        venue = self.trading_for(agent)
        plan = read_plan(self.client, self.keys, agent, env.id)
        if plan is None:
            plan_or_refusal = self._plan(agent, env, cmd, venue)
            if isinstance(plan_or_refusal, Refusal):
                r = plan_or_refusal
                return self._refuse(delivery, r.code, r.reason, sizing=r.sizing)
            plan = plan_or_refusal

        reservation = self.steps.reserve(agent, env.id, BUCKET, plan.held, plan.cap, self.clock.now_ms())
        if reservation.status is FenceStatus.DUPLICATE:
            return self._ack_only(delivery)
        if not reservation.granted:
            policy = effective_policy(self.client, self.keys, agent, self.policy)
            cap_name = f"{bp_text(policy.max_trade_margin_bp)} margin cap with fee allowance"
            reason = reservation.denial(BUCKET, plan.held, what="the margin and fee allowance", cap_name=cap_name)
            return self._refuse(delivery, reservation.status, reason, sizing=plan.sizing, seq=reservation.seq or None,
                                drop_plan=True)
        held = plan.held
        reserved_before = reservation.record is not None
        if reservation.record is not None:  # reserved by an earlier delivery: that amount stands
            held = reservation.record.amount
        if self.must_look_up(delivery, reserved_before):  # it may be open at the venue already
            found = find_opened(venue, plan, set(read_positions(self.client, self.keys, agent)))
            if found is not None:
                return self._adopt(delivery, plan, held, found, venue)
            stopped = self._stopped_now(agent)
            if stopped is not None:
                return self._release(delivery, plan, held, *stopped)
        try:
            opened = venue.open_position_once(plan.coin, plan.side, plan.notional, plan.leverage,
                                              idempotency_key=env.id)
        except VenueRejected as exc:
            return self._release(delivery, plan, held, exc.code or "venue_rejected", str(exc), by_venue=True)
        # VenueUnavailable propagates: the outcome is unknown, the bus retries, the retry looks it up.
        self._place_exits_and_book(delivery, plan, held, opened, venue)

    def _plan(self, agent: str, env: Envelope, cmd: OpenPosition, venue: TradingClient) -> OrderPlan | Refusal:
        """Size and check a new order, and write its plan (before anything is reserved or sent)."""
        stopped = self._stopped_by_control(agent)
        if stopped is not None:
            return Refusal(*stopped)
        for other_id, other in read_plans(self.client, self.keys, agent).items():
            if other_id != env.id and other.coin.upper() == cmd.coin.upper() and other.side == cmd.side:
                return Refusal("order_in_flight", f"order {other_id} for {cmd.coin} {cmd.side} is not settled yet: "
                                                  f"one unsettled order per market and side")
        try:
            account = venue.account(refresh=False)
            facts = VenueFacts(price=venue.price(cmd.coin),
                               max_leverage=min(account.max_leverage, venue.market_max_leverage(cmd.coin)),
                               max_position=account.max_position_usd)
        except VenueRejected as exc:
            unknown = exc.code in ("market_not_found", "unknown_market")
            return Refusal("unknown_market" if unknown else exc.code or "venue_rejected", str(exc))
        bucket = read_ledger(self.client, self.keys, agent).bucket(BUCKET)
        sized = plan_order(cmd, bucket, facts, effective_policy(self.client, self.keys, agent, self.policy))
        if isinstance(sized, Refusal):
            return sized
        now = self.clock.now_ms()
        plan = OrderPlan(coin=cmd.coin, side=cmd.side, notional=sized.notional, leverage=sized.leverage,
                         stop_pct=str(sized.stop_pct), take_profit_multiple=str(sized.take_profit_multiple),
                         held=sized.held, cap=sized.cap, trail_bp=cmd.trail_bp,
                         before=self._there_before(agent, env, cmd, venue), created_ms=now, sizing=sized.sizing)
        commit = self.steps.new_commit(agent).hset(plans_key(self.keys, agent), env.id, plan.encode())
        self._commit(commit, f"{env.id}:plan", now)
        return plan

    def _there_before(self, agent: str, env: Envelope, cmd: OpenPosition, venue: TradingClient) -> list[str]:
        """Ids of the venue's positions this order cannot have opened (the plan's `before`).

        Where Redis may lose a suffix of acknowledged writes, an earlier plan of this very command,
        its reservation and its venue call may all be forgotten while the command survived: then a
        position of the same market and side that the treasury does not book, opened since the
        command was created (`LOST_OPEN_SKEW_S` of clock difference with the venue allowed), may
        be that lost attempt's, so it is left out of `before` and the look-up (`find_opened`) can
        adopt it rather than open a second. A venue row without an opening time is not matched."""
        rows = [p for p in venue.positions(show_all=True).positions if p.position_id]
        if not self.redis_may_lose_writes():
            return [p.position_id for p in rows]
        booked = set(read_positions(self.client, self.keys, agent))
        since_s = env.created_ms // 1000 - LOST_OPEN_SKEW_S

        def maybe_ours(p: Position) -> bool:
            return (p.position_id not in booked and p.side == cmd.side and same_market(p.coin, cmd.coin)
                    and p.opened_at_s is not None and p.opened_at_s >= since_s)
        return [p.position_id for p in rows if not maybe_ours(p)]

    def _adopt(self, delivery: Delivery, plan: OrderPlan, held: int, row: Position, venue: TradingClient) -> None:
        """The lost attempt did open: book that position (and its close, if it is closed already)."""
        tier = venue.account(refresh=False).tier
        opened = msgspec.structs.replace(OpenedPosition.from_position(row), fee=estimated_fee(row.size_usd, tier),
                                         margin_used=row.margin_used or -(-plan.notional // plan.leverage))
        if row.status != "open":
            stop, target = _exits(plan, opened)
            settlement = from_close(ClosedPosition.from_position(row), tier)
            return self._book(delivery, plan, held, opened, stop, target, settlement, "closed_before_booked")
        self._place_exits_and_book(delivery, plan, held, opened, venue)

    def _place_exits_and_book(self, delivery: Delivery, plan: OrderPlan, held: int, opened: OpenedPosition,
                              venue: TradingClient) -> None:
        stop, target = _exits(plan, opened)
        try:
            venue.set_exits(opened, stop, target)
        except (VenueRejected, ValueError) as exc:
            # A position without its stop breaks the first rule: close it at once.
            log.warning("exits refused for %s (%s): closing it", opened.position_id, exc)
            record = self._record(delivery.envelope, plan, opened, book_open(held, opened.margin_used, opened.fee),
                                  stop, target)
            tier = venue.account(refresh=False).tier
            settlement = close_position(venue, record, tier, f"{delivery.envelope.id}:exits")
            return self._book(delivery, plan, held, opened, stop, target, settlement, "exits_refused")
        self._book(delivery, plan, held, opened, stop, target, None, "")

    def _record(self, env: Envelope, plan: OrderPlan, opened: OpenedPosition, booking, stop: Decimal | None,
                target: Decimal | None) -> PositionRecord:
        stop_text = "" if stop is None else str(stop)
        trail = Trail(plan.trail_bp, str(opened.entry_price), stop_text) if plan.trail_bp and stop is not None else None
        return PositionRecord(position_id=opened.position_id, coin=opened.coin, side=plan.side,
                              entry_price=str(opened.entry_price), notional=opened.size_usd, margin=booking.margin,
                              leverage=plan.leverage, fee_open=booking.fee, stop_loss=stop_text,
                              take_profit="" if target is None else str(target), opened_by=env.id,
                              opened_ms=self.clock.now_ms(), trail=trail)

    def _book(self, delivery: Delivery, plan: OrderPlan, held: int, opened: OpenedPosition, stop: Decimal | None,
              target: Decimal | None, settlement: Settlement | None, close_reason: str) -> None:
        """The order's one commit: reservation → margin (+ fee out, rest back), the position booked
        (or, when it is already closed, settled in the same step), journal, RiskGuard, ack."""
        env = delivery.envelope
        agent, now, k = env.agent, self.clock.now_ms(), self.keys
        ledger = k.ledger(agent)
        booking = book_open(held, opened.margin_used, opened.fee)
        record = self._record(env, plan, opened, booking, stop, target)
        commit = self.steps.new_commit(agent)
        commit.incr(ledger, f"{BUCKET}:reserved", -held).incr(ledger, f"{BUCKET}:margin", booking.margin)
        commit.incr(ledger, BUCKET, booking.back)
        commit.hdel(k.reservations(agent), env.id).hdel(plans_key(k, agent), env.id)
        event = PositionOpened(position_id=record.position_id, coin=record.coin, side=plan.side,  # type: ignore[arg-type]
                               entry_price=record.entry_price, notional=record.notional, margin=record.margin,
                               leverage=record.leverage, fee=booking.fee, stop_loss=record.stop_loss,
                               take_profit=record.take_profit, trail_bp=plan.trail_bp, sizing=plan.sizing,
                               reconstructed=opened.reconstructed)
        self._emit(commit, env, event)
        remaining = [r for pid, r in read_positions(self.client, k, agent).items() if pid != record.position_id]
        if settlement is None:
            commit.hset(positions_key(k, agent), record.position_id, record.encode())
            remaining.append(record)
        else:
            self._settle(commit, env, record, settlement, close_reason, stored=False)
        self._mark(commit, agent, None, remaining)
        self._balances_changed(commit, env, f"position {record.position_id} opened")
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, now)

    def _release(self, delivery: Delivery, plan: OrderPlan, held: int, code: str, reason: str, *,
                 by_venue: bool = False) -> None:
        """Nothing was opened: the reservation goes back to the available balance; journaled as
        `OrderRejected` when the venue refused the order, else `OrderRefused`."""
        env = delivery.envelope
        agent, k = env.agent, self.keys
        commit = self.steps.new_commit(agent)
        commit.incr(k.ledger(agent), f"{BUCKET}:reserved", -held).incr(k.ledger(agent), BUCKET, held)
        commit.hdel(k.reservations(agent), env.id).hdel(plans_key(k, agent), env.id)
        kind = OrderRejected if by_venue else OrderRefused
        self._deny(delivery, kind(code=code, reason=reason, sizing=plan.sizing), commit)

    # ------------------------------------------------------------------ close

    def close_one(self, delivery: Delivery, cmd: ClosePosition) -> None:
        env = delivery.envelope
        record = read_positions(self.client, self.keys, env.agent).get(cmd.position_id)
        if record is None:
            return self._refuse(delivery, "unknown_position", f"no open position {cmd.position_id} is booked",
                                position_id=cmd.position_id)
        venue = self.trading_for(env.agent)
        settlement = close_position(venue, record, venue.account(refresh=False).tier, env.id)
        commit = self.steps.new_commit(env.agent)
        self._settle(commit, env, record, settlement, cmd.reason)
        self._mark(commit, env.agent, venue, [r for pid, r in read_positions(self.client, self.keys, env.agent).items()
                                             if pid != record.position_id])
        self._balances_changed(commit, env, f"position {record.position_id} closed")
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, self.clock.now_ms())

    def close_all(self, delivery: Delivery, cmd: CloseAllPositions) -> None:
        """Close every booked position at the market (the venue's own close-all only marks its
        database and leaves the exchange positions open, so it is never used)."""
        env = delivery.envelope
        refusal = close_all_refusal(self.client, self.keys, env)
        if refusal:
            raise HandlerRejected(refusal)
        records = read_positions(self.client, self.keys, env.agent)
        commit = self.steps.new_commit(env.agent)
        pnl = fees = 0
        if records:
            venue = self.trading_for(env.agent)
            tier = venue.account(refresh=False).tier
            for pid, record in records.items():
                settlement = close_position(venue, record, tier, f"{env.id}:{pid}")
                self._settle(commit, env, record, settlement, cmd.reason)
                pnl, fees = pnl + settlement.pnl, fees + settlement.fee
            self._mark(commit, env.agent, venue, [])
            self._balances_changed(commit, env, f"{len(records)} positions closed: {cmd.reason}")
        done = PositionsClosedAll(reason=cmd.reason, closed=len(records), pnl=pnl, fees=fees)
        self._emit(commit, env, done)
        if cmd.reply_to:
            commit.emit(self.keys.agent_commands(env.agent, cmd.reply_to),
                        wrap(done, agent=env.agent, now_ms=self.clock.now_ms(), new_id=self.new_id, cause=env))
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, self.clock.now_ms())

    def _settle(self, commit: Commit, env: Envelope, record: PositionRecord, s: Settlement, reason: str,
                stored: bool = True) -> None:
        """Margin out of `trading:margin`, margin + pnl − fee (never below 0) into `trading`."""
        agent, k = env.agent, self.keys
        returned = settled_amount(record.margin, s.pnl, s.fee)
        commit.incr(k.ledger(agent), f"{BUCKET}:margin", -record.margin).incr(k.ledger(agent), BUCKET, returned)
        if stored:
            commit.hdel(positions_key(k, agent), record.position_id)
        closed = PositionClosed(position_id=record.position_id, coin=record.coin, side=record.side,  # type: ignore[arg-type]
                                reason=reason, entry_price=record.entry_price, exit_price=s.exit_price,
                                notional=record.notional, margin=record.margin, pnl=s.pnl, fee=s.fee,
                                returned=returned, liquidated=s.liquidated or record.margin + s.pnl - s.fee < 0,
                                reconstructed=s.reconstructed)
        self._emit(commit, env, closed)

    # ------------------------------------------------------------------ the exit tick

    def check_exits(self, delivery: Delivery, cmd: CheckExits) -> None:
        env = delivery.envelope
        agent = env.agent
        records = read_positions(self.client, self.keys, agent)
        if not records:
            if int(self.client.hget(self.keys.marks(agent), "open") or 0) == 0:
                return self._ack_only(delivery)
            commit = self.steps.new_commit(agent)  # a stale count with nothing booked: clear it
            self._mark(commit, agent, None, [])
            commit.ack(delivery.stream, delivery.group, delivery.entry_id)
            return self._commit(commit, env.id, self.clock.now_ms())
        venue = self.trading_for(agent)
        tier = venue.account(refresh=False).tier

        moved, hits = self._ratchet(venue, records)
        held = exchange_holds(venue.positions().positions, records.values())
        check = venue.check_exits()
        settled: dict[str, tuple[Settlement, str]] = {}
        for execution in check.executions:
            record = records.get(execution.position_id)
            if record is None or record.position_id in settled:
                continue
            if record.position_id not in held:
                # The exchange had nothing left to close: the venue's fill is simulated, its pnl
                # never reached the account. The margin went with the liquidation.
                settled[record.position_id] = (liquidation(record, str(execution.exit_price)), "liquidated")
                continue
            reason = "trailing_stop" if execution.type == "stop_loss" and record.trail else execution.type
            s = from_execution(execution, record)
            settled[record.position_id] = (s, "liquidated" if s.liquidated else reason)
        gone = [r for pid, r in records.items() if pid not in held and pid not in settled]
        if gone:
            rows = venue.positions(show_all=True).positions
            for record in gone:
                s = resolve_gone(venue, record, tier, rows)
                settled[record.position_id] = (s, "liquidated" if s.liquidated else "closed_at_venue")
        for pid in hits:
            if pid not in settled:
                settled[pid] = (close_position(venue, records[pid], tier, f"{env.id}:{pid}"), "trailing_stop")

        commit = self.steps.new_commit(agent)
        for pid, (record, event) in moved.items():
            self._emit(commit, env, event)
            if pid not in settled:
                commit.hset(positions_key(self.keys, agent), pid, record.encode())
        for pid, (s, reason) in settled.items():
            self._settle(commit, env, records[pid], s, reason)
        remaining = [moved[pid][0] if pid in moved else r for pid, r in records.items() if pid not in settled]
        self._mark(commit, agent, venue, remaining)
        self._balances_changed(commit, env,
                               f"{len(settled)} positions settled, {len(remaining)} marked at the exit check")
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self._commit(commit, env.id, self.clock.now_ms())

    def _ratchet(self, venue: TradingClient,
                 records: dict[str, PositionRecord]) -> tuple[dict[str, tuple[PositionRecord, StopMoved]], set[str]]:
        """Move every trailing stop with the price; a stop that ratchets moves the venue's trigger.

        Returns the records whose stop moved (with their event) and the positions whose trailing
        stop is hit. The venue has no cancel for a stop-loss, so the old, looser trigger stays; the
        tighter one fires first and the venue then cancels the rest."""
        moved: dict[str, tuple[PositionRecord, StopMoved]] = {}
        hits: set[str] = set()
        prices: dict[str, Decimal] = {}
        for pid, record in records.items():
            if record.trail is None:
                continue
            price = prices.get(record.coin)
            if price is None:
                price = prices[record.coin] = venue.price(record.coin)
            state, hit = record.trail.machine(record.side).update(price)
            stop = venue_price(state.stop_price)
            if hit:
                hits.add(pid)
            if stop == Decimal(record.trail.stop):
                continue
            try:
                venue.set_stop_loss(pid, stop)
            except VenueRejected as exc:
                if exc.code not in GONE_CODES:
                    raise
                continue  # closed at the venue already: the tick settles it below
            trail = Trail(record.trail.bp, str(state.best_price), str(stop))
            updated = msgspec.structs.replace(record, stop_loss=str(stop), trail=trail)
            moved[pid] = (updated, StopMoved(position_id=pid, previous=record.stop_loss, stop_loss=str(stop),
                                             best_price=str(state.best_price)))
        return moved, hits

    # ------------------------------------------------------------------ marks

    def _mark(self, commit: Commit, agent: str, venue: TradingClient | None, remaining: list[PositionRecord]) -> None:
        """Re-mark the positions still open after this commit at the venue's mark price, in this commit.

        `trading:unrealized` becomes their unrealized P&L and the marks hash records when and how
        many. A venue that cannot give a price leaves the old mark to age: once older than the limit
        the fence refuses new spends (`actors/trading/marks.py`)."""
        k = self.keys
        prices: dict[str, Decimal] = {}
        if remaining:
            try:
                venue = venue or self.trading_for(agent)
                for record in remaining:
                    if record.coin not in prices:
                        prices[record.coin] = venue.price(record.coin)
                value = book_unrealized(remaining, prices)
            except (VenueUnavailable, VenueRateLimited, VenueRejected, ValueError) as exc:
                log.warning("trading %s: cannot mark %d positions: %s", agent, len(remaining), exc)
                commit.hset(k.marks(agent), "open", len(remaining))
                return
        else:
            value = 0
        commit.hset(k.ledger(agent), f"{BUCKET}:unrealized", value)
        commit.hset(k.marks(agent), "at_ms", self.clock.now_ms()).hset(k.marks(agent), "open", len(remaining))

    # ------------------------------------------------------------------ risk state

    def _stopped_by_control(self, agent: str) -> tuple[str, str] | None:
        """The fast path: the last broadcast says spending stopped (the fence stays the authority)."""
        control = self.spend_blocked(agent)
        if control is None:
            return None
        return control.state.lower(), f"treasury is {control.state}: {control.reason}"

    def _stopped_now(self, agent: str) -> tuple[str, str] | None:
        """For a reservation granted before a crash: is opening still allowed now? A halt or pause
        committed since then wins over the old reservation, which is released instead."""
        risk = read_risk(self.client, self.keys, agent)
        if risk.state == "HALTED":
            return "halted", f"treasury is HALTED: {risk.reason}"
        if risk.state == "PAUSED" and (risk.until_ms == 0 or self.clock.now_ms() < risk.until_ms):
            return "paused", f"treasury is PAUSED: {risk.reason}"
        if BUCKET in risk.halted_buckets:
            return "bucket_halted", f"trading halted: {risk.halted_buckets[BUCKET]}"
        return None

    # ------------------------------------------------------------------ commits

    def _refuse(self, delivery: Delivery, code: str, reason: str, *, sizing: TradeSizing | None = None,
                seq: int | None = None, position_id: str | None = None, drop_plan: bool = False) -> None:
        env = delivery.envelope
        commit = self.steps.new_commit(env.agent)
        if drop_plan:
            commit.hdel(plans_key(self.keys, env.agent), env.id)
        self._deny(delivery, OrderRefused(code=code, reason=reason, position_id=position_id, sizing=sizing,
                                          fence_seq=seq), commit)

    def _balances_changed(self, commit: Commit, cause: Envelope, why: str) -> None:
        poke = BalancesChanged(cause=why)
        self._emit(commit, cause, poke, self.keys.agent_commands(cause.agent, role_of(poke)))


def _exits(plan: OrderPlan, opened: OpenedPosition) -> tuple[Decimal, Decimal]:
    """The stop-loss and take-profit at absolute prices, from the price the order really filled at."""
    stop, target = stop_prices(
        opened.entry_price, plan.side, Decimal(plan.stop_pct), Decimal(plan.take_profit_multiple)
    )
    return venue_price(stop), venue_price(target)


def build(steps: AtomicSteps, clock: Clock, new_id: IdFactory, venues: dict[str, str]) -> pykka.ActorRef:
    return TradingBucket.start(
        steps, clock, new_id, trading_client_factory(steps.client, steps.keys, venues["trading"])
    )
