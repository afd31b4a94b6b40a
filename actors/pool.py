"""Several actors of one role, each serving its own share of the agents, side by side.

A role's actor keeps no agent state of its own (everything lives in Redis), so the agents of a
worker's shards can be split between a few instances: an agent is always served by the same one
(`route`), so its messages are handled one after the other, in order, while another agent's bet
waits on its venue or on Redis. The bus hands a wave of entries of different agents over with
`submit_wave` (`runtime.bus.StreamBus`, `submit_wave=`: each actor gets its share of the wave as
one `Wave`, whose bets share their round trips) or entry by entry with `submit`, and waits for
them together.

Splitting a wave pays only while its handlers wait on their venue: the actors share one
interpreter lock, so a wave of work that is all Python and Redis runs no faster on four threads,
and each share costs its own round trips and thread hand-overs. The pool watches its actors'
venue calls (`VenuePace`): while every actor's recent calls take under `FAST_VENUE_S`, a wave is
shared by `FAST_VENUE_SHARES` actors only (two: one computes while Redis runs the other's round
trip); once any is slower, waves are split between all of them again. Either way the bus hands over the
next wave only when this one is done, so an agent's entries stay in order whichever actor takes
them.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, Sequence

import pykka

from actors.base import VenuePace, Wave
from runtime.bus import Delivery
from runtime.control import ControlChanged, ControlView

ASK_TIMEOUT_S = 120

FAST_VENUE_S = 0.0005
"""Venue calls faster than this (a mean over each actor's latest ones) are not worth a split wave:
an in-process or cached venue answers in microseconds, a venue over HTTP in milliseconds."""

FAST_VENUE_SHARES = 2
"""How many actors share a wave while the venue is fast: two, so that one computes while Redis
runs the other's round trip (the machine's second core), without the hand-overs of four."""


class WavePart:
    """The future of one delivery of a `Wave`: `get` returns once the wave is handled, or raises
    what this delivery's handling raised (or what the whole wave raised)."""

    def __init__(self, future: pykka.Future, position: int):
        self.future, self.position = future, position

    def get(self, timeout: float | None = None) -> None:
        error = self.future.get(timeout=timeout)[self.position]
        if error is not None:
            raise error


class ActorPool:
    """`refs`: started actors of one role (at least one). Agent `a` goes to `refs[crc32(a) % n]`."""

    def __init__(self, refs: Sequence[pykka.ActorRef]):
        if not refs:
            raise ValueError("an actor pool needs at least one actor")
        self.refs = list(refs)
        self.controls: list[ControlView] = [ref.proxy().controls.get() for ref in self.refs]
        self.paces: list[VenuePace] = [ref.proxy().venue_pace.get() for ref in self.refs]

    @classmethod
    def start(cls, build: Callable[[], pykka.ActorRef], size: int) -> ActorPool:
        """`size` actors made by `build()`."""
        return cls([build() for _ in range(max(size, 1))])

    def route(self, agent: str) -> pykka.ActorRef:
        """The actor that serves `agent` (always the same one)."""
        return self.refs[zlib.crc32(agent.encode()) % len(self.refs)]

    def ask(self, delivery: Delivery, timeout: float = ASK_TIMEOUT_S) -> Any:
        """Handle `delivery` on its agent's actor and wait (raises what the handler raised)."""
        return self.route(delivery.envelope.agent).ask(delivery, timeout=timeout)

    def submit(self, delivery: Delivery) -> pykka.Future:
        """Hand `delivery` to its agent's actor without waiting (`runtime.bus.Submit`)."""
        return self.route(delivery.envelope.agent).ask(delivery, block=False)

    def submit_wave(self, deliveries: list[Delivery]) -> list[Any]:
        """Hand deliveries of different agents over together (`runtime.bus.SubmitWave`): each actor
        gets its share as one `Wave` (handled with shared round trips, `TreasuryActor.handle_wave`),
        between `FAST_VENUE_SHARES` of them while the venue is fast (`venue_is_fast`); one future per delivery,
        in order, whose `get` raises what that delivery's handling raised."""
        n = len(self.refs)
        shares: dict[int, list[int]] = {}
        if self.venue_is_fast():
            n = min(n, FAST_VENUE_SHARES)
        for i, delivery in enumerate(deliveries):
            shares.setdefault(zlib.crc32(delivery.envelope.agent.encode()) % n, []).append(i)
        out: list[Any] = [None] * len(deliveries)
        for actor, indices in shares.items():
            future = self.refs[actor].ask(Wave([deliveries[i] for i in indices]), block=False)
            for position, i in enumerate(indices):
                out[i] = WavePart(future, position)
        return out

    def venue_is_fast(self) -> bool:
        """True when every actor has called its venue and its recent calls took under
        `FAST_VENUE_S` on average: a wave is then shared by `FAST_VENUE_SHARES` actors (see the module)."""
        return len(self.refs) > 1 and all(p.calls and p.seconds < FAST_VENUE_S for p in self.paces)

    def feed_controls_directly(self) -> None:
        """The control listener writes every actor's view itself (`ControlView.fed_directly`)."""
        for view in self.controls:
            view.fed_directly = True

    def control(self, agent: str, control: Any) -> None:
        """A broadcast: into every actor's view at once, then to the agent's actor for its reaction."""
        for view in self.controls:
            view.update(agent, control)
        self.route(agent).tell(ControlChanged(agent, control))

    def stop(self, timeout: float | None = None) -> None:
        for ref in self.refs:
            ref.stop(timeout=timeout)
