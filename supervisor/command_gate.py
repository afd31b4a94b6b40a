"""The gate every command passes before an actor sees it: signature, expiry, scope, nonce.

Commands come from outside (operators, other agents) and must be signed. The one exception is
an internal poke such as `BalancesChanged`: it carries no authority (it only makes RiskGuard
re-read the ledger, which the atomic steps alone write), so a forged one can change nothing.
"""

from __future__ import annotations

from messages.envelope import Envelope
from supervisor.clock import Clock
from supervisor.keyring import Keyring
from supervisor.nonces import NonceStore
from supervisor.signing import verify

INTERNAL_POKES = frozenset({"BalancesChanged"})


class CommandGate:
    def __init__(self, keyring: Keyring, nonces: NonceStore, clock: Clock):
        self.keyring = keyring
        self.nonces = nonces
        self.clock = clock

    def check(self, envelope: Envelope, entry_id: str) -> None:
        """Raise `CommandAuthError` for a command that must not be applied.

        The nonce is claimed for this stream entry: a redelivery of the same entry after a crash
        passes, the same signed command published again (a replay) does not.
        """
        if envelope.type in INTERNAL_POKES:
            return
        verify(envelope, self.keyring, now_ms=self.clock.now_ms(), nonces=self.nonces, holder=entry_id)
