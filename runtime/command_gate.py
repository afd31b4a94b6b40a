"""The gate every command passes before an actor sees it: signature, expiry, scope, nonce.

Commands come from outside (operators, other agents) and must be signed. The exception is the
internal messages the actors send each other inside their atomic commits. Each of them carries
no authority of its own: the actor that receives it decides from the state in Redis, which only
the atomic steps write — RiskGuard re-reads the ledger on `BalancesChanged`; the Rebalancer
re-checks its trigger on `Rebalance`; a transfer leg is honoured only if it matches the saga's
record and consumes its one-shot token; a tick only runs what is due. A forged one changes
nothing that a real one would not. `CloseAllPositions` would have an effect (closing positions
early), so the trading actor honours an unsigned one only when the trading bucket is halted or a
rebalance is waiting for it; from anyone else it must be signed. A poke that does carry a
signature is verified like any command.

Which messages are internal pokes is the catalogue's fact (`messages/catalogue.py`), per body:
a `Rebalance` is one only for the triggers the actors raise themselves; `trigger="operator"`
stands for an operator and needs an operator's signature, so an unsigned one added straight to
the rebalancer's stream is refused here like any unsigned command.
"""

from __future__ import annotations

from typing import Callable

from messages.catalogue import required_scope
from messages.envelope import Envelope
from runtime.clock import Clock
from runtime.keyring import Keyring
from runtime.nonces import NonceStore
from runtime.signing import verify

AcceptedAt = Callable[[Envelope], "int | None"]
"""When a command was first accepted (clock ms), if the treasury holds proof that it was — e.g.
the fence's reservation for it (`runtime.atomic.reserved_at`) — else None."""


class CommandGate:
    def __init__(self, keyring: Keyring, nonces: NonceStore, clock: Clock, accepted_at: AcceptedAt | None = None):
        self.keyring = keyring
        self.nonces = nonces
        self.clock = clock
        self.accepted_at = accepted_at

    def check(self, envelope: Envelope, entry_id: str) -> None:
        """Raise `CommandAuthError` for a command that must not be applied.

        The nonce is claimed for this stream entry: a redelivery of the same entry after a crash
        passes, the same signed command published again (a replay) does not. Time is judged as of
        `judged_at`.
        """
        if envelope.signature is None and required_scope(envelope.body) == "internal":
            return  # an actor's own poke; a signed one (from a person or a program) is verified
        verify(envelope, self.keyring, now_ms=self.judged_at(envelope), nonces=self.nonces, holder=entry_id)

    def judged_at(self, envelope: Envelope) -> int:
        """The time a command's signature is judged at: now, or — for a command accepted before
        (funds are reserved for it) — the time it was accepted. A spend verified once stays
        verified: its redelivery after an outage longer than the signature's life is not refused
        as expired with its money in flight. Everything else (MAC, key, scope) is checked again."""
        now = self.clock.now_ms()
        if self.accepted_at is None:
            return now
        accepted = self.accepted_at(envelope)
        return now if accepted is None else min(now, accepted)
