"""SiloExecutor: the `silo` role. Makes the physical transfers the Rebalancer's sagas leave,
watches the destinations, lands or returns the held legs, books fees and outside income, and
reconciles every silo with the ledger.

It is a role of its own rather than steps of the Rebalancer's saga because its work is slow,
venue-bound and open-ended (a deposit takes 60-90 s to be credited, a withdrawal over $1,000
waits hours for a review, a lost answer is looked up before anything is retried), while every
Rebalancer decision is a quick commit from Redis state. A saga therefore ends when its ledger
legs are settled; the transfers it leaves are records this actor drives, one state change per
commit, each recorded *before* the venue call it precedes (`actors/silo/records.py`), so a crash
at any point is followed by a look-up, never by a blind resend. It also holds the wallet key,
which no other role needs.

Per transfer (each step one commit; `hop` walks casino <-> trading through the wallet):

    pending --record attempt--> sending --venue answer--> sent | review | (refused -> returned)
    sending/unknown --look-up--> FOUND: sent | ABSENT: pending (retry) | UNKNOWN: unknown (held, alert)
    sent --destination shows it--> landed (LandHeld per leg, shortfall booked as a fee)
    sent --not seen by the deadline--> returned (ReturnHeld per leg, alert)
    review --casino completes it--> landed; --casino fails it--> returned

Messages: `ExecuteSiloTransfers` (from the Rebalancer), `SiloTick` (schedule: also watches
outside income and reconciles when due), `Reconcile` (on demand), `PlaceFunds` (operator: park
the reserve's money in the casino balance, where escrows are funded from, or bring it home).
"""

from __future__ import annotations

import json
import logging

import pykka

from actors.base import TreasuryActor
from actors.ledger import read_ledger
from actors.silo import venues as v
from actors.silo.planning import HOPS
from actors.silo.reconcile import DEFAULT_TOLERANCE, parked_left, reconcile
from actors.silo.records import (
    OPEN_STATES,
    Transfer,
    income_key,
    intents_key,
    list_transfers,
    placement_key,
    prune_closed,
    seen_key,
    silo_state_key,
    xfer_key,
)
from messages.catalogue import BUCKET_ROLE
from messages.envelope import Envelope, IdFactory, wrap
from messages.money import format_usd
from messages.silo_msgs import (
    BookFee,
    BookIncome,
    ExecuteSiloTransfers,
    LandHeld,
    PlaceFunds,
    Reconcile,
    ReturnHeld,
    SiloTick,
    SiloTransferFailed,
    SiloTransferHeld,
    SiloTransferLanded,
    SiloTransferSent,
)
from runtime.atomic import AtomicSteps, Commit
from runtime.bus import Delivery, HandlerRejected
from runtime.clock import Clock

log = logging.getLogger(__name__)

HOME = {"reserve": "wallet", "trading": "trading", "casino": "casino", "referral": "casino"}

DEPOSIT_DEADLINE_MS = 30 * 60_000
"""A transfer the destination has not shown this long after it was sent is returned (alert)."""

MAX_ATTEMPTS = 3
"""Sends proven absent after this many attempts: the transfer is returned."""

RECONCILE_EVERY_MS = 3_600_000


def _fingerprint(checked) -> str:
    """What a reconciliation found, per silo (status, venue, ledger, in flight, difference): equal
    for two checks that would tell an operator the same thing."""
    return ";".join(f"{c.silo}:{c.status}:{c.venue_micros}:{c.ledger_micros}:{c.in_flight_micros}:{c.difference_micros}"
                    for c in checked.silos)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SiloExecutor(TreasuryActor):
    role = "silo"
    handlers = {ExecuteSiloTransfers: "_on_message", SiloTick: "_on_message", Reconcile: "_on_message",
                PlaceFunds: "_on_message"}

    def __init__(self, steps: AtomicSteps, clock: Clock, new_id: IdFactory, venues: dict[str, str], *,
                 key_provider=v.sandbox_key_provider, paper: bool = True, clients: dict | None = None,
                 deadline_ms: int = DEPOSIT_DEADLINE_MS, max_attempts: int = MAX_ATTEMPTS,
                 reconcile_every_ms: int = RECONCILE_EVERY_MS, tolerance: int = DEFAULT_TOLERANCE):
        super().__init__(steps, clock, new_id)
        self.urls = venues
        self.key_provider = key_provider
        self.paper = paper
        self.clients = clients
        self.deadline_ms = deadline_ms
        self.max_attempts = max_attempts
        self.reconcile_every_ms = reconcile_every_ms
        self.tolerance = tolerance

    # ------------------------------------------------------------------ messages

    def _on_message(self, delivery: Delivery, body) -> None:
        """Every message works on the agent's transfers; a tick also watches income and reconciles
        when due; `Reconcile` reconciles now; `PlaceFunds` records a transfer first."""
        env = delivery.envelope
        if isinstance(body, PlaceFunds):
            self.place(env, body)
        venues = self.venues(env.agent)
        try:
            if isinstance(body, Reconcile):
                self.work(env, venues)  # land what has arrived first: it is not a difference
                self.reconcile_now(env, venues, body.reason)
            else:
                self.work(env, venues)
                if isinstance(body, SiloTick):
                    self.watch_income(env, venues)
                    self.reconcile_if_due(env, venues)
        finally:
            venues.close()
        commit = self.steps.new_commit(env.agent).ack(delivery.stream, delivery.group, delivery.entry_id)
        self.steps.commit(commit, env.id, self.clock.now_ms())

    def venues(self, agent: str) -> v.AgentVenues:
        return v.AgentVenues(self.client, self.keys, agent, self.urls, key_provider=self.key_provider,
                             paper=self.paper, clients=self.clients)

    # ------------------------------------------------------------------ parking a bucket's money

    def place(self, env: Envelope, cmd: PlaceFunds) -> None:
        """Record a transfer of `cmd.bucket`'s money between its home silo and `cmd.silo`, with no
        ledger leg: the bucket keeps it, the placement record says where it sits once it landed."""
        home = HOME[cmd.bucket]
        if cmd.silo == home:  # bring parked money home
            parked = parked_left(self.client, self.keys, env.agent, cmd.bucket)  # net of what escrows took
            if parked < cmd.amount:
                raise HandlerRejected(f"only {format_usd(parked)} of the {cmd.bucket} is parked at the casino, "
                                      f"not {format_usd(cmd.amount)}")
            src, dst, sign = "casino", home, -1
        elif cmd.silo == "casino":
            src, dst, sign = home, "casino", 1
        else:
            raise HandlerRejected(f"the {cmd.bucket}'s money can be parked at the casino only, not in {cmd.silo}")
        ledger = read_ledger(self.client, self.keys, env.agent)
        if sign > 0 and ledger.available.get(cmd.bucket, 0) < cmd.amount:
            raise HandlerRejected(f"{cmd.bucket} has {format_usd(ledger.available.get(cmd.bucket, 0))} available, "
                                  f"not {format_usd(cmd.amount)}")
        tid = f"place:{env.id}"
        xkey = xfer_key(self.keys, env.agent, tid)
        commit = self.steps.new_commit(env.agent)
        for fld, value in (("saga", env.id), ("from_silo", src), ("to_silo", dst), ("amount", cmd.amount),
                           ("route", f"{cmd.bucket} money {src} -> {dst}: {cmd.reason}"), ("legs", ""),
                           ("state", "pending"), ("hop", 0), ("attempts", 0), ("created_ms", self.clock.now_ms()),
                           ("reason", cmd.reason), ("place_bucket", cmd.bucket), ("place_sign", sign)):
            commit.hset(xkey, fld, value)
        commit.hset(intents_key(self.keys, env.agent), tid, f"{src}|{dst}|{cmd.amount}|pending")
        self._commit(commit, f"{tid}:placed")

    # ------------------------------------------------------------------ transfers

    def work(self, env: Envelope, venues: v.AgentVenues) -> None:
        """Take every open transfer of the agent as far as it can go now; drop long-closed ones
        from the index (`records.prune_closed`), so a tick reads what is open and recent only."""
        transfers = list_transfers(self.client, self.keys, env.agent)
        prune_closed(self.client, self.keys, env.agent, transfers, self.clock.now_ms())
        for t in transfers:
            for _ in range(6):  # a transfer may take several steps at once (send, then find it landed)
                if t.state not in OPEN_STATES or not self.step(env, venues, t):
                    break
                t = self._reload(env.agent, t.id)

    def step(self, env: Envelope, venues: v.AgentVenues, t: Transfer) -> bool:
        """One step of `t`; True when its state changed."""
        a, b = HOPS[(t.from_silo, t.to_silo)][t.int("hop")]
        now = self.clock.now_ms()
        if t.state == "pending":
            return self._send(env, venues, t, a, b, now)
        if t.state in ("sending", "unknown"):
            return self._look_up(env, venues, t, a, b, now)
        if t.state == "sent":
            return self._watch(env, venues, t, a, b, now)
        if t.state == "review":
            return self._watch_review(env, venues, t, now)
        return False

    def _send(self, env, venues, t: Transfer, a: str, b: str, now: int) -> bool:
        if a == "trading":
            return self._fail(env, t, "send", "the trading API has no collateral withdrawal (Hyperliquid collateral "
                                              "leaves only through Hyperliquid itself): the money stays in trading")
        if t.int("attempts") >= self.max_attempts:
            return self._fail(env, t, "send", f"no send went through in {t.int('attempts')} attempts")
        before = None
        if a == "wallet":
            before, note = venues.balance("wallet")
            if before is None:
                log.info("silo %s: %s waits: the wallet balance is unreadable (%s)", env.agent, t.id, note)
                return False  # nothing to prove a lost answer with: do not start
            try:
                to = venues.destination_address(b)
            except Exception as exc:  # an unreadable deposit address: try again on the next tick
                log.info("silo %s: %s waits for the %s deposit address (%s)", env.agent, t.id, b, exc)
                return False
        elif t.amount < 1_000_000:
            return self._fail(env, t, "send", f"{format_usd(t.amount)} is under the casino's $1.00 minimum withdrawal")
        # record the attempt BEFORE the venue call: a crash after it is followed by a look-up
        commit = self.steps.new_commit(env.agent)
        xkey = xfer_key(self.keys, env.agent, t.id)
        commit.hset(xkey, "state", "sending").hset(xkey, "attempt_ms", now).incr(xkey, "attempts", 1)
        if before is not None:
            commit.hset(xkey, "balance_before", before)
        self._commit(commit, f"{t.id}:attempt:{t.int('attempts')}:{t.int('hop')}")
        outcome = venues.send_usdc(to, t.amount) if a == "wallet" else venues.casino_withdraw(t.amount, t.id)
        t = self._reload(env.agent, t.id)
        if outcome.kind == "sent":
            return self._sent(env, t, outcome.ref, outcome.fee, found=False)
        if outcome.kind == "review":
            return self._review(env, t, outcome.ref, outcome.fee, outcome.detail)
        if outcome.kind == "refused":
            return self._fail(env, t, "send", f"the venue refused: {outcome.detail}")
        log.warning("silo %s: %s answer lost (%s): looking it up before anything else", env.agent, t.id, outcome.detail)
        return self._look_up(env, venues, t, a, b, now)

    def _look_up(self, env, venues, t: Transfer, a: str, b: str, now: int) -> bool:
        """A send whose answer was lost: FOUND, ABSENT (may be sent again) or UNKNOWN (held)."""
        if a == "wallet":
            found = venues.find_send(t.amount, t.int("balance_before"))
        else:
            found = venues.find_withdrawal(t.amount, t.int("attempt_ms"))
            if found.status == v.FOUND and found.row is not None and found.row.status == "failed":
                found = v.Lookup(v.ABSENT, detail="the casino failed that withdrawal and refunded it",
                                 window=found.window)
        if found.status == v.FOUND:
            row = found.row
            if row is not None and getattr(row, "status", "") == "reviewing":
                return self._review(env, t, found.ref, int(row.fee or 0), f"found by look-up: {found.detail}")
            fee = int(getattr(row, "fee", 0) or 0) if row is not None else 0
            return self._sent(env, t, found.ref or "found by look-up", fee, found=True)
        xkey = xfer_key(self.keys, env.agent, t.id)
        commit = self.steps.new_commit(env.agent)
        if found.status == v.ABSENT:
            commit.hset(xkey, "state", "pending").hset(xkey, "lookup", f"absent: {found.detail}; {found.window}")
            self._commit(commit, f"{t.id}:absent:{t.int('attempts')}:{t.int('hop')}")
            return True
        if t.state == "unknown":
            return False  # still unknown: held, journaled and alerted once already
        reason = (f"the answer to the {a} -> {b} transfer was lost and the look-up cannot tell whether it went "
                  f"({found.detail}; covered: {found.window or 'nothing'}): held, never resent; an operator decides")
        commit.hset(xkey, "state", "unknown").hset(xkey, "lookup", f"unknown: {found.detail}")
        self._event(commit, env, SiloTransferHeld(transfer=t.id, from_silo=t.from_silo, to_silo=t.to_silo,
                                                  amount=t.amount, why="unknown", reason=reason))
        self._commit(commit, f"{t.id}:unknown:{t.int('attempts')}:{t.int('hop')}")
        self._alert(env.agent, t.id, reason)
        return True

    def _sent(self, env, t: Transfer, ref: str, fee: int, *, found: bool) -> bool:
        a, b = HOPS[(t.from_silo, t.to_silo)][t.int("hop")]
        xkey = xfer_key(self.keys, env.agent, t.id)
        commit = self.steps.new_commit(env.agent)
        commit.hset(xkey, "state", "sent").hset(xkey, "venue_ref", ref).hset(xkey, "sent_ms", self.clock.now_ms())
        commit.hset(intents_key(self.keys, env.agent), t.id, f"{t.from_silo}|{t.to_silo}|{t.amount}|sent")
        self._event(commit, env, SiloTransferSent(transfer=t.id, saga=t.saga, from_silo=a, to_silo=b,
                                                  amount=t.amount, route=t.text("route"), venue_ref=ref, found=found))
        self._book_fee(commit, env, t, fee, "casino_withdrawal",
                       f"the casino's $0.50 fee on withdrawal {ref} ({a} -> {b} for transfer {t.id})")
        self._commit(commit, f"{t.id}:sent:{t.int('hop')}")
        return True

    def _review(self, env, t: Transfer, ref: str, fee: int, detail: str) -> bool:
        xkey = xfer_key(self.keys, env.agent, t.id)
        commit = self.steps.new_commit(env.agent)
        commit.hset(xkey, "state", "review").hset(xkey, "venue_ref", ref).hset(xkey, "sent_ms", self.clock.now_ms())
        commit.hset(intents_key(self.keys, env.agent), t.id, f"{t.from_silo}|{t.to_silo}|{t.amount}|sent")
        self._event(commit, env, SiloTransferHeld(
            transfer=t.id, from_silo=t.from_silo, to_silo=t.to_silo, amount=t.amount, why="review",
            reason=f"{detail}; the held part lands when the casino completes it (no deadline while it is reviewed)"))
        self._book_fee(commit, env, t, fee, "casino_withdrawal",
                       f"the casino's $0.50 fee on withdrawal {ref} (transfer {t.id}, under review)")
        self._commit(commit, f"{t.id}:review:{t.int('hop')}")
        return True

    def _watch(self, env, venues, t: Transfer, a: str, b: str, now: int) -> bool:
        """Does the destination show the transfer yet?"""
        sent_ms = t.int("sent_ms")
        seen = {_text(x) for x in self.client.hkeys(seen_key(self.keys, env.agent))}
        if b == "casino":
            found = venues.find_casino_deposit(t.amount, sent_ms, seen)
            if found.status == v.FOUND:
                return self._arrived(env, t, int(found.row.amount), found.ref)
        elif b == "wallet":
            found = venues.find_withdrawal(t.amount, sent_ms, ref=t.text("venue_ref"))
            if found.status == v.FOUND and found.row.status == "completed":
                return self._arrived(env, t, t.amount, found.ref)
            if found.status == v.FOUND and found.row.status == "failed":
                return self._fail(env, t, "deposit", f"the casino failed withdrawal {found.ref} (it refunds it)")
            if found.status == v.FOUND and found.row.status == "reviewing":
                return self._review(env, t, found.ref, 0, f"withdrawal {found.ref} is under the casino's review")
        else:  # trading: Hyperliquid collateral has no endpoint; the sandbox's delivery log in paper mode
            found = self._trading_deposit(venues, t, sent_ms, seen)
            if found.status == v.FOUND:
                return self._arrived(env, t, t.amount, found.ref)
            if found.status == v.UNKNOWN and t.text("unseen") != "1":
                xkey = xfer_key(self.keys, env.agent, t.id)
                commit = self.steps.new_commit(env.agent).hset(xkey, "unseen", "1")
                reason = f"the trading collateral cannot be read ({found.detail}): the transfer waits for an operator"
                self._event(commit, env, SiloTransferHeld(transfer=t.id, from_silo=t.from_silo, to_silo=t.to_silo,
                                                          amount=t.amount, why="unseen", reason=reason))
                self._commit(commit, f"{t.id}:unseen")
                self._alert(env.agent, t.id, reason)
                return False
            if found.status == v.UNKNOWN:
                return False  # never returned on a guess: the money may be there
        if now - sent_ms >= self.deadline_ms:
            reason = (f"the {b} silo has not shown the {format_usd(t.amount)} sent {(now - sent_ms) // 1000} s ago "
                      f"(deadline {self.deadline_ms // 1000} s): the held part goes back to its source")
            return self._fail(env, t, "deposit", reason)
        return False

    def _trading_deposit(self, venues, t: Transfer, sent_ms: int, seen: set[str]) -> v.Lookup:
        if not self.paper:
            return v.Lookup(v.UNKNOWN, detail="the trading API has no balance or deposit endpoint")
        from venue.client import SandboxAdmin
        from venue.errors import VenueError

        try:
            with SandboxAdmin(self.urls["wallet"], timeout_s=10) as admin:
                rows = admin.wallet_deposits()
        except (VenueError, KeyError, TypeError) as exc:  # the sandbox's delivery log is unreadable: unknown
            return v.Lookup(v.UNKNOWN, detail=f"sandbox deposits unreadable: {exc}")
        for row in rows:
            ref = f"wallet-deposit:{row['id']}"
            if row["service"] == "trading" and row["status"] == "delivered" and row["amount_micros"] == t.amount \
                    and ref not in seen and row["due_ms"] >= sent_ms:
                return v.Lookup(v.FOUND, ref=ref)
        return v.Lookup(v.ABSENT)

    def _watch_review(self, env, venues, t: Transfer, now: int) -> bool:
        found = venues.find_withdrawal(t.amount, t.int("sent_ms"), ref=t.text("venue_ref"))
        if found.status != v.FOUND:
            return False
        if found.row.status == "completed":
            return self._arrived(env, t, t.amount, found.ref)
        if found.row.status == "failed":
            return self._fail(env, t, "deposit", f"the casino's review failed withdrawal {found.ref}")
        return False

    def _arrived(self, env, t: Transfer, credited: int, ref: str) -> bool:
        """The current hop's destination shows the money: next hop, or land every held leg."""
        hops = HOPS[(t.from_silo, t.to_silo)]
        hop = t.int("hop")
        xkey = xfer_key(self.keys, env.agent, t.id)
        commit = self.steps.new_commit(env.agent)
        commit.hset(seen_key(self.keys, env.agent), ref, t.id)  # this venue row is explained: not income
        if hop + 1 < len(hops):
            commit.hset(xkey, "hop", hop + 1).hset(xkey, "state", "pending").hset(xkey, "attempts", 0)
            commit.hset(intents_key(self.keys, env.agent), t.id, f"{t.from_silo}|{t.to_silo}|{t.amount}|pending")
            self._commit(commit, f"{t.id}:hop:{hop}")
            return True
        commit.hset(xkey, "state", "landed").hset(xkey, "credited", credited).hset(xkey, "landed_ref", ref)
        if t.text("place_bucket"):  # parked money: the bucket keeps it; it now sits elsewhere
            commit.incr(placement_key(self.keys, env.agent), f"{t.text('place_bucket')}@casino",
                        t.int("place_sign") * t.amount)
        commit.hset(intents_key(self.keys, env.agent), t.id, f"{t.from_silo}|{t.to_silo}|{t.amount}|landed")
        for g in t.legs:
            commit.hset(xkey, f"land:{g.leg}", g.held)
            self._to(commit, env, g.dest, LandHeld(transfer=t.id, saga=t.saga, leg=g.leg, bucket=g.dest,
                                                   amount=g.held, reason=f"deposit {ref} of transfer {t.id}"))
        self._event(commit, env, SiloTransferLanded(transfer=t.id, from_silo=t.from_silo, to_silo=t.to_silo,
                                                    amount=t.amount, credited=credited, venue_ref=ref))
        shortfall = t.amount - credited
        if shortfall > 0 and t.legs:
            self._book_fee(commit, env, t, shortfall, "deposit_shortfall",
                           f"the {t.to_silo} silo credited {format_usd(credited)} of {format_usd(t.amount)} "
                           f"(deposit {ref}: swap fee)", bucket=t.legs[0].dest)
        self._commit(commit, f"{t.id}:landed")
        return True

    def _fail(self, env, t: Transfer, stage: str, reason: str) -> bool:
        """The transfer did not (or cannot be shown to) arrive: return every held leg to its source."""
        xkey = xfer_key(self.keys, env.agent, t.id)
        commit = self.steps.new_commit(env.agent)
        commit.hset(xkey, "state", "returned").hset(xkey, "failure", reason)
        commit.hset(intents_key(self.keys, env.agent), t.id, f"{t.from_silo}|{t.to_silo}|{t.amount}|returned")
        for g in t.legs:
            commit.hset(xkey, f"ret:{g.leg}", g.held)
            self._to(commit, env, g.source, ReturnHeld(transfer=t.id, saga=t.saga, leg=g.leg, source=g.source,
                                                       dest=g.dest, amount=g.held, reason=f"transfer {t.id}: {reason}"))
        self._event(commit, env, SiloTransferFailed(transfer=t.id, from_silo=t.from_silo, to_silo=t.to_silo,
                                                    amount=t.amount, stage=stage, reason=reason))
        self._commit(commit, f"{t.id}:returned")
        if stage == "deposit":
            self._alert(env.agent, t.id, reason)
        return True

    def _book_fee(self, commit: Commit, env, t: Transfer, fee: int, kind: str, reason: str,
                  bucket: str | None = None) -> None:
        if fee <= 0:
            return
        if bucket is None:  # the casino's fee comes out of the casino silo: a bucket whose money is there
            bucket = t.text("place_bucket") or next((g.source for g in t.legs if HOME[g.source] == "casino"), "casino")
        key = f"{kind}:{t.int('hop')}"
        if t.text("place_bucket") and kind == "casino_withdrawal":  # paid out of the money parked there
            commit.incr(placement_key(self.keys, env.agent), f"{t.text('place_bucket')}@casino", -fee,
                        minimum=-(10**15))
        commit.hset(xfer_key(self.keys, env.agent, t.id), f"fee:{key}", fee)
        self._to(commit, env, bucket, BookFee(transfer=t.id, bucket=bucket, amount=fee, kind=key, reason=reason))

    # ------------------------------------------------------------------ outside income

    def watch_income(self, env: Envelope, venues: v.AgentVenues) -> None:
        """Casino deposits that no transfer explains, casino payments to this agent and escrow
        referral commissions are money paid in from outside: income of a bucket whose home is the
        casino balance that holds them (casino; referral for commissions), booked once per venue
        reference. The first look only records what is there (the deposits that funded the agent
        were booked when its treasury was opened)."""
        agent, k = env.agent, self.keys
        if any(t.state in OPEN_STATES and t.to_silo == "casino" for t in list_transfers(self.client, k, agent)):
            return  # a deposit of ours may be on its way: nothing is income until it is explained
        try:
            found = venues.outside_income()
        except Exception as exc:
            log.info("silo %s: casino deposits or ledger unreadable (%s)", agent, exc)
            return
        state = silo_state_key(k, agent)
        seen = {_text(x) for x in self.client.hkeys(seen_key(k, agent))}
        fresh = [item for item in found if item[0] not in seen]
        if not self.client.hexists(state, "watch_from_ms"):
            if fresh:  # there before watching started: booked when the treasury was opened
                self.client.hset(seen_key(k, agent), mapping={item[0]: "before-watch" for item in fresh})
            self.client.hset(state, "watch_from_ms", self.clock.now_ms())
            return
        for ref, amount, why, bucket in fresh:
            commit = self.steps.new_commit(agent)
            commit.hset(income_key(k, agent), ref, amount).hset(seen_key(k, agent), ref, "income")
            self._to(commit, env, BUCKET_ROLE[bucket], BookIncome(silo="casino", bucket=bucket, amount=amount, ref=ref,
                                                                  reason=f"{why}: paid in from outside"))
            self._commit(commit, f"income:{agent}:{ref}")

    # ------------------------------------------------------------------ reconciliation

    def reconcile_if_due(self, env: Envelope, venues: v.AgentVenues) -> None:
        last = self.client.hget(silo_state_key(self.keys, env.agent), "last_reconcile_ms")
        if last is not None and self.clock.now_ms() - int(last) < self.reconcile_every_ms:
            return
        self.reconcile_now(env, venues, "scheduled")

    def reconcile_now(self, env: Envelope, venues: v.AgentVenues, reason: str):
        checked = reconcile(self.client, self.keys, env.agent, venues, tolerance=self.tolerance, reason=reason)
        commit = self.steps.new_commit(env.agent)
        state = silo_state_key(self.keys, env.agent)
        commit.hset(state, "last_reconcile_ms", self.clock.now_ms())
        for c in checked.silos:  # what a silo holds beyond its buckets: the planner may use it
            commit.hset(state, f"surplus:{c.silo}", max(0, c.difference_micros or 0) if c.status != "unknown" else 0)
        # The journal is never trimmed: a scheduled check that finds what the last one found is not
        # written again (an idle agent's journal stays flat); a change, or a check asked for, is.
        found = _fingerprint(checked)
        news = reason != "scheduled" or _text(self.client.hget(state, "last_found") or b"") != found
        if news:
            commit.hset(state, "last_found", found)
            self._event(commit, env, checked)
        self._commit(commit, self.new_id())
        if checked.alerted and news:  # the same difference is alerted once, not every hour
            diffs = ", ".join(f"{c.silo} {format_usd(c.difference_micros)}" for c in checked.silos
                              if c.status == "differs")
            self._alert(env.agent, "reconciliation", f"venue and ledger differ beyond "
                                                     f"{format_usd(checked.tolerance_micros)}: {diffs}")
        return checked

    # ------------------------------------------------------------------ plumbing

    def _reload(self, agent: str, tid: str) -> Transfer:
        from actors.silo.records import read_transfer

        t = read_transfer(self.client, self.keys, agent, tid)
        assert t is not None
        return t

    def _event(self, commit: Commit, env: Envelope, event) -> None:
        commit.emit(self.keys.events(env.agent), self._wrap(event, env))

    def _to(self, commit: Commit, env: Envelope, role: str, body) -> None:
        commit.emit(self.keys.agent_commands(env.agent, role), self._wrap(body, env))

    def _wrap(self, body, cause: Envelope) -> Envelope:
        return wrap(body, agent=cause.agent, now_ms=self.clock.now_ms(), new_id=self.new_id, cause=cause)

    def _commit(self, commit: Commit, msg_id: str) -> bool:
        result = self.steps.commit(commit, msg_id, self.clock.now_ms())
        if result.status == "refused":
            raise RuntimeError(f"silo commit {msg_id} refused: {result.reason}")
        return result.applied

    def _alert(self, agent: str, subject: str, reason: str) -> None:
        alert = {"at_ms": self.clock.now_ms(), "role": "silo", "agent": agent, "subject": subject, "reason": reason}
        self.client.xadd(f"{self.keys.prefix}:alerts", {"alert": json.dumps(alert)}, maxlen=10_000, approximate=True)
        log.error("ALERT silo %s %s: %s", agent, subject, reason)


def build(steps: AtomicSteps, clock: Clock, new_id: IdFactory, venues: dict[str, str]) -> pykka.ActorRef:
    """Paper or live from the deployment record (`<prefix>:deployment`, field `mode`; paper when
    absent). Live mode has no wallet key provider yet: wallet sends are then refused and the
    held parts returned, never guessed."""
    mode = steps.client.hget(f"{steps.keys.prefix}:deployment", "mode")
    paper = mode is None or _text(mode) == "paper"
    return SiloExecutor.start(steps, clock, new_id, venues, paper=paper,
                              key_provider=v.sandbox_key_provider if paper else None)
