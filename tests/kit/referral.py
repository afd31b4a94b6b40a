"""Shared pieces of the referral, onboarding and chain-view tests. Their fixtures (a sandbox on a
still clock per test module, `steps`, `clock`) are in tests/actors/conftest.py.

An agent onboarded through `onboard_agent` (`onboard`); and
`deliver`/`redeliver`, which hand an actor a command the way the bus does: XADD to the role's
stream, XREADGROUP as a consumer of the role's group, a `Delivery` with the entry id.
"""

from __future__ import annotations

from actors.onboarding import onboard_agent
from messages.codec import FIELD, encode
from messages.envelope import Envelope, seeded_ids
from messages.money import parse_usd
from runtime.bus import Delivery

CONSUMER = "tester"


def onboard(steps, sandbox, agent: str, clock, capital: str = "1000", seed: int = 1, **kw):
    return onboard_agent(steps, agent, parse_usd(capital), venues=sandbox.urls, now_ms=clock.now_ms(),
                         new_id=seeded_ids(seed, prefix="o"), **kw)


def _group(rclient, stream: str, role: str) -> str:
    group = f"g:{role}"
    try:
        rclient.xgroup_create(stream, group, id="0", mkstream=True)
    except Exception as exc:  # noqa: BLE001 - BUSYGROUP: the group exists
        if "BUSYGROUP" not in str(exc):
            raise
    return group


def deliver(rclient, keys, role: str, env: Envelope) -> Delivery:
    """Publish `env` on the role's stream and take it as the bus would."""
    stream = keys.agent_commands(env.agent, role)
    group = _group(rclient, stream, role)
    rclient.xadd(stream, {FIELD: encode(env)})
    reply = rclient.xreadgroup(group, CONSUMER, {stream: ">"}, count=1)
    entry_id = reply[0][1][0][0]
    return Delivery(stream=stream, group=group, entry_id=entry_id.decode(), envelope=env, deliveries=1)


def redeliver(delivery: Delivery) -> Delivery:
    """The same stream entry handed over again (the consumer died before acknowledging it)."""
    return Delivery(stream=delivery.stream, group=delivery.group, entry_id=delivery.entry_id,
                    envelope=delivery.envelope, deliveries=delivery.deliveries + 1)


def pending(rclient, keys, agent: str, role: str) -> int:
    return rclient.xpending(keys.agent_commands(agent, role), f"g:{role}")["pending"]


def ledger(rclient, keys, agent: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in rclient.hgetall(keys.ledger(agent)).items()}
