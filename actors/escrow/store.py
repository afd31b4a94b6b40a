"""Where the treasury keeps its escrows, because the venue cannot list them.

The escrow service has no list endpoint: an escrow id the treasury forgets is money it can no
longer see. So every escrow the treasury creates is written, in the same atomic commit that
moves its money to `reserve:locked`, into the agent's `escrows` hash (escrow id → record). That
hash IS the list of open escrows (funded, completed, disputed) that SyncEscrows walks and the
status view shows, and it survives any restart of the actor. The commit that settles a release
or a refund moves the record to `escrows_closed`, the history.

A second hash, `escrow_creating` (message id → intent), is the write-ahead note of a creation in
flight: written before the venue is called, removed by the commit that settles the creation. A
redelivered CreateEscrow that finds its intent knows the venue may already hold the escrow and
must look it up before ever creating a second one (`actors.escrow.recovery`).

Records are JSON (readable with redis-cli when something has to be untangled by hand); every
amount in them is integer micro-USD. Writes go through `Commit.hset` / `hdel` only.
"""

from __future__ import annotations

import msgspec
import redis

from messages.escrow_msgs import EscrowStatus
from runtime.keys import Keys

OPEN_STATUSES: frozenset[str] = frozenset({"funded", "completed", "disputed"})
"""Statuses whose money is still locked: a sync looks these up at the venue. A disputed escrow
stays open: only a manual review at the venue ends it, and a sync is how the treasury learns of it."""

RELEASABLE: frozenset[str] = frozenset({"funded", "completed"})
"""The venue releases or disputes only from these (409 `invalid_status` otherwise)."""


class EscrowRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One escrow as the treasury tracks it."""

    escrow_id: str
    counterparty: str
    amount: int
    """Debited from the casino balance at creation; what `reserve:locked` holds for it."""
    fee: int
    """The 1 % fee as the treasury counts it (rounded up, `escrow_rules.escrow_fee`)."""
    venue_fee: int
    """The fee the venue reported (it rounds to the micro; may be one micro under `fee`)."""
    status: EscrowStatus
    timeout_hours: int
    auto_release_at: str
    """The venue's deadline (ISO); a refund lands up to 5 min after it."""
    created_ms: int
    created_by: str
    """The CreateEscrow message id (also in the venue description as `[ref:<id>]`)."""
    description: str
    proof: str | None = None
    dispute_reason: str | None = None
    closed_ms: int | None = None
    """When the treasury settled a release or a refund."""

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES


class CreatingIntent(msgspec.Struct, frozen=True, kw_only=True):
    """A creation about to be sent to the venue, recorded before the call.

    `ledger_head` is the id of the newest casino ledger entry seen just before the call ("" when
    the ledger was empty): if the escrow was created, its debit is newer than that entry, which
    is what lets a lookup prove that it was NOT created (see `actors.escrow.recovery`).
    """

    amount: int
    counterparty: str
    description: str
    """Exactly the description sent to the venue (tagged with the message id)."""
    timeout_hours: int
    ledger_head: str
    started_ms: int


_record_decoder = msgspec.json.Decoder(EscrowRecord)
_intent_decoder = msgspec.json.Decoder(CreatingIntent)


def escrows_key(keys: Keys, agent: str) -> str:
    """Open escrows (their money is in `reserve:locked`)."""
    return keys.escrows(agent)


def closed_key(keys: Keys, agent: str) -> str:
    """Released and refunded escrows: kept so a late command can be answered and audited."""
    return keys.escrows_closed(agent)


def creating_key(keys: Keys, agent: str) -> str:
    return keys.escrow_creating(agent)


def encode(value: EscrowRecord | CreatingIntent) -> str:
    return msgspec.json.encode(value).decode()


def load_escrow(client: redis.Redis, keys: Keys, agent: str, escrow_id: str) -> EscrowRecord | None:
    """The escrow, open or closed; None if the treasury never created it."""
    raw = client.hget(escrows_key(keys, agent), escrow_id) or client.hget(closed_key(keys, agent), escrow_id)
    return None if raw is None else _record_decoder.decode(raw)


def _sorted(values) -> list[EscrowRecord]:
    records = [_record_decoder.decode(v) for v in values]
    return sorted(records, key=lambda r: (r.created_ms, r.escrow_id))


def open_escrows(client: redis.Redis, keys: Keys, agent: str) -> list[EscrowRecord]:
    """The escrows whose money is still locked, oldest first."""
    return _sorted(client.hvals(escrows_key(keys, agent)))


def load_escrows(client: redis.Redis, keys: Keys, agent: str) -> list[EscrowRecord]:
    """Every escrow the treasury created for the agent, open and closed, oldest first."""
    return _sorted([*client.hvals(escrows_key(keys, agent)), *client.hvals(closed_key(keys, agent))])


def load_intent(client: redis.Redis, keys: Keys, agent: str, msg_id: str) -> CreatingIntent | None:
    raw = client.hget(creating_key(keys, agent), msg_id)
    return None if raw is None else _intent_decoder.decode(raw)


def load_intents(client: redis.Redis, keys: Keys, agent: str) -> dict[str, CreatingIntent]:
    """Every creation in flight (or left unresolved), by message id."""
    return {(k.decode() if isinstance(k, bytes) else k): _intent_decoder.decode(v)
            for k, v in client.hgetall(creating_key(keys, agent)).items()}
