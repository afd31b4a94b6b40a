"""Can this Redis lose a suffix of the writes it acknowledged? (issue 9, case 3)

| persistence                          | after a crash of the machine          | lossy suffix |
|--------------------------------------|---------------------------------------|--------------|
| AOF, `appendfsync always`            | every acknowledged write is there     | no           |
| AOF, `appendfsync everysec` / `no`   | up to ~1 s (or the OS's flush) lost    | yes          |
| no AOF, RDB snapshots (`save ...`)   | back to the last snapshot             | yes          |
| no AOF, no snapshots                 | nothing at all (streams gone too)      | no           |

A lost suffix is what makes a spend dangerous: the reservation and the acknowledgement of a bet
the venue took can vanish while the command itself survives, and is delivered again as if new.
When the answer is yes (or unknown: CONFIG refused, as on some managed services), the spending
actors look every spend up at the venue before placing it.
"""

from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def suffix_loss_possible(client: redis.Redis) -> bool:
    """True when a crash may lose acknowledged writes while keeping earlier ones (see the table)."""
    try:
        config = client.config_get("appendonly")
        config.update(client.config_get("appendfsync"))
        config.update(client.config_get("save"))
    except redis.RedisError as exc:
        log.warning("cannot read Redis's persistence settings (%s): assuming a crash may lose writes", exc)
        return True
    text = {_str(k): _str(v) for k, v in config.items()}
    if text.get("appendonly") == "yes":
        return text.get("appendfsync") != "always"
    return bool(text.get("save", "").strip())
