"""The fence's result type: every status reserve.lua can answer is a `FenceStatus`, the stored
reservation is parsed once, and each refusal reads as one sentence quoting what the fence saw."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from actors.bootstrap import open_treasury
from messages.envelope import seeded_ids
from messages.money import MICRO
from runtime.atomic import AtomicSteps, FenceStatus, Reservation, ReservationRecord
from runtime.bus import command_client

USD = MICRO


def test_every_status_the_lua_returns_is_an_enum_member_and_back():
    lua = resources.files("runtime").joinpath("lua", "reserve.lua").read_text()
    returned = set(re.findall(r'return \{"([a-z_]+)"', lua))
    assert returned == {s.value for s in FenceStatus}


def test_a_record_parses_once_and_bad_text_is_an_error():
    assert ReservationRecord.parse("casino|2500000|7|1700000000000") == ReservationRecord("casino", 2_500_000, 7,
                                                                                         1_700_000_000_000)
    for bad in ("casino|2500000|7", "casino|x|7|1", ""):
        with pytest.raises(ValueError):
            ReservationRecord.parse(bad)


@pytest.mark.parametrize("status, detail, expected", [
    (FenceStatus.PAUSED, "daily loss 5.00 %", "treasury is PAUSED: daily loss 5.00 %"),
    (FenceStatus.HALTED, "drawdown", "treasury is HALTED: drawdown"),
    (FenceStatus.BUCKET_HALTED, "session stop", "casino spending halted: session stop"),
    (FenceStatus.OVER_CAP, "3000000", "the stake $2.50 exceeds the 2.00 % bet cap of $3.00"),
    (FenceStatus.INSUFFICIENT, "1000000", "casino has $1.00 available, the stake needs $2.50"),
    (FenceStatus.INVALID_AMOUNT, "0", "the stake of 0 micro-USD is not a positive amount"),
    (FenceStatus.UNKNOWN_AGENT, "", "no risk state for this agent: refusing (fail closed)"),
    (FenceStatus.UNKNOWN_BUCKET, "casino", "no casino bucket for this agent: refusing (fail closed)"),
    (FenceStatus.UNKNOWN_STATE, "WEIRD", "unreadable risk state 'WEIRD': refusing (fail closed)"),
])
def test_each_refusal_is_one_sentence(status, detail, expected):
    # 2.5 × 10^6 micro-USD is the stake; over_cap's detail is the cap, insufficient's the balance
    denial = Reservation(status, 0, detail).denial("casino", 2_500_000, what="the stake", cap_name="2.00 % bet cap")
    assert denial == expected
    assert not Reservation(status, 0, detail).granted


def test_a_redelivered_reservation_comes_back_with_its_record(redis_url, keys):
    client = command_client(redis_url)
    steps = AtomicSteps(client, keys)
    open_treasury(steps, "f-agent", 1_000 * USD, now_ms=1_000, new_id=seeded_ids(1),
                  buckets={"reserve": 900 * USD, "casino": 100 * USD})
    first = steps.reserve("f-agent", "m-1", "casino", 2 * USD, 3 * USD, 2_000)
    again = steps.reserve("f-agent", "m-1", "casino", 9 * USD, 3 * USD, 3_000)
    assert first.status is FenceStatus.OK and first.record is None and first.granted
    assert again.status is FenceStatus.ALREADY_RESERVED and again.granted
    assert again.record == ReservationRecord("casino", 2 * USD, first.seq, 2_000)  # the first stake stands
    over = steps.reserve("f-agent", "m-2", "casino", 4 * USD, 3 * USD, 3_000)
    assert over.status is FenceStatus.OVER_CAP and over.denial("casino", 4 * USD) == \
        "the spend $4.00 exceeds the cap of $3.00"
    client.close()
