"""The one catalogue of message facts: for every command type, who serves it, who may sign it, and
which journal events end it.

Everything that needs one of these facts reads it here — the CLI builders and `treasury cmd --wait`
(`supervisor/commands.py`), the scheduler's ticks (`supervisor/scheduler.py`), the command gate and
the signature scope check (`runtime/command_gate.py`, `runtime/signing.py`), the status views — so
no module matches class names as strings or guesses an outcome from a suffix.

Facts per command (`CommandFacts`):

* `roles` — the role(s) whose command stream serves it; the first is the default. A transfer leg
  goes to the bucket it names (`route_field`), a `RetrySpend` to the role the operator names.
* `scope` — who may publish it: `"internal"` (a poke between actors that carries no authority: it
  may travel unsigned; a signed one needs at least an agent key), `"agent"` or `"operator"` (a
  signature by a key of at least that scope). A few commands' scope depends on the body
  (`scope_of`): a `SetRisk` to ACTIVE is a resume and needs an operator; a `Rebalance` is an
  internal poke only for the triggers the actors raise themselves — `trigger="operator"` stands for
  an operator and needs an operator's signature, `trigger="manual"` an agent's.
* outcomes — the terminal events in the agent's journal, by kind: `done`, `refused` (our own
  denial, named `...Refused`), `rejected` (the venue's refusal, named `...Rejected`) and `failed`
  (started but could not finish). An event ends a command when its causation is the command's
  id; the `later` ones end it when they carry the command's correlation id, because a later step
  of the same story causes them (a rebalance completes on its last leg's answer, not on the
  request). `CommandRefused` (the gate, the decoder or the handler refused the entry) ends every
  command.

Vocabulary rule: our own denials are `...Refused`, the venue's refusals are `...Rejected`, a saga
or leg that started and could not finish is `...Failed`/`...Compensated`, "nothing to do" is
`...Skipped` (a done outcome).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from messages.base import Message
from messages.envelope import Envelope
from messages.escrow_msgs import (
    CreateEscrow,
    DisputeEscrow,
    EscrowCreated,
    EscrowDisputed,
    EscrowRefused,
    EscrowRejected,
    EscrowReleased,
    EscrowSynced,
    ReleaseEscrow,
    SyncEscrows,
)
from messages.referral_msgs import (
    MoveReferralIncome,
    ReferralPayoutConfirmed,
    ReferralPayoutLanded,
    ReferralReinvested,
    ReferralReinvestSkipped,
    ReferralSweepSkipped,
    ReferralSwept,
    ReinvestReferrals,
    SweepReferrals,
)
from messages.schema import (
    Allocate,
    BalancesChanged,
    BetRefused,
    BetRejected,
    BetSettled,
    BucketResumed,
    CapitalAllocated,
    CommandRefused,
    PlaceBet,
    ResumeBucket,
    RetrySpend,
    RiskStateChanged,
    SessionStarted,
    SetRisk,
    StartSession,
)
from messages.silo_msgs import (
    AdjustLedger,
    AdjustRefused,
    BookFee,
    BookIncome,
    ExecuteSiloTransfers,
    LandHeld,
    LedgerAdjusted,
    MoveFunds,
    PlaceFunds,
    Reconcile,
    ReconciliationChecked,
    ReturnHeld,
    SiloTick,
    SiloTransferFailed,
    SiloTransferHeld,
    SiloTransferSent,
)
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
)
from messages.treasury_msgs import (
    CompensateLeg,
    CreditLeg,
    DebitLeg,
    FundsDebited,
    FundsMoved,
    FundsReturned,
    LandTransit,
    LegFailed,
    PolicyChanged,
    PolicyRefused,
    Rebalance,
    RebalanceCompensated,
    RebalanceCompleted,
    RebalanceFailed,
    RebalanceSkipped,
    RebalanceTick,
    SetPolicy,
    TransitLanded,
)

Scope = Literal["internal", "agent", "operator"]
OutcomeKind = Literal["done", "refused", "rejected", "failed"]

ROLES: tuple[str, ...] = ("casino", "risk", "reserve", "trading", "referral", "escrow", "rebalancer", "silo")
"""Every role a worker can serve (one command stream per role and shard)."""

BUCKET_ROLE: dict[str, str] = {"reserve": "reserve", "trading": "trading", "casino": "casino", "referral": "referral"}
"""The role that is the single writer of each bucket (where a transfer leg for that bucket goes)."""

SPEND_ROLES: tuple[str, ...] = ("casino", "trading", "escrow")
"""Roles whose commands reserve funds through the fence (the roles a `RetrySpend` may name)."""

ACTOR_TRIGGERS: frozenset[str] = frozenset({
    "drift", "schedule", "big_win", "before_escrow", "reserve_floor", "casino_session", "trading_drawdown",
})
"""`Rebalance` triggers the actors raise themselves: each is re-checked against the ledger by the
Rebalancer, so an unsigned one carries no authority. Any other trigger needs a signature."""

REBALANCE_SIGNED_TRIGGERS: dict[str, Scope] = {"operator": "operator", "manual": "agent"}
"""`Rebalance` triggers that stand for a person or a program, and the key scope they need."""


@dataclass(frozen=True)
class CommandFacts:
    """What is known about one command type. See the module docstring for each field's meaning."""

    command: type[Message]
    roles: tuple[str, ...]
    scope: Scope
    done: tuple[type[Message], ...] = ()
    refused: tuple[type[Message], ...] = ()
    rejected: tuple[type[Message], ...] = ()
    failed: tuple[type[Message], ...] = ()
    later: tuple[type[Message], ...] = ()
    """Of the outcomes above, those matched by correlation id (caused by a later step)."""
    scope_of: Callable[[Message], Scope] | None = None
    """The scope of one body, when it depends on the body; `scope` is the weakest it can be."""
    route_field: str | None = None
    """The body field naming the bucket whose role serves it (transfer legs)."""
    follows: str | None = None
    """The body field naming another message whose outcome ends this command (`RetrySpend`)."""
    poke: Callable[[], Message] | None = None
    """How the scheduler builds this poke's body for a tick (internal pokes only)."""
    outcome_kinds: dict[type[Message], OutcomeKind] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kinds: dict[type[Message], OutcomeKind] = {CommandRefused: "refused"}
        for kind, types in (("done", self.done), ("refused", self.refused), ("rejected", self.rejected),
                            ("failed", self.failed)):
            for t in types:
                kinds[t] = kind  # type: ignore[assignment]
        object.__setattr__(self, "outcome_kinds", kinds)

    @property
    def role(self) -> str:
        """The default role serving this command."""
        if not self.roles:
            raise LookupError(f"no role serves {self.command.__name__}")
        return self.roles[0]

    def required_scope(self, body: Message) -> Scope:
        return self.scope_of(body) if self.scope_of is not None else self.scope

    def role_for(self, body: Message) -> str:
        """The role whose stream this body goes to."""
        if self.route_field is not None:
            return BUCKET_ROLE[getattr(body, self.route_field)]
        return self.role


def _set_risk_scope(body: Message) -> Scope:
    # A resume always needs an operator: the verifier cannot know the state it will meet (a halt may
    # commit between signing and applying). Pausing or halting makes things safer: an agent may.
    return "operator" if isinstance(body, SetRisk) and body.state == "ACTIVE" else "agent"


def _rebalance_scope(body: Message) -> Scope:
    trigger = body.trigger if isinstance(body, Rebalance) else ""
    if trigger in ACTOR_TRIGGERS:
        return "internal"
    return REBALANCE_SIGNED_TRIGGERS.get(trigger, "operator")


_LEG_ANSWER = dict(roles=("rebalancer",), scope="internal")

_FACTS: tuple[CommandFacts, ...] = (
    # casino
    CommandFacts(PlaceBet, ("casino",), "agent", done=(BetSettled,), refused=(BetRefused,), rejected=(BetRejected,)),
    CommandFacts(StartSession, ("casino",), "agent", done=(SessionStarted,)),
    # risk
    CommandFacts(SetRisk, ("risk",), "agent", done=(RiskStateChanged,), scope_of=_set_risk_scope),
    CommandFacts(ResumeBucket, ("risk",), "operator", done=(BucketResumed,)),
    CommandFacts(BalancesChanged, ("risk",), "internal", poke=lambda: BalancesChanged(cause="scheduled tick")),
    # any spending role
    CommandFacts(RetrySpend, SPEND_ROLES, "operator", follows="message_id",
                 done=(BetSettled, PositionOpened, EscrowCreated),
                 refused=(BetRefused, OrderRefused, EscrowRefused),
                 rejected=(BetRejected, OrderRejected, EscrowRejected)),
    CommandFacts(Allocate, (), "agent", done=(CapitalAllocated,)),
    # escrow
    CommandFacts(CreateEscrow, ("escrow",), "agent", done=(EscrowCreated,), refused=(EscrowRefused,),
                 rejected=(EscrowRejected,)),
    CommandFacts(ReleaseEscrow, ("escrow",), "agent", done=(EscrowReleased,), refused=(EscrowRefused,),
                 rejected=(EscrowRejected,)),
    CommandFacts(DisputeEscrow, ("escrow",), "agent", done=(EscrowDisputed,), refused=(EscrowRefused,),
                 rejected=(EscrowRejected,)),
    CommandFacts(SyncEscrows, ("escrow",), "internal", done=(EscrowSynced,), poke=SyncEscrows),
    # trading
    CommandFacts(OpenPosition, ("trading",), "agent", done=(PositionOpened,), refused=(OrderRefused,),
                 rejected=(OrderRejected,)),
    CommandFacts(ClosePosition, ("trading",), "agent", done=(PositionClosed,), refused=(OrderRefused,),
                 rejected=(OrderRejected,)),
    # Honoured unsigned only while the trading bucket is halted or a rebalance waits for it (the
    # trading actor checks); from anyone else it must be signed.
    CommandFacts(CloseAllPositions, ("trading",), "internal", done=(PositionsClosedAll,)),
    CommandFacts(CheckExits, ("trading",), "internal", poke=CheckExits),
    # rebalancing
    CommandFacts(Rebalance, ("rebalancer",), "internal", scope_of=_rebalance_scope,
                 done=(RebalanceSkipped, RebalanceCompleted), failed=(RebalanceFailed, RebalanceCompensated),
                 later=(RebalanceCompleted, RebalanceFailed, RebalanceCompensated)),
    CommandFacts(RebalanceTick, ("rebalancer",), "internal", poke=RebalanceTick),
    CommandFacts(SetPolicy, ("rebalancer",), "operator", done=(PolicyChanged,), refused=(PolicyRefused,)),
    CommandFacts(DebitLeg, tuple(BUCKET_ROLE.values()), "internal", route_field="source"),
    CommandFacts(CompensateLeg, tuple(BUCKET_ROLE.values()), "internal", route_field="source"),
    CommandFacts(CreditLeg, tuple(BUCKET_ROLE.values()), "internal", route_field="dest"),
    # A deposit arriving is a claim about the outside world: it comes signed from the deposit watcher.
    CommandFacts(LandTransit, tuple(BUCKET_ROLE.values()), "operator", route_field="bucket"),
    CommandFacts(FundsDebited, **_LEG_ANSWER),  # type: ignore[arg-type]
    CommandFacts(FundsMoved, **_LEG_ANSWER),  # type: ignore[arg-type]
    CommandFacts(FundsReturned, **_LEG_ANSWER),  # type: ignore[arg-type]
    CommandFacts(LegFailed, **_LEG_ANSWER),  # type: ignore[arg-type]
    CommandFacts(TransitLanded, **_LEG_ANSWER),  # type: ignore[arg-type]
    CommandFacts(PositionsClosedAll, **_LEG_ANSWER),  # type: ignore[arg-type]
    CommandFacts(MoveReferralIncome, ("rebalancer",), "internal"),
    # referral income
    CommandFacts(SweepReferrals, ("referral",), "internal", done=(ReferralSwept, ReferralSweepSkipped),
                 poke=SweepReferrals),
    CommandFacts(ReinvestReferrals, ("referral",), "internal", done=(ReferralReinvested, ReferralReinvestSkipped),
                 poke=ReinvestReferrals),
    CommandFacts(ReferralPayoutLanded, ("referral",), "operator", done=(ReferralPayoutConfirmed,)),
    # silos (actors/silo/): operator moves and adjustments, the silo role's pokes, its legs
    CommandFacts(MoveFunds, ("rebalancer",), "operator",
                 done=(RebalanceSkipped, RebalanceCompleted), failed=(RebalanceFailed, RebalanceCompensated),
                 later=(RebalanceCompleted, RebalanceFailed, RebalanceCompensated)),
    CommandFacts(PlaceFunds, ("silo",), "operator", done=(SiloTransferSent, SiloTransferHeld),
                 failed=(SiloTransferFailed,)),
    CommandFacts(AdjustLedger, tuple(BUCKET_ROLE.values()), "operator", route_field="bucket",
                 done=(LedgerAdjusted,), refused=(AdjustRefused,)),
    CommandFacts(Reconcile, ("silo",), "internal", done=(ReconciliationChecked,)),
    CommandFacts(SiloTick, ("silo",), "internal", poke=SiloTick),
    CommandFacts(ExecuteSiloTransfers, ("silo",), "internal"),
    # each honoured only up to a one-shot token the silo actor recorded (actors/silo/legs.py)
    CommandFacts(LandHeld, tuple(BUCKET_ROLE.values()), "internal", route_field="bucket"),
    CommandFacts(ReturnHeld, tuple(BUCKET_ROLE.values()), "internal", route_field="source"),
    CommandFacts(BookFee, tuple(BUCKET_ROLE.values()), "internal", route_field="bucket"),
    CommandFacts(BookIncome, tuple(BUCKET_ROLE.values()), "internal", route_field="bucket"),
)

CATALOGUE: dict[type[Message], CommandFacts] = {f.command: f for f in _FACTS}
"""Every type that may arrive on a command stream, with its facts. Anything else (journal events,
control broadcasts) is never a command: signed, it needs an operator key; unsigned, it is refused."""

OUTCOME_KIND: dict[type[Message], OutcomeKind] = {
    t: kind for f in _FACTS for t, kind in f.outcome_kinds.items()
}
"""Every terminal event type and its kind, for views that colour a journal."""

OUTCOME_KIND_BY_TAG: dict[str, OutcomeKind] = {t.__name__: kind for t, kind in OUTCOME_KIND.items()}
"""`OUTCOME_KIND` by type tag, for views that read journals without the typed schema."""

REFUSALS: frozenset[type[Message]] = frozenset(t for t, k in OUTCOME_KIND.items() if k != "done")
"""Terminal events that mean a command did not do what it asked (refused, rejected or failed)."""


def facts_for(command: type[Message] | Message) -> CommandFacts:
    """The facts of a command type (or of a body's type); `KeyError` for a type that is no command."""
    cls = command if isinstance(command, type) else type(command)
    return CATALOGUE[cls]


def role_of(command: type[Message] | Message) -> str:
    """The role whose command stream serves this command type (or body: a leg goes to the role of
    the bucket it names). `KeyError` for a type that is no command, `LookupError` if none serves it."""
    facts = facts_for(command)
    return facts.role_for(command) if isinstance(command, Message) else facts.role


def required_scope(body: Message) -> Scope:
    """Who may publish this body: `internal` (unsigned allowed), `agent` or `operator`.

    A type that is not a command (an event, a broadcast) is `operator`: it is never published from
    outside, so only the strongest key could.
    """
    facts = CATALOGUE.get(type(body))
    return facts.required_scope(body) if facts is not None else "operator"


@dataclass(frozen=True)
class Outcome:
    """A terminal event of one command: its kind and the event's envelope."""

    kind: OutcomeKind
    event: Envelope

    @property
    def done(self) -> bool:
        return self.kind == "done"


def outcome_of(facts: CommandFacts, command_id: str, event: Envelope) -> Outcome | None:
    """The outcome `event` (an `Envelope` from the journal) gives the command `command_id`, if any.

    Direct outcomes must be caused by the command; `facts.later` ones carry its correlation id.
    For a command that `follows` another message, pass that message's id as `command_id` for the
    direct outcomes; a `CommandRefused` of the command itself is checked by the caller.
    """
    kind = facts.outcome_kinds.get(type(event.body))
    if kind is None:
        return None
    if type(event.body) in facts.later:
        return Outcome(kind, event) if event.correlation == command_id else None
    return Outcome(kind, event) if event.causation == command_id else None
