"""Every role's real actor and bus in this process, driven one step at a time: deterministic runs.

Worker processes race each other; a record must not. Here each role's actor (built exactly as a
worker builds it) is fed by its own `StreamBus`, and `drain()` polls the roles in a fixed order,
one batch at a time, until no stream has anything left. The same inputs therefore give the same
events, ids and all (each role draws its ids from its own seeded sequence). Used by
`treasury demo --record` and `treasury replay`.

The control fan-out (pause/halt broadcasts to spending loops) is not run: the fence, which every
spend passes, is the authority on the risk state either way.
"""

from __future__ import annotations

from messages.envelope import seeded_ids
from runtime.atomic import AtomicSteps
from runtime.bus import StreamBus, command_client
from runtime.clock import Clock
from runtime.command_gate import CommandGate
from runtime.keyring import Keyring
from runtime.keys import Keys
from runtime.nonces import RedisNonceStore
from supervisor.roles import ROLE_MODULES, build_actor

ROLE_ORDER = list(ROLE_MODULES)


class InlineRoles:
    """The roles `roles` of a run, in-process. `drain()` after each input; `stop()` at the end."""

    def __init__(self, url: str, keys: Keys, roles: list[str], venues: dict[str, str], clock: Clock,
                 keyring: Keyring, seed: int, *, max_rounds: int = 100_000) -> None:
        unknown = sorted(set(roles) - set(ROLE_MODULES))
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(ROLE_MODULES)}")
        self.roles = [r for r in ROLE_ORDER if r in roles]
        self.steps = AtomicSteps(command_client(url), keys)
        self.max_rounds = max_rounds
        self.actors = {}
        self.buses: dict[str, StreamBus] = {}
        for n, role in enumerate(self.roles):
            actor = build_actor(role, self.steps, clock, seeded_ids(seed * 1000 + n, prefix=f"{role[:2]}"), venues)
            self.actors[role] = actor
            gate = CommandGate(keyring, RedisNonceStore(self.steps.client, keys.prefix, shards=keys.shards), clock)
            bus = StreamBus(url, keys, role, range(keys.shards), self._handler(actor), consumer=f"{role}-inline",
                            clock=clock, gate=gate, new_id=seeded_ids(seed * 1000 + 500 + n, prefix="dl"))
            bus.ensure_groups()
            self.buses[role] = bus

    @staticmethod
    def _handler(actor):
        def handle(delivery) -> None:
            actor.ask(delivery, timeout=120)
        return handle

    def drain(self) -> int:
        """Handle everything every role has been sent, and everything that causes; returns the count.

        An entry whose handler failed (a venue that did not answer, a spend parked with its outcome
        unknown) is tried once more at the start of the next `drain()`, as a worker would try it
        again after its backoff: the retries a run makes depend on its inputs, never on timing."""
        handled = sum(self.buses[role].drain_own_pending() for role in self.roles)
        for _ in range(self.max_rounds):
            round_handled = sum(self.buses[role].poll_once(wait=False) for role in self.roles)
            handled += round_handled
            if round_handled == 0:
                return handled
        raise RuntimeError(f"the roles did not go quiet within {self.max_rounds} rounds")

    def stop(self) -> None:
        for actor in self.actors.values():
            actor.stop(timeout=30)
        for bus in self.buses.values():
            bus.close()
        self.steps.client.close()

