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

from typing import Callable, Sequence

from messages.catalogue import required_scope
from messages.envelope import Envelope
from runtime.clock import Clock
from runtime.keyring import Keyring
from runtime.nonces import NonceClaim, NonceStore, claim_many
from runtime.signing import VerifiedCommand, check_signature, replayed, verify

AcceptedAt = Callable[[Envelope], "int | None"]
"""When a command was first accepted (clock ms), if the treasury holds proof that it was — e.g.
the fence's reservation for it (`runtime.atomic.reserved_at`) — else None."""

AcceptedAtMany = Callable[[Sequence[Envelope]], "list[int | None]"]
"""`AcceptedAt` for several commands in one round trip (`runtime.atomic.reserved_at_many`)."""

Checked = VerifiedCommand | None | Exception
"""What the gate says of one command: who signed it, None (an unsigned internal poke), or the
error that refuses it (`CommandAuthError`; a Redis error is raised, not returned)."""


class CommandGate:
    def __init__(self, keyring: Keyring, nonces: NonceStore, clock: Clock, accepted_at: AcceptedAt | None = None,
                 accepted_at_many: AcceptedAtMany | None = None):
        self.keyring = keyring
        self.nonces = nonces
        self.clock = clock
        self.accepted_at = accepted_at
        self.accepted_at_many = accepted_at_many

    def check(self, envelope: Envelope, entry_id: str) -> VerifiedCommand | None:
        """Raise `CommandAuthError` for a command that must not be applied; else return who signed it
        (None for an unsigned internal poke, which carries no authority).

        The nonce is claimed for this stream entry: a redelivery of the same entry after a crash
        passes, the same signed command published again (a replay) does not. Time is judged as of
        `judged_at`.
        """
        if envelope.signature is None and required_scope(envelope.body) == "internal":
            return None  # an actor's own poke; a signed one (from a person or a program) is verified
        return verify(envelope, self.keyring, now_ms=self.judged_at(envelope), nonces=self.nonces, holder=entry_id)

    def check_many(self, items: Sequence[tuple[Envelope, str]]) -> list[Checked]:
        """`check` for each `(envelope, entry_id)` of a batch, in order, with every nonce claimed in
        one round trip (and the acceptance times read in one more, when the gate has
        `accepted_at_many`). Refusals are returned in place, not raised; Redis errors are raised
        (nothing is refused for them: the batch stays pending and is checked again).

        Same outcome as calling `check` on each in turn: each nonce is claimed only by a command
        that passed every other check, and a nonce claimed by an earlier entry (of this batch or
        before) refuses a later one as replayed. Claiming a batch's nonces before any of its
        entries is applied changes nothing for a redelivery: the claim names its entry (holder)."""
        signed = [i for i, (env, _) in enumerate(items)
                  if not (env.signature is None and required_scope(env.body) == "internal")]
        out: list[Checked] = [None] * len(items)
        if not signed:
            return out
        now = self.clock.now_ms()
        if self.accepted_at_many is not None:
            accepted = self.accepted_at_many([items[i][0] for i in signed])
            times = [now if a is None else min(now, a) for a in accepted]
        else:
            times = [self.judged_at(items[i][0]) for i in signed]
        claims: list[tuple[int, VerifiedCommand, NonceClaim]] = []
        for i, at in zip(signed, times, strict=True):
            env, entry_id = items[i]
            try:
                verified = check_signature(env, self.keyring, now_ms=at)
            except Exception as exc:  # noqa: BLE001 - refused in place, as `check` would raise it
                out[i] = exc
                continue
            claims.append((i, verified, NonceClaim(verified.key_id, verified.nonce, verified.expires_ms, at,
                                                   env.agent, entry_id)))
        won = claim_many(self.nonces, [c for _, _, c in claims])
        for (i, verified, _), ok in zip(claims, won, strict=True):
            out[i] = verified if ok else replayed(verified)
        return out

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
