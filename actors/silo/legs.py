"""What the bucket actors do for the silo role: land or return a transfer's held part, book a fee
or outside income, and apply an operator's adjustment.

Each is one atomic commit by the bucket's own actor (single writer), authorised by a one-shot
token the silo actor wrote in the transfer's record (`actors/silo/records.py`) in the same commit
that sent the message. The token is consumed with a minimum of 0 inside the commit script, so a
redelivered, resent or forged message moves nothing more than the silo actor recorded; when the
token is gone the message is only acknowledged. `AdjustLedger` is an operator command: the
command gate checked its signature and scope before it reached the actor.
"""

from __future__ import annotations

from actors.flows import flow_effects
from actors.silo.records import income_key, xfer_key
from actors.transfers import leg_field, record_net_transfer, saga_key
from messages.envelope import Envelope, wrap
from messages.money import format_usd
from messages.schema import BalancesChanged
from messages.silo_msgs import (
    AdjustLedger,
    AdjustRefused,
    BookFee,
    BookIncome,
    FeeBooked,
    HeldReturned,
    IncomeBooked,
    LandHeld,
    LedgerAdjusted,
    ReturnHeld,
    TransferHeldLanded,
)
from runtime.bus import Delivery, HandlerRejected

SILO_LEG_TYPES = (LandHeld, ReturnHeld, BookFee, BookIncome, AdjustLedger)


def handle_silo_leg(owner, delivery: Delivery) -> bool:
    """Apply `delivery` if it is one of `SILO_LEG_TYPES`; False (touching nothing) otherwise.

    `owner` has `steps`, `clock`, `new_id` (every bucket actor). Raises `HandlerRejected` for a
    message on the wrong bucket's stream or one the bucket cannot apply (a fee larger than its
    available balance: the operator must look)."""
    body = delivery.envelope.body
    if not isinstance(body, SILO_LEG_TYPES):
        return False
    bucket = body.source if isinstance(body, ReturnHeld) else body.bucket
    env, k = delivery.envelope, owner.steps.keys
    if delivery.stream != k.agent_commands(env.agent, bucket):
        raise HandlerRejected(f"{env.type} for the {bucket} bucket arrived on {delivery.stream}")
    commit = owner.steps.new_commit(env.agent)
    ledger = k.ledger(env.agent)
    now = owner.clock.now_ms()

    def emit(event, cause: str | None) -> None:
        commit.emit(k.events(env.agent), _wrap(owner, event, env))
        if cause:
            commit.emit(k.agent_commands(env.agent, "risk"), _wrap(owner, BalancesChanged(cause=cause), env))

    if isinstance(body, LandHeld):
        xkey, skey = xfer_key(k, env.agent, body.transfer), saga_key(k, env.agent, body.saga)
        commit.incr(xkey, f"land:{body.leg}", -body.amount)
        commit.incr(skey, leg_field(body.leg, "landable"), -body.amount)
        commit.incr(skey, leg_field(body.leg, "transit"), -body.amount)
        commit.incr(skey, leg_field(body.leg, "credited"), body.amount)
        commit.incr(ledger, f"{body.bucket}:in_transit", -body.amount).incr(ledger, body.bucket, body.amount)
        emit(TransferHeldLanded(transfer=body.transfer, saga=body.saga, leg=body.leg, bucket=body.bucket,
                                amount=body.amount, reason=body.reason), f"deposit landed for {body.transfer}")
    elif isinstance(body, ReturnHeld):
        xkey, skey = xfer_key(k, env.agent, body.transfer), saga_key(k, env.agent, body.saga)
        commit.incr(xkey, f"ret:{body.leg}", -body.amount)
        commit.incr(skey, leg_field(body.leg, "landable"), -body.amount)
        commit.incr(skey, leg_field(body.leg, "transit"), -body.amount)
        commit.incr(skey, leg_field(body.leg, "returned"), body.amount)
        commit.incr(ledger, f"{body.dest}:in_transit", -body.amount).incr(ledger, body.source, body.amount)
        record_net_transfer(commit, k.flows(env.agent), body.dest, body.source, body.amount)
        emit(HeldReturned(transfer=body.transfer, saga=body.saga, leg=body.leg, source=body.source, dest=body.dest,
                          amount=body.amount, reason=body.reason), f"held part of {body.transfer} returned")
    elif isinstance(body, BookFee):
        commit.incr(xfer_key(k, env.agent, body.transfer), f"fee:{body.kind}", -body.amount)
        commit.incr(ledger, body.bucket, -body.amount)
        emit(FeeBooked(transfer=body.transfer, bucket=body.bucket, amount=body.amount, kind=body.kind,
                       reason=body.reason), f"fee of {body.transfer}")
    elif isinstance(body, BookIncome):
        commit.incr(income_key(k, env.agent), body.ref, -body.amount)
        # money paid in from outside is an external flow, not a casino or trading profit: the
        # breakers measure performance (total less flows), so it moves neither a day's loss nor a peak
        commit.emit(k.events(env.agent), _wrap(owner, flow_effects(
            commit, k, env.agent, bucket=body.bucket, amount_micros=body.amount,
            source="deposit", detail=body.reason, ref=f"income:{body.ref}"), env))
        emit(IncomeBooked(silo=body.silo, bucket=body.bucket, amount=body.amount, ref=body.ref, reason=body.reason),
             f"outside income {body.ref}")
    else:  # AdjustLedger, signed by an operator
        before = int(owner.steps.client.hget(ledger, body.bucket) or 0)
        # an operator's correction of the books is a flow (source `operator_adjustment`), not a win or
        # a loss: an adjustment never trips a breaker, and never relaxes one either
        commit.emit(k.events(env.agent), _wrap(owner, flow_effects(
            commit, k, env.agent, bucket=body.bucket, amount_micros=body.amount, source="operator_adjustment",
            detail=body.reason), env))
        emit(LedgerAdjusted(bucket=body.bucket, amount=body.amount, before=before, after=before + body.amount,
                            reason=body.reason), f"operator adjustment of {body.bucket}")
    commit.ack(delivery.stream, delivery.group, delivery.entry_id)
    result = owner.steps.commit(commit, env.id, now)
    if result.applied or result.status == "duplicate":
        return True
    if isinstance(body, AdjustLedger):
        refused = AdjustRefused(bucket=body.bucket, amount=body.amount,
                                reason=f"{body.bucket} has {format_usd(before)} available: an adjustment of "
                                       f"{format_usd(body.amount)} would make it negative ({body.bucket} would be "
                                       f"{format_usd(before + body.amount)}, below $0.00)")
        _journal_and_ack(owner, delivery, refused)
        return True
    if isinstance(body, BookFee) and _token(owner, env.agent, body) >= body.amount:
        raise HandlerRejected(f"the fee of {format_usd(body.amount)} for {body.transfer} exceeds what {body.bucket} "
                              f"has available: an operator must look ({result.reason})")
    _ack_only(owner, delivery)  # the token was consumed already: a resend, a duplicate or a forgery
    return True


def _token(owner, agent: str, body: BookFee) -> int:
    k = owner.steps.keys
    return int(owner.steps.client.hget(xfer_key(k, agent, body.transfer), f"fee:{body.kind}") or 0)


def _wrap(owner, body, cause: Envelope) -> Envelope:
    return wrap(body, agent=cause.agent, now_ms=owner.clock.now_ms(), new_id=owner.new_id, cause=cause)


def _ack_only(owner, delivery: Delivery) -> None:
    commit = owner.steps.new_commit(delivery.envelope.agent).ack(delivery.stream, delivery.group, delivery.entry_id)
    owner.steps.commit(commit, delivery.envelope.id, owner.clock.now_ms())


def _journal_and_ack(owner, delivery: Delivery, event) -> None:
    env, k = delivery.envelope, owner.steps.keys
    commit = owner.steps.new_commit(env.agent)
    commit.emit(k.events(env.agent), _wrap(owner, event, env))
    commit.ack(delivery.stream, delivery.group, delivery.entry_id)
    owner.steps.commit(commit, env.id, owner.clock.now_ms())
