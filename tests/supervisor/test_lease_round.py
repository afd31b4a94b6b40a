"""A worker's lease round is one script call: fair split, give back above the share, take over expired."""

from __future__ import annotations

import time

import pytest

from runtime.leases import ShardLeases, lease_holders

pytestmark = pytest.mark.redis


def test_two_workers_split_eight_shards_and_one_takes_over_when_the_other_lapses(rclient, prefix):
    a = ShardLeases(rclient, prefix, "casino", 8, "w-a", lease_ms=300)
    b = ShardLeases(rclient, prefix, "casino", 8, "w-b", lease_ms=300)
    gained, lost = a.refresh()
    assert gained == set(range(8)) and lost == set()   # alone: every shard
    b.refresh()                                        # b announces itself; a's share is now 4
    gained, lost = a.refresh()
    assert len(a.owned) == 4 and len(lost) == 4 and gained == set()
    b.refresh()
    assert a.owned | b.owned == set(range(8)) and not a.owned & b.owned
    assert lease_holders(rclient, prefix, "casino") == {**{s: "w-a" for s in a.owned}, **{s: "w-b" for s in b.owned}}
    time.sleep(0.35)                                   # a stops renewing: its leases and membership lapse
    b.refresh()
    assert b.owned == set(range(8))
    b.release_all()
    assert lease_holders(rclient, prefix, "casino") == {}


def test_an_owner_whose_name_starts_with_another_owners_and_a_bar_is_told_apart(rclient, prefix):
    # "w|x|<expiry>" is w|x's lease, not w's: the round's fast path for its own leases must not take it
    short = ShardLeases(rclient, prefix, "casino", 4, "w", lease_ms=60_000)
    long = ShardLeases(rclient, prefix, "casino", 4, "w|x", lease_ms=60_000)
    long.refresh()
    short.refresh()
    long.refresh()
    short.refresh()
    assert len(short.owned) == 2 and len(long.owned) == 2 and not short.owned & long.owned
    assert lease_holders(rclient, prefix, "casino") == {**{s: "w" for s in short.owned},
                                                        **{s: "w|x" for s in long.owned}}
    short.release_all()
    assert lease_holders(rclient, prefix, "casino") == {s: "w|x" for s in long.owned}
