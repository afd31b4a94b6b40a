"""The typed messages: commands (inputs), events (the journal) and control broadcasts.

Every message is a frozen msgspec Struct in one tagged union; the tag (field `type`) is the
class name, so an encoded message says what it is and the decoder refuses anything unknown.
Money fields are integer micro-USD (`Micros`); probabilities and fractions are strings or floats
because they are not money. This module holds the casino and risk messages and assembles the
union; each other concern keeps its messages in its own module (`messages/*_msgs.py`), listed
in `_CONCERNS` below.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, Literal, Union

import msgspec

from messages.base import (  # noqa: F401 - re-exported
    BUCKETS,
    AgentId,
    Bucket,
    KellyFraction,
    Message,
    MessageId,
    Micros,
    Probability,
    RiskState,
    SignedMicros,
    validate_agent_id,
)

# ---------------------------------------------------------------- casino games (bet parameters)


class Game(msgspec.Struct, tag=True, tag_field="game", frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of the game parameter unions; the tag is the venue's batch id for the game."""


class CoinFlip(Game, tag="coin_flip", frozen=True):
    """A coin flip on `side`: wins half the time, pays 1.99× gross (`actors.casino_odds`)."""

    side: Literal["heads", "tails"] = "heads"


class Dice(Game, tag="dice", frozen=True):
    """A dice roll that wins when it lands `direction` (over or under) `threshold` (1–99)."""

    direction: Literal["over", "under"] = "over"
    threshold: Annotated[int, msgspec.Meta(ge=1, le=99)] = 50


class Multiplier(Game, tag="multiplier", frozen=True):
    """A crash-style multiplier that wins when it reaches `target` (1.01–1000×)."""

    target: Annotated[float, msgspec.Meta(ge=1.01, le=1000.0)] = 2.0


AnyGame = CoinFlip | Dice | Multiplier


# ---------------------------------------------------------------- commands


class Allocate(Message, frozen=True):
    """Put fresh capital into the four buckets at their target weights (bootstrap, demo)."""

    capital: Micros


class PlaceBet(Message, frozen=True):
    """Ask the casino bucket to size and place one bet.

    `win_prob` is the agent's own estimate of its chance; without it the game's true odds are
    used (which always have a house edge, so Kelly says 0). `fixed_stake` is the explicit opt-in
    to bet a set amount even when Kelly says 0; the bet cap (`max_bet_bp` of the agent's effective
    policy, 2 % by default) still applies.
    """

    game: AnyGame
    win_prob: Probability | None = None
    kelly: KellyFraction = "half"
    fixed_stake: Micros | None = None


class StartSession(Message, frozen=True):
    """Open a casino session with a budget: bets are sized on the session's balance, and losing
    half of the budget stops the session and sends what is left to the reserve."""

    budget: Micros


class SetRisk(Message, frozen=True):
    """Set the risk state (pause, halt, resume). `until_ms` (epoch ms, only for PAUSED) is when the
    pause ends by itself; None means until resumed. RiskGuard refuses an end that is not in the
    future or more than 30 days ahead, and any change that relaxes the state without the authority
    the table in `actors/policy/authority.py` names (resuming always needs an operator key)."""

    state: RiskState
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    until_ms: Annotated[int, msgspec.Meta(ge=1, le=2**53)] | None = None


class BalancesChanged(Message, frozen=True):
    """Sent to RiskGuard in the same atomic step that changed a balance, so it re-checks the breakers.

    It carries no figures: RiskGuard reads the ledger itself, so it always judges the latest state.
    """

    cause: str


# ---------------------------------------------------------------- events (the journal)


class CapitalAllocated(Message, frozen=True):
    """The treasury was opened: `total` micro-USD split into `buckets` (bucket name → micro-USD)."""

    buckets: dict[str, Micros]
    total: Micros


class KellySizing(Message, frozen=True):
    """How a stake was sized: kept in the events so every bet is explained."""

    win_prob: str
    net_odds: str
    full_fraction: str
    applied_fraction: str
    bankroll: Micros
    cap: Micros
    stake: Micros
    capped: bool
    reason: str


class BetSettled(Message, frozen=True):
    """A bet placed and settled: `stake` and gross `payout` in micro-USD, `pnl` their difference
    (signed), `roll` the venue's outcome, `bucket_after` the casino bucket after settling, and the
    Kelly sizing that chose the stake (None for a bet found again after a lost answer)."""

    bet_id: str
    game: str
    stake: Micros
    payout: Micros
    pnl: SignedMicros
    won: bool
    roll: str
    bucket_after: Micros
    sizing: KellySizing | None = None


class BetRefused(Message, frozen=True):
    """A bet that was not placed, and why. `code` is machine-readable, `reason` is for people."""

    code: str
    reason: str
    sizing: KellySizing | None = None
    fence_seq: int | None = None


class SessionStarted(Message, frozen=True):
    """A casino session began with `budget` micro-USD of the casino bucket; `session` is its id."""

    session: str
    budget: Micros


class SessionStopped(Message, frozen=True):
    """A session ended by `breaker` (its session stop): `remaining` micro-USD of its `budget` go to
    the reserve; `reason` quotes the loss against the stop."""

    session: str
    breaker: str
    reason: str
    budget: Micros
    remaining: Micros


class BetRejected(Message, frozen=True):
    """The venue refused a reserved bet (its error `code` and text); the reservation was released."""

    code: str
    reason: str
    stake: Micros


class RiskStateChanged(Message, frozen=True):
    """The agent's risk state moved from `previous` to `state`, by `breaker` (or an operator), with
    the totals the decision read (signed micro-USD: `total`, the `peak`, the `day_start`) and, for
    a pause, `until_ms` (epoch ms; None for a pause lifted only by hand)."""

    state: RiskState
    previous: RiskState
    breaker: str
    reason: str
    total: SignedMicros
    peak: SignedMicros
    day_start: SignedMicros
    until_ms: int | None = None
    old_peak: SignedMicros | None = None
    """On a resume: the peak the drawdown breaker measured from before it was re-armed at `total`."""
    old_day_start: SignedMicros | None = None
    """On a resume: the day-start the daily-loss breaker measured from before it was re-armed."""


class RetrySpend(Message, frozen=True):
    """An operator retries a spend that was dead-lettered while its funds stayed reserved (the venue
    could not say whether it happened). The owning actor runs the original command again: it finds
    its reservation, looks the spend up at the venue, and settles or places it — once."""

    message_id: MessageId


class ResumeBucket(Message, frozen=True):
    """An operator lifts a bucket's halt (e.g. trading after its drawdown breaker)."""

    bucket: Bucket
    reason: str


class BucketHalted(Message, frozen=True):
    """A bucket-level breaker fired: spending from `bucket` stops until an operator resumes it."""

    bucket: Bucket
    breaker: str
    reason: str


class BucketResumed(Message, frozen=True):
    """An operator lifted `bucket`'s halt (answer to `ResumeBucket`)."""

    bucket: Bucket
    reason: str


class BreakerFired(Message, frozen=True):
    """A breaker whose action is not a state change (an emergency rebalance), and what was asked."""

    breaker: str
    action: str
    reason: str


class CommandRefused(Message, frozen=True):
    """A command the treasury did not apply, and why: refused by the gate (signature, scope, nonce),
    undecodable or invalid, or refused by its handler (unknown agent, invalid for the state).
    Written by the bus when it dead-letters the entry, or by an actor; ends every command."""

    command: str
    reason: str


# ---------------------------------------------------------------- control broadcast


class RiskControl(Message, frozen=True):
    """ACTIVE / PAUSED / HALTED, broadcast to every spending actor of the shard."""

    state: RiskState
    reason: str
    until_ms: int | None = None


CORE_MESSAGES: tuple[type, ...] = (
    Allocate, PlaceBet, StartSession, SetRisk, BalancesChanged, ResumeBucket, RetrySpend,
    SessionStarted, SessionStopped,
    CapitalAllocated, BetSettled, BetRefused, BetRejected, RiskStateChanged, CommandRefused,
    BucketHalted, BucketResumed, BreakerFired,
    RiskControl,
)

_CONCERNS = ("messages.treasury_msgs", "messages.trading_msgs", "messages.escrow_msgs", "messages.referral_msgs",
             "messages.silo_msgs", "messages.flow_msgs")
"""Modules that each export `MESSAGES: tuple[type, ...]`; a missing one is skipped."""


def _concern_messages() -> tuple[type, ...]:
    found: list[type] = []
    for name in _CONCERNS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        found.extend(module.MESSAGES)
    return tuple(found)


ALL_MESSAGES: tuple[type, ...] = CORE_MESSAGES + _concern_messages()


# ---------------------------------------------------------------- names of old journals


class CommandRejected(CommandRefused, frozen=True):
    """The name `CommandRefused` had before the refusal vocabulary was settled. Old journals and
    replay records still hold it; it decodes, and `Envelope` turns it into a `CommandRefused`."""


class BetFailed(BetRejected, frozen=True):
    """The name `BetRejected` had before the refusal vocabulary was settled. Old journals and
    replay records still hold it; it decodes, and `Envelope` turns it into a `BetRejected`."""


LEGACY_NAMES: dict[type, type] = {CommandRejected: CommandRefused, BetFailed: BetRejected}
"""Legacy message class -> the class it was renamed to (same fields). Never written any more:
only so that decoding an old name still works. Not in `ALL_MESSAGES`."""


def current_message(body: Any) -> Any:
    """`body` under its current name: a legacy message (`LEGACY_NAMES`) becomes the renamed class
    with the same fields; any other body is returned as it is."""
    new = LEGACY_NAMES.get(type(body))
    if new is None:
        return body
    return new(**{f: getattr(body, f) for f in body.__struct_fields__})


DECODABLE_MESSAGES: tuple[type, ...] = ALL_MESSAGES + tuple(LEGACY_NAMES)
"""What a stream entry's body may decode as: every message, and the legacy names."""
AnyMessage = Union[DECODABLE_MESSAGES]  # type: ignore[valid-type]  # noqa: UP007 - built from a tuple
