"""Every Lua script call keeps all its keys in one Redis Cluster slot: a guard on redis-py's
`Script.__call__`, installed for every test (tests/conftest.py), so any test that runs a commit,
the fence, a lease round or a trim also checks the call would run on a cluster."""

from __future__ import annotations

from typing import Any

from redis.commands.core import Script

from runtime.redis_client import slot_of

_original_call = Script.__call__


class CrossSlotScript(AssertionError):
    """A script call whose keys hash to more than one cluster slot."""


def check_one_slot(keys: Any) -> None:
    """Raise `CrossSlotScript` unless every key hashes to one slot."""
    slots = {slot_of(k) for k in keys or ()}
    if len(slots) > 1:
        raise CrossSlotScript(f"a Lua script call spans {len(slots)} cluster slots: {list(keys)}")


def checked_call(self: Script, keys: Any = None, args: Any = None, client: Any = None) -> Any:
    check_one_slot(keys)
    return _original_call(self, keys=keys, args=args, client=client)
