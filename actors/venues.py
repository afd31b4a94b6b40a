"""Per-agent venue clients: built from the agent's credentials hash, one per agent and process.

Every actor that talks to a venue for many agents holds one `AgentClients` per service. The
credentials hash (`<prefix>:{S}:creds:<agent>`, written by onboarding) keeps one API key per
service under `<service>_key` (`casino_key`, `trading_key`, `wallet_key`, ...). A client is built
the first time an agent needs it and then reused: a venue client serialises its own spends, so
its look-ups after a lost answer can only match its own orders.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

import redis

from runtime.bus import HandlerRejected
from runtime.keys import Keys

T = TypeVar("T")

TIMEOUT_S = 5.0
"""The HTTP timeout of every client an actor builds, in seconds."""


def read_credentials(client: redis.Redis, keys: Keys, agent: str) -> dict[str, str]:
    """The agent's credentials hash, decoded: `{"casino_key": "sk_live_…", "casino_agent_id": …}`;
    empty when the agent has none."""
    raw: dict[bytes | str, bytes | str] = client.hgetall(keys.credentials(agent))  # type: ignore[assignment]
    return {_text(k): _text(v) for k, v in raw.items()}


class AgentClients(Generic[T]):
    """`clients(agent)`: the agent's client for one service, built once from `<service>_key`.

    `make(api_key)` builds the client (or a pair of clients sharing the key, as escrow does).
    Calling raises `HandlerRejected` (the command is dead-lettered at once, nothing retried) when
    the agent has no such key; `get(agent)` answers None instead, and does not remember the miss,
    so a key stored later is picked up. `close()` closes every client built so far.
    """

    def __init__(self, client: redis.Redis, keys: Keys, service: str, make: Callable[[str], T], *,
                 missing: str = ""):
        self.client = client
        self.keys = keys
        self.service = service
        self.make = make
        self.missing = missing
        self._cache: dict[str, T] = {}

    def get(self, agent: str) -> T | None:
        if agent not in self._cache:
            api_key = self.client.hget(self.keys.credentials(agent), f"{self.service}_key")
            if api_key is None:
                return None
            self._cache[agent] = self.make(_text(api_key))
        return self._cache[agent]

    def __call__(self, agent: str) -> T:
        built = self.get(agent)
        if built is None:
            detail = f": {self.missing}" if self.missing else ""
            raise HandlerRejected(f"no {self.service} credentials for agent {agent}{detail}")
        return built

    def close(self) -> None:
        for built in self._cache.values():
            close = getattr(built, "close", None)
            if close is not None:
                close()
        self._cache.clear()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
