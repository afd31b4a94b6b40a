"""A minimal handler for exercising the bus on its own: each message increments a counter once."""

from __future__ import annotations

from runtime.atomic import AtomicSteps
from runtime.bus import Delivery


class CountingHandler:
    """Applies each message as `HINCRBY counts <body type> 1` through the commit script."""

    def __init__(self, steps: AtomicSteps, fail_on: set[str] | None = None):
        self.steps = steps
        self.fail_on = fail_on or set()
        self.calls = 0

    def counts_key(self, agent: str) -> str:
        return self.steps.keys.ledger(agent)

    def __call__(self, delivery: Delivery) -> None:
        self.calls += 1
        env = delivery.envelope
        if env.id in self.fail_on:
            raise RuntimeError(f"handler failure for {env.id}")
        commit = self.steps.new_commit(env.agent)
        commit.incr(self.counts_key(env.agent), "applied", 1)
        commit.incr(self.counts_key(env.agent), f"id:{env.id}", 1)
        commit.ack(delivery.stream, delivery.group, delivery.entry_id)
        self.steps.commit(commit, env.id, 0)


def drain_risk(w, agent, guard):
    """Hand every queued RiskGuard message of `agent` to the actor, as the bus would; return the
    agent's risk view after. `w` has `client` and `keys` (a test world)."""
    from actors.ledger import read_risk
    from messages.codec import FIELD, decode
    from runtime.bus import Delivery

    stream = w.keys.agent_commands(agent, "risk")
    for entry_id, fields in w.client.xrange(stream):
        w.client.xdel(stream, entry_id)
        guard.ask(Delivery(stream, "g:risk", entry_id.decode(), decode(fields[FIELD]), 1))
    return read_risk(w.client, w.keys, agent)
