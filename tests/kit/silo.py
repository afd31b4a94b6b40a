"""Harness for silo tests: the rebalancing harness (real Redis, every bucket role pumped in a
fixed order) plus the `silo` role's SiloExecutor against an in-process sandbox that shares the
harness's ManualClock, so a deposit's 60 s poll delay is crossed by advancing the clock.
(No tests here.)"""

from __future__ import annotations

from types import SimpleNamespace

from actors.onboarding import onboard_agent
from actors.silo.actor import SiloExecutor
from actors.silo.legs import handle_silo_leg
from actors.silo.records import list_transfers
from messages.envelope import seeded_ids
from sandbox import start_sandbox
from supervisor.paper import fund_paper_silos
from tests.kit.rebalancer import ROLES, Harness, usd
from venue.client import SandboxAdmin

SILO_ROLES = (*ROLES, "silo")


def _with_silo_legs(handler, steps, clock, role: str):
    """A stand-in bucket's handler that applies the silo legs first, as `TreasuryActor.handle` does."""
    owner = SimpleNamespace(steps=steps, clock=clock, new_id=seeded_ids(41, prefix=role[:2]))

    def handle(delivery):
        if not handle_silo_leg(owner, delivery):
            handler(delivery)
    return handle


class SiloHarness(Harness):
    def __init__(self, redis_url, keys, *, clients=None, deadline_ms: int = 30 * 60_000, seed: int = 5, **kw):
        super().__init__(redis_url, keys, hold_physical=True, **kw)
        self.sandbox = start_sandbox(seed=seed, clock=self.clock)
        self.admin = SandboxAdmin(self.sandbox.urls["casino"])
        self.silo = SiloExecutor.start(self.steps, self.clock, seeded_ids(31, prefix="s"), self.sandbox.urls,
                                       clients=clients, deadline_ms=deadline_ms)
        self.buses["silo"] = self._bus("silo", lambda d: self.silo.ask(d))
        for role in ("casino", "referral", "trading"):  # the stand-in buckets also take the silo legs
            self.buses[role].handler = _with_silo_legs(self.buses[role].handler, self.steps, self.clock, role)

    def onboard(self, **buckets: str) -> dict[str, int]:
        parts = {name: usd(amount) for name, amount in buckets.items()}
        onboard_agent(self.steps, self.agent, sum(parts.values()), venues=self.sandbox.urls,
                      now_ms=self.clock.now_ms(), new_id=self.ids, buckets=parts)
        fund_paper_silos(self.steps, self.agent, self.sandbox.urls)
        return parts

    def pump(self, roles=SILO_ROLES, max_rounds: int = 100) -> int:
        return super().pump(roles, max_rounds)

    def creds(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.client.hgetall(self.keys.credentials(self.agent)).items()}

    def casino_balance(self) -> int:
        from venue.client.casino import CasinoClient

        return CasinoClient(self.sandbox.urls["casino"], self.creds()["casino_key"]).balance().balance

    def wallet_usdc(self) -> int:
        from actors.chain_view import addresses_key

        base = self.client.hget(addresses_key(self.keys, self.agent), "base")
        return self.admin.wallet_usdc("base", base.decode())

    def advance(self, ms: int) -> None:
        """Move the shared clock; the sandbox credits the deposits now due."""
        self.clock.advance(ms)
        self.admin.deliver_deposits()

    def transfers(self):
        return list_transfers(self.client, self.keys, self.agent)

    def close(self) -> None:
        if self.silo.is_alive():
            self.silo.stop()
        super().close()
        self.sandbox.stop()
