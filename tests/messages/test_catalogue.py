"""The catalogue of message facts against the schema, the roles, the scheduler and the vocabulary
rule (our denials `...Refused`, the venue's refusals `...Rejected`)."""

from __future__ import annotations

import pytest

from messages.catalogue import (
    ACTOR_TRIGGERS,
    CATALOGUE,
    OUTCOME_KIND,
    ROLES,
    Outcome,
    facts_for,
    outcome_of,
    required_scope,
)
from messages.envelope import seeded_ids, wrap
from messages.schema import ALL_MESSAGES, BetRefused, BetSettled, CoinFlip, CommandRefused, PlaceBet, SetRisk
from messages.treasury_msgs import (
    CreditLeg,
    Rebalance,
    RebalanceCompleted,
    RebalancePlanned,
    RebalanceSkipped,
    SetPolicy,
)
from supervisor.roles import ROLE_MODULES
from supervisor.scheduler import DEFAULT_TICKS

IDS = seeded_ids(5)


def test_every_catalogued_type_is_a_schema_message_and_every_role_has_an_actor():
    assert set(CATALOGUE) <= set(ALL_MESSAGES)
    assert set(ROLES) == set(ROLE_MODULES)
    for facts in CATALOGUE.values():
        assert set(facts.roles) <= set(ROLES), facts.command
        assert set(facts.later) <= set(facts.outcome_kinds), facts.command


def test_outcome_names_follow_the_vocabulary_rule():
    """Our own denials end in Refused, the venue's in Rejected; nothing is called Denied."""
    for event, kind in OUTCOME_KIND.items():
        if kind == "refused":
            assert event.__name__.endswith("Refused"), event
        if kind == "rejected":
            assert event.__name__.endswith("Rejected"), event
    assert not [m for m in ALL_MESSAGES if m.__name__.endswith("Denied")]
    assert not [m for m in ALL_MESSAGES if m.__name__.endswith("Failed") and OUTCOME_KIND.get(m) in ("refused",
                                                                                                   "rejected")]


def test_every_tick_is_an_internal_poke_with_a_body_for_its_role():
    for tick in DEFAULT_TICKS:
        body = tick.body()
        assert required_scope(body) == "internal" and tick.role in ROLES


@pytest.mark.parametrize("body, scope", [
    (Rebalance(trigger="operator", reason="r"), "operator"),
    (Rebalance(trigger="manual", reason="r"), "agent"),
    (Rebalance(trigger="something-new", reason="r"), "operator"),
    (SetPolicy(settings={}), "operator"),
    (SetRisk(state="ACTIVE", reason="r"), "operator"),
    (SetRisk(state="PAUSED", reason="r"), "agent"),
    (PlaceBet(game=CoinFlip()), "agent"),
    (BetSettled(bet_id="b", game="g", stake=1, payout=0, pnl=-1, won=False, roll="1", bucket_after=0), "operator"),
])
def test_scopes(body, scope):
    assert required_scope(body) == scope


@pytest.mark.parametrize("trigger", sorted(ACTOR_TRIGGERS))
def test_the_actors_own_rebalance_triggers_are_internal(trigger):
    assert required_scope(Rebalance(trigger=trigger, reason="r")) == "internal"


def test_a_leg_goes_to_the_role_of_the_bucket_it_names():
    leg = CreditLeg(saga="s", leg=0, source="casino", dest="reserve", amount=1, reason="r")
    assert facts_for(leg).role_for(leg) == "reserve"


def _event(body, *, cause=None):
    return wrap(body, agent="a", now_ms=1, new_id=IDS, cause=cause)


def test_outcomes_by_causation_and_by_correlation():
    bet = _event(PlaceBet(game=CoinFlip()))
    facts = facts_for(bet.body)
    assert outcome_of(facts, bet.id, _event(BetRefused(code="c", reason="r"), cause=bet)).kind == "refused"
    assert outcome_of(facts, bet.id, _event(CommandRefused(command="PlaceBet", reason="r"), cause=bet)).kind == \
        "refused"
    assert outcome_of(facts, bet.id, _event(BetRefused(code="c", reason="r"))) is None  # another command's

    request = _event(Rebalance(trigger="operator", reason="r"))
    facts = facts_for(request.body)
    planned = _event(RebalancePlanned(saga="s", trigger="operator", reason="r", moves=(), close_positions_first=False,
                                      state="ACTIVE", before={}, after={}), cause=request)
    assert outcome_of(facts, request.id, planned) is None  # not terminal
    leg_answer = _event(CreditLeg(saga="s", leg=0, source="casino", dest="reserve", amount=1, reason="r"),
                        cause=planned)
    completed = _event(RebalanceCompleted(saga="s", reason="r", moves=1, moved=1, held=0), cause=leg_answer)
    assert completed.causation != request.id and completed.correlation == request.id
    assert outcome_of(facts, request.id, completed) == Outcome("done", completed)
    skipped = _event(RebalanceSkipped(trigger="operator", reason="r"), cause=request)
    assert outcome_of(facts, request.id, skipped).done
