"""Onboarding a new agent: venue accounts, wallet, the faucet's dollar, then the treasury itself.

Each venue issues its own agent id and API key, and none accepts an idempotency key: a second
registration makes a second account. So every step first looks at what Redis already holds and
does only what is missing, and records its result in one atomic commit (credentials + journal
event) keyed on the agent and the step (`onboard:<agent>:<step>`). Running onboarding twice, or
from two processes at once, registers each venue once (a racing loser's extra account is left
unused and never stored) and allocates the capital once (`open_treasury` is keyed the same way).

Secrets — API keys, the wallet mnemonic, the Monero view key — go only into the credentials hash
(`keys.credentials(agent)`); the journal and the log see venue ids and public addresses.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from actors.bootstrap import open_treasury
from actors.chain_view import addresses_key
from actors.venues import read_credentials
from messages.envelope import IdFactory, wrap
from messages.referral_msgs import AgentOnboarded, FaucetChecked, VenueRegistered, WalletCreated
from runtime.atomic import AtomicSteps
from runtime.keys import Keys
from venue.errors import VenueRateLimited, VenueRejected

log = logging.getLogger(__name__)

SERVICES = ("casino", "wallet", "trading")
"""Registration order: the wallet before trading, so the trading account can name its wallet agent."""

FAUCET_FINE = {"already_claimed", "has_deposits"}
"""Faucet refusals that mean there is nothing to claim: not failures of onboarding."""


class FaucetLimit:
    """What the faucet last said about this machine's IP, shared by the agents onboarded together.

    The faucet limits claims per IP: 5 a minute (429 `rate_limited`) and one successful claim a day
    (429 `ip_rate_limited`). After such an answer the claims of the next agents within that minute
    or day are not sent: their outcome is `rate_limited`, what the faucet would answer. Thread-safe;
    `clock` gives seconds (monotonic)."""

    WAIT_S = {"ip_rate_limited": 24 * 3600.0, "rate_limited": 60.0}

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()

    def limited(self) -> bool:
        with self._lock:
            return self._clock() < self._until

    def note(self, code: str | None) -> None:
        """A 429 with error `code` (an unknown code counts as the one-minute limit)."""
        with self._lock:
            self._until = max(self._until, self._clock() + self.WAIT_S.get(code or "", 60.0))


@dataclass(frozen=True)
class OnboardingResult:
    agent: str
    venue_agent_ids: dict[str, str]
    registered: tuple[str, ...]
    """Services registered by this run (empty when everything was already there)."""
    wallet_created: bool
    faucet: str
    allocation: str
    """`ok` when this run allocated the capital, `duplicate` when it had been allocated before."""


def onboarding_key(keys: Keys, agent: str) -> str:
    """Which onboarding steps are done (step → outcome): kept for good, unlike the applied set,
    which forgets message ids after seven days."""
    return keys.onboarding(agent)


def _clients(venues: dict[str, str]) -> dict[str, Any]:
    from venue.client.casino import CasinoClient
    from venue.client.faucet import FaucetClient
    from venue.client.trading import TradingClient
    from venue.client.wallet import WalletClient

    return {"casino": CasinoClient(venues["casino"]), "wallet": WalletClient(venues["wallet"]),
            "trading": TradingClient(venues["trading"]), "faucet": FaucetClient(venues["faucet"])}


class Onboarding:
    """One agent's onboarding, step by step; `run` does them all in order."""

    def __init__(self, steps: AtomicSteps, agent: str, *, venues: dict[str, str], now_ms: int, new_id: IdFactory,
                 clients: dict[str, Any] | None = None, faucet_limit: FaucetLimit | None = None):
        self.steps = steps
        self.keys: Keys = steps.keys
        self.client = steps.client
        self.agent = agent
        self.now_ms = now_ms
        self.new_id = new_id
        self.clients = clients if clients is not None else _clients(venues)
        self.faucet_limit = faucet_limit if faucet_limit is not None else FaucetLimit()

    # ------------------------------------------------------------------ state in Redis

    def credentials(self) -> dict[str, str]:
        return read_credentials(self.client, self.keys, self.agent)

    def done(self, step: str) -> str | None:
        """The recorded outcome of `step`, or None when it has not been done."""
        value = self.client.hget(onboarding_key(self.keys, self.agent), step)
        return None if value is None else _text(value)

    def _commit(self, step: str, sets: dict[str, dict[str, str]], event, outcome: str = "done") -> str:
        """Write `{key: {field: value}}`, mark `step` done and journal `event`, once per (agent, step)."""
        commit = self.steps.new_commit(self.agent)
        for key, fields in sets.items():
            for fld, value in fields.items():
                commit.hset(key, fld, value)
        commit.hset(onboarding_key(self.keys, self.agent), step, outcome)
        commit.emit(self.keys.events(self.agent), wrap(event, agent=self.agent, now_ms=self.now_ms, new_id=self.new_id))
        result = self.steps.commit(commit, f"onboard:{self.agent}:{step}", self.now_ms)
        if result.status == "refused":
            raise RuntimeError(f"onboarding step {step} of {self.agent} refused: {result.reason}")
        return result.status

    # ------------------------------------------------------------------ steps

    def register(self, service: str, referral_code: str | None = None) -> bool:
        """Register at `service` unless its id is already stored; True when this call registered."""
        if f"{service}_agent_id" in self.credentials():
            return False
        venue = self.clients[service]
        if service == "trading":
            wallet_id = self.credentials().get("wallet_agent_id")
            registration = venue.register(referral_code, wallet_agent_id=wallet_id)
        else:
            registration = venue.register(referral_code)
        api_key = registration.api_key
        secret = api_key.reveal() if hasattr(api_key, "reveal") else str(api_key)
        fields = {f"{service}_agent_id": registration.agent_id, f"{service}_key": secret}
        if getattr(registration, "referral_code", ""):
            fields[f"{service}_referral_code"] = registration.referral_code
        status = self._commit(service, {self.keys.credentials(self.agent): fields},
                              VenueRegistered(service=service, venue_agent_id=registration.agent_id))
        if status == "duplicate":
            log.warning("agent %s: a concurrent onboarding registered at %s first; %s is left unused",
                        self.agent, service, registration.agent_id)
            return False
        log.info("agent %s registered at %s as %s", self.agent, service, registration.agent_id)
        return True

    def create_wallet(self) -> bool:
        """Create the multi-chain wallet unless addresses are stored. The mnemonic is shown once by
        the service and is the only way to spend from these addresses, so it is kept with the keys."""
        if self.client.exists(addresses_key(self.keys, self.agent)):
            return False
        wallet = self.clients["wallet"]
        wallet.set_api_key(self.credentials()["wallet_key"])
        created = wallet.create_wallet()
        secrets = {"wallet_mnemonic": _reveal(created.mnemonic)}  # the value, not its masked print
        view_key = created.monero_keys.get("private_view_key") or created.monero_keys.get("view_key")
        if view_key:
            secrets["monero_view_key"] = _reveal(view_key)
        status = self._commit("wallet_create", {addresses_key(self.keys, self.agent): dict(created.addresses),
                                                self.keys.credentials(self.agent): secrets},
                              WalletCreated(addresses=dict(created.addresses)))
        return status == "ok"

    def claim_faucet(self) -> str:
        """Claim the one-time $1 when the casino balance is empty; the outcome is journaled once."""
        previous = self.done("faucet")
        if previous is not None:
            return previous
        creds = self.credentials()
        casino = self.clients["casino"]
        casino.set_api_key(creds["casino_key"])
        balance = int(casino.balance().balance)
        credited = 0
        if balance > 0:
            outcome = "not_empty"
        elif self.faucet_limit.limited():
            outcome = "rate_limited"  # the faucet refused this IP a moment ago: not asked again
        else:
            try:
                credited = int(self.clients["faucet"].claim(creds["casino_agent_id"]).credited)
                outcome = "claimed"
            except VenueRateLimited as exc:
                self.faucet_limit.note(exc.code)
                outcome = "rate_limited"
            except VenueRejected as exc:
                if exc.code not in FAUCET_FINE:
                    raise
                outcome = exc.code
        self._commit("faucet", {}, FaucetChecked(outcome=outcome, credited=credited, casino_balance=balance), outcome)
        log.info("agent %s faucet: %s", self.agent, outcome)
        return outcome

    def open(self, capital: int, buckets: dict[str, int] | None = None) -> str:
        """Allocate the capital, unless this agent's treasury exists already: `open_treasury` is
        idempotent only while the applied set remembers it (seven days), and run again later it
        would overwrite live balances, so an existing risk state or ledger means `duplicate`."""
        if self.client.exists(self.keys.risk(self.agent), self.keys.ledger(self.agent)):
            self.client.sadd(self.keys.agents(), self.agent)
            return "duplicate"
        result = open_treasury(self.steps, self.agent, capital, now_ms=self.now_ms, new_id=self.new_id, buckets=buckets)
        if result.status == "refused":
            raise RuntimeError(f"opening the treasury of {self.agent} refused: {result.reason}")
        self.client.sadd(self.keys.agents(), self.agent)
        return result.status

    def run(self, capital: int, *, referral_codes: dict[str, str] | None = None,
            buckets: dict[str, int] | None = None, create_wallet: bool = True) -> OnboardingResult:
        codes = referral_codes or {}
        registered = tuple(s for s in SERVICES if self.register(s, codes.get(s)))
        wallet_created = self.create_wallet() if create_wallet else False
        faucet = self.claim_faucet()
        allocation = self.open(capital, buckets)
        creds = self.credentials()
        ids = {s: creds[f"{s}_agent_id"] for s in SERVICES}
        if self.done("done") is None:
            self._commit("done", {}, AgentOnboarded(venue_agent_ids=ids, capital=capital, allocated=allocation == "ok",
                                                    faucet=faucet))
        return OnboardingResult(self.agent, ids, registered, wallet_created, faucet, allocation)


def onboard_agent(steps: AtomicSteps, agent: str, capital: int, *, venues: dict[str, str], now_ms: int,
                  new_id: IdFactory, referral_codes: dict[str, str] | None = None,
                  buckets: dict[str, int] | None = None, create_wallet: bool = True,
                  clients: dict[str, Any] | None = None, faucet_limit: FaucetLimit | None = None) -> OnboardingResult:
    """Register `agent` at casino, wallet and trading, create its wallet, claim the faucet if the
    casino balance is empty, and open its treasury with `capital` (or the given `buckets`).

    Idempotent: what Redis already holds is not done again. `venues` maps service names to base
    URLs; `clients` (casino, wallet, trading, faucet) replaces the clients built from them.
    `referral_codes` gives each venue's own code of the agent that referred this one.
    `faucet_limit` is shared by agents onboarded together (`FaucetLimit`; default: this agent's own).
    """
    return Onboarding(steps, agent, venues=venues, now_ms=now_ms, new_id=new_id, clients=clients,
                      faucet_limit=faucet_limit).run(
        capital, referral_codes=referral_codes, buckets=buckets, create_wallet=create_wallet)


def _reveal(value) -> str:
    return value.reveal() if hasattr(value, "reveal") else str(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
