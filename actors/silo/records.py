"""The Redis records of silo transfers.

`<prefix>:{S}:silo_xfer:<agent>:<transfer>` (hash), written by the silo actor only, except the
token fields the bucket actors consume:

| field | meaning |
|---|---|
| `saga`, `from_silo`, `to_silo`, `amount`, `route`, `created_ms` | what to move (from the Rebalancer) |
| `legs` | `leg|source|dest|held;...`: the held leg parts this transfer carries |
| `state` | `pending` → `sending` → `sent` / `review` / `unknown` → `landed` / `failed` → `returned` |
| `hop` | for casino ↔ trading (through the wallet): 0 then 1 |
| `attempt_ms`, `attempts`, `balance_before` | the last send attempt, for the look-up that must precede a retry |
| `venue_ref`, `sent_ms`, `credited` | what the venue said, when, and how much the destination credited |
| `land:<leg>`, `ret:<leg>` | one-shot tokens (micro-USD) that `LandHeld` / `ReturnHeld` consume (minimum 0) |
| `fee:<kind>` | a fee to book (micro-USD), consumed by `BookFee` |
| `place_bucket`, `place_sign` | a `PlaceFunds` transfer (no legs): the bucket, +1 away from home, −1 back |

`<prefix>:{S}:silo_intents:<agent>`: transfer id → `from|to|amount|status` (`pending` until it
left its silo, `sent` while in flight, then `landed` or `returned`): the per-agent index.
`<prefix>:{S}:silo_income:<agent>`: a venue reference of outside income → its booking token.
`<prefix>:{S}:silo_seen:<agent>` (hash, reference → what explains it): venue references already
explained (deposits of our transfers, income booked, deposits present before watching started).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.keys import Keys

OPEN_STATES = ("pending", "sending", "sent", "review", "unknown", "failed")
"""States in which a transfer still needs the silo actor."""


def xfer_key(keys: Keys, agent: str, transfer: str) -> str:
    return keys._ak(agent, "silo_xfer", agent, transfer)


def intents_key(keys: Keys, agent: str) -> str:
    return keys.silo_intents(agent)


def income_key(keys: Keys, agent: str) -> str:
    return keys._ak(agent, "silo_income", agent)


def seen_key(keys: Keys, agent: str) -> str:
    return keys._ak(agent, "silo_seen", agent)


def placement_key(keys: Keys, agent: str) -> str:
    """`<bucket>@<silo>` → micro-USD of the bucket's money parked away from its home silo (landed
    `PlaceFunds` transfers, net; the paper float), written by the silo actor and paper onboarding."""
    return keys._ak(agent, "silo_place", agent)


def silo_state_key(keys: Keys, agent: str) -> str:
    """The silo actor's own per-agent fields: `watch_from_ms`, `last_reconcile_ms`."""
    return keys._ak(agent, "silo", agent)


@dataclass(frozen=True)
class HeldLeg:
    leg: int
    source: str
    dest: str
    held: int


@dataclass
class Transfer:
    id: str
    saga: str
    from_silo: str
    to_silo: str
    amount: int
    legs: list[HeldLeg]
    state: str
    fields: dict[str, str] = field(default_factory=dict)

    def int(self, name: str, default: int = 0) -> int:
        value = self.fields.get(name)
        return int(value) if value not in (None, "") else default

    def text(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)


def encode_legs(legs: list[HeldLeg]) -> str:
    return ";".join(f"{g.leg}|{g.source}|{g.dest}|{g.held}" for g in legs)


def decode_legs(text: str) -> list[HeldLeg]:
    out = []
    for part in filter(None, text.split(";")):
        leg, source, dest, held = part.split("|")
        out.append(HeldLeg(int(leg), source, dest, int(held)))
    return out


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_transfer(client, keys: Keys, agent: str, transfer: str) -> Transfer | None:
    raw = client.hgetall(xfer_key(keys, agent, transfer))
    if not raw:
        return None
    f = {_text(k): _text(v) for k, v in raw.items()}
    return Transfer(id=transfer, saga=f.get("saga", ""), from_silo=f["from_silo"], to_silo=f["to_silo"],
                    amount=int(f["amount"]), legs=decode_legs(f.get("legs", "")), state=f.get("state", "pending"),
                    fields=f)


CLOSED_RETENTION_MS = 7 * 86_400_000
"""How long a landed or returned transfer stays in the index (for `treasury status` and
reconciliation notes) before `prune_closed` drops it; its story stays in the journal."""


def prune_closed(client, keys: Keys, agent: str, transfers: list[Transfer], now_ms: int,
                 retention_ms: int = CLOSED_RETENTION_MS) -> int:
    """Drop from the index, with their records, the transfers that ended (`landed`, `returned`)
    more than `retention_ms` after they were created and hold no unspent token (`land:`, `ret:`,
    `fee:` all 0: no bucket message can still need them). Returns how many went. The silo actor
    is the only writer of both keys; the bucket actors only ever lower tokens."""
    old = [t for t in transfers if t.state in ("landed", "returned") and now_ms - t.int("created_ms") > retention_ms
           and not any(name.startswith(("land:", "ret:", "fee:")) and value not in ("", "0")
                       for name, value in t.fields.items())]
    if not old:
        return 0
    pipe = client.pipeline(transaction=True)
    for t in old:
        pipe.delete(xfer_key(keys, agent, t.id))
        pipe.hdel(intents_key(keys, agent), t.id)
    pipe.execute()
    return len(old)


def list_transfers(client, keys: Keys, agent: str) -> list[Transfer]:
    """Every transfer of the agent's index, oldest first (ids sort by saga then position)."""
    out = []
    for tid in sorted(_text(t) for t in client.hkeys(intents_key(keys, agent))):
        record = read_transfer(client, keys, agent, tid)
        if record is not None:
            out.append(record)
    return out
