"""`ServiceClient.spend_once`: request, then lookup-then-resend, with each ending a caller can act on.

The venue here is a script of outcomes per attempt; the oracle is a count of sends and lookups.
"""

from __future__ import annotations

import pytest

from venue.client.base import ServiceClient
from venue.errors import VenueNotApplied, VenueRateLimited, VenueRejected, VenueUnavailable


class Script:
    """`send()` plays `sends` in order (an exception is raised, anything else returned); `lookup()`
    plays `lookups`. Both count their calls."""

    def __init__(self, sends: list[object], lookups: list[object] | None = None):
        self.sends, self.lookups = list(sends), list(lookups or [])
        self.sent = self.looked = 0

    def send(self) -> object:
        self.sent += 1
        return self._play(self.sends.pop(0))

    def lookup(self) -> object:
        self.looked += 1
        return self._play(self.lookups.pop(0))

    @staticmethod
    def _play(outcome: object) -> object:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def lost(code: str = "transport") -> VenueUnavailable:
    return VenueUnavailable("casino", f"lost ({code})", code=code)


@pytest.fixture
def client():
    slept: list[float] = []
    c = ServiceClient("http://127.0.0.1:9", "k", sleep=slept.append, backoff_s=0.001, settle_s=7.0)
    c.slept = slept
    yield c
    c.close()


def test_an_answer_is_returned_after_one_send(client):
    s = Script(["done"])
    assert client.spend_once("bet 'm'", s.send, s.lookup) == "done"
    assert (s.sent, s.looked) == (1, 0)


def test_a_lost_answer_found_by_the_lookup_is_not_sent_again(client):
    s = Script([lost()], ["found"])
    assert client.spend_once("bet 'm'", s.send, s.lookup) == "found"
    assert (s.sent, s.looked) == (1, 1)


def test_a_lookup_that_proves_nothing_happened_allows_a_resend(client):
    s = Script([lost(), "done"], [None])
    assert client.spend_once("bet 'm'", s.send, s.lookup) == "done"
    assert (s.sent, s.looked) == (2, 1)


def test_every_attempt_lost_and_proven_not_applied(client):
    s = Script([lost(), lost(), lost("timeout")], [None, None, None])
    with pytest.raises(VenueNotApplied) as info:
        client.spend_once("bet 'm'", s.send, s.lookup, attempts=3, details={"client_seed": "m"})
    assert info.value.details == {"client_seed": "m", "last_error": "timeout"}
    assert isinstance(info.value, VenueRejected) and (s.sent, s.looked) == (3, 3)


def test_a_failed_lookup_leaves_the_outcome_unknown_and_sends_nothing_more(client):
    s = Script([lost(), "never"], [lost("timeout")])
    with pytest.raises(VenueUnavailable) as info:
        client.spend_once("bet 'm'", s.send, s.lookup)
    assert info.value.code == "outcome_unknown" and "outcome unknown" in str(info.value)
    assert (s.sent, s.looked) == (1, 1)


def test_a_refusal_ends_at_once_without_a_lookup(client):
    s = Script([VenueRejected("casino", "no", code="insufficient_balance")])
    with pytest.raises(VenueRejected):
        client.spend_once("bet 'm'", s.send, s.lookup)
    assert (s.sent, s.looked) == (1, 0)


def test_rate_limits_are_retried_without_a_lookup_and_the_last_one_raised(client):
    limited = VenueRateLimited("casino", "slow down", code="rate_limited")
    assert client.spend_once("bet 'm'", Script([limited, "done"]).send, Script([]).lookup) == "done"
    s = Script([limited, limited])
    with pytest.raises(VenueRateLimited):
        client.spend_once("bet 'm'", s.send, s.lookup, attempts=2)
    assert s.looked == 0


def test_settle_is_called_with_the_lost_error_before_the_lookup(client):
    seen: list[str] = []
    s = Script([lost("timeout")], ["found"])
    client.spend_once("open", s.send, s.lookup, settle=lambda e: seen.append(e.code))
    assert seen == ["timeout"]
    client.wait_settle(lost("timeout"))
    client.wait_settle(lost("transport"))
    assert client.slept == [7.0]  # only a timed-out spend waits settle_s


def test_attempts_must_be_positive(client):
    with pytest.raises(ValueError):
        client.spend_once("bet", Script([]).send, Script([]).lookup, attempts=0)
