"""`SandboxContext`: what every sandbox service is built with (seed, shared store, clock, faults)."""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass, field
from typing import Any

from sandbox.clock import Clock
from sandbox.faults import FaultConfig, FaultInjector
from sandbox.store import Store


@dataclass
class SandboxContext:
    """What every service gets: the seed, the shared store, the clock and the fault settings.

    `urls` is filled in once the port is known (service name → base URL), so a service could call
    another over HTTP; the ones here share the store instead, as the real escrow and faucet share
    the casino's database.
    """

    seed: int
    store: Store
    clock: Clock
    faults: FaultConfig
    urls: dict[str, str] = field(default_factory=dict)
    injector: FaultInjector | None = field(default=None, repr=False)
    memory: dict[str, Any] = field(default_factory=dict, repr=False)
    """In-memory state a restart loses (rate-limit windows), as the real services keep it."""
    chain_up: bool = True
    """Whether simulated on-chain sends (casino withdrawals) succeed; when False they fail as the
    real casino's do without a chain: 500 `withdrawal_failed`, the balance refunded."""
    _rngs: dict[str, random.Random] = field(default_factory=dict, init=False, repr=False)

    def rng_for(self, name: str) -> random.Random:
        """A random stream of its own per name, derived from the seed (the same object each call)."""
        if name not in self._rngs:
            self._rngs[name] = random.Random(f"{self.seed}:{name}")
        return self._rngs[name]

    def derive_hex(self, label: str, nbytes: int) -> str:
        """`nbytes` of hex that depend only on the seed and `label`: reproducible secrets and ids."""
        key = f"purple-flea-sandbox:{self.seed}".encode()
        out = b""
        block = 0
        while len(out) < nbytes:
            out += hmac.new(key, f"{label}#{block}".encode(), hashlib.sha256).digest()
            block += 1
        return out[:nbytes].hex()

    def new_id(self, kind: str, nbytes: int) -> str:
        """Fresh hex for the next `kind` (agent, key, escrow…); counters persist, so no id repeats
        after a restart on the same state file."""
        return self.derive_hex(f"{kind}:{self.store.next_seq(kind)}", nbytes)

    def set_faults(self, config: FaultConfig) -> None:
        self.faults = config
        if self.injector is not None:
            self.injector.configure(config)
