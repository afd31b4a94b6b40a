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
"""

from __future__ import annotations

from messages.envelope import Envelope
from runtime.clock import Clock
from runtime.keyring import Keyring
from runtime.nonces import NonceStore
from runtime.signing import VerifiedCommand, verify

INTERNAL_POKES = frozenset({
    "BalancesChanged", "Rebalance", "RebalanceTick", "CheckExits", "SyncEscrows", "SweepReferrals",
    "DebitLeg", "CreditLeg", "CompensateLeg", "CloseAllPositions",
    "PositionsClosedAll", "FundsDebited", "FundsMoved", "FundsReturned", "TransitLanded", "LegFailed",
    "ReinvestReferrals", "MoveReferralIncome", "ScanIncoming",
})


class CommandGate:
    def __init__(self, keyring: Keyring, nonces: NonceStore, clock: Clock):
        self.keyring = keyring
        self.nonces = nonces
        self.clock = clock

    def check(self, envelope: Envelope, entry_id: str) -> VerifiedCommand | None:
        """Raise `CommandAuthError` for a command that must not be applied; else return who signed it
        (None for an unsigned internal poke, which carries no authority).

        The nonce is claimed for this stream entry: a redelivery of the same entry after a crash
        passes, the same signed command published again (a replay) does not.
        """
        if envelope.type in INTERNAL_POKES and envelope.signature is None:
            return None  # an actor's own message; a signed one (from a person or a program) is verified
        return verify(envelope, self.keyring, now_ms=self.clock.now_ms(), nonces=self.nonces, holder=entry_id)
