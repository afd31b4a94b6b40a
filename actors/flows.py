"""Booking an external flow: money that entered or left an agent's treasury without being won or lost.

Inflows: capital at opening, a deposit, money paid *to* the agent (an escrow released to it),
referral commission. Outflows: an escrow payment the agent released, a withdrawal, a transfer to
the owner. The breakers measure performance, not flows: RiskGuard reads every value as
`total − cumulative external flows`, so a flow moves the peak and the day-start by its amount, as
a fund's high-water mark is adjusted for subscriptions and redemptions (`docs/policy.md`, *Flows*).

`book_flow` is the one way to book one. It only adds effects to a `Commit` the caller already
builds (so the flow lands in the same atomic step as the money it explains); the caller commits.
"""

from __future__ import annotations

from messages.envelope import Envelope, IdFactory, wrap
from messages.flow_msgs import FlowBooked
from messages.schema import BUCKETS, BalancesChanged
from runtime.atomic import Commit, CommitResult
from runtime.keys import Keys

INFLOW_SOURCES = frozenset({"capital", "deposit", "escrow_received", "referral_commission"})
OUTFLOW_SOURCES = frozenset({"escrow_payment", "withdrawal", "owner_transfer"})

LEDGER_FIELDS = ("available", "locked", "in_transit", "reserved", None)
"""Where `book_flow` applies the amount: a ledger field of the bucket, or None when the caller's own
effects in the same commit already moved the money (e.g. an escrow release takes it out of locked)."""


class FlowError(ValueError):
    """A flow that cannot be booked as asked (bad bucket, sign against its source, zero amount)."""


def book_flow(commit: Commit, keys: Keys, agent: str, *, bucket: str, amount_micros: int, source: str,
              now_ms: int, new_id: IdFactory, cause: Envelope | None = None, detail: str = "",
              ref: str | None = None, apply_to: str | None = "available") -> Commit:
    """Add the booking of one external flow to `commit` and return it.

    - `amount_micros`: signed integer micro-USD, + for an inflow, − for an outflow; never 0. Its sign
      must agree with `source` when the source is one of the known ones (`INFLOW_SOURCES`,
      `OUTFLOW_SOURCES`); other sources (lowercase `[a-z_]`) are accepted either way.
    - `bucket`: the bucket whose silo the money entered or left (a deposit to the casino balance
      → `casino`; an escrow paid from the reserve → `reserve`).
    - `apply_to`: `"available"` (default) credits/debits the bucket's available money (an outflow
      may not take it below 0: the whole commit is then refused); `"locked"`, `"in_transit"`,
      `"reserved"` the held field; `None` books the flow only, the caller's effects moving the money.
    - `ref`: the outside fact's id (escrow id, venue ledger entry id, tx hash). With a ref the flow
      is booked at most once per agent: a second booking with the same ref makes the whole commit
      come back `refused` with a reason starting `flowref:` (nothing changed; see `already_booked`).

    Effects added: those of `flow_effects`, a `FlowBooked` event in the journal, and a
    `BalancesChanged` poke to RiskGuard. Raises `FlowError` for a bad request (nothing added).
    """
    event = flow_effects(commit, keys, agent, bucket=bucket, amount_micros=amount_micros, source=source,
                         detail=detail, ref=ref, apply_to=apply_to)
    commit.emit(keys.events(agent), wrap(event, agent=agent, now_ms=now_ms, new_id=new_id, cause=cause))
    commit.emit(keys.agent_commands(agent, "risk"),
                wrap(BalancesChanged(cause=f"flow {source}"), agent=agent, now_ms=now_ms, new_id=new_id, cause=cause))
    return commit


def flow_effects(commit: Commit, keys: Keys, agent: str, *, bucket: str, amount_micros: int, source: str,
                 detail: str = "", ref: str | None = None, apply_to: str | None = "available") -> FlowBooked:
    """The state effects of `book_flow` (ledger change per `apply_to`, the flows hash's `external`
    and `external:<bucket>` counters, the once-per-ref guard), added to `commit`; returns the
    `FlowBooked` event for a caller that journals its events itself (and pokes RiskGuard itself)."""
    if bucket not in BUCKETS:
        raise FlowError(f"unknown bucket {bucket!r} (one of {', '.join(BUCKETS)})")
    if not isinstance(amount_micros, int) or isinstance(amount_micros, bool) or amount_micros == 0:
        raise FlowError(f"a flow is a non-zero integer micro-USD amount, got {amount_micros!r}")
    if source in INFLOW_SOURCES and amount_micros < 0:
        raise FlowError(f"{source} is an inflow: its amount must be positive, got {amount_micros}")
    if source in OUTFLOW_SOURCES and amount_micros > 0:
        raise FlowError(f"{source} is an outflow: its amount must be negative, got {amount_micros}")
    if apply_to not in LEDGER_FIELDS:
        raise FlowError(f"apply_to must be one of {LEDGER_FIELDS}, got {apply_to!r}")
    event = FlowBooked(bucket=bucket, amount_micros=amount_micros, source=source, detail=detail, ref=ref)
    flows = keys.flows(agent)
    if ref is not None:
        commit.incr(flows, f"flowref:{ref}", -1, minimum=-1)  # a second booking of this ref is refused
    if apply_to is not None:
        fld = bucket if apply_to == "available" else f"{bucket}:{apply_to}"
        commit.incr(keys.ledger(agent), fld, amount_micros, minimum=0)
    commit.incr(flows, "external", amount_micros, minimum=-(1 << 62))
    commit.incr(flows, f"external:{bucket}", amount_micros, minimum=-(1 << 62))
    return event


def already_booked(result: CommitResult) -> bool:
    """True when a commit carrying `book_flow(ref=...)` was refused because that ref was booked before."""
    return result.status == "refused" and result.reason.startswith("flowref:")


def external_flows(client, keys: Keys, agent: str) -> dict[str, int]:
    """Cumulative external flows in micro-USD: `{"total": n, "<bucket>": n, ...}` (0 where none)."""
    raw = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in client.hgetall(keys.flows(agent)).items()
           if (k.decode() if isinstance(k, bytes) else k).startswith("external")}
    out = {"total": raw.get("external", 0)}
    out.update({b: raw.get(f"external:{b}", 0) for b in BUCKETS})
    return out
