"""Every money figure a person reads is dollars with its unit: event summaries (what `status` and
`cmd --wait` print) format every field the schema declares micro-USD, and every `*_micros` field;
the schema declares every money field so; errors name limits in dollars."""

from __future__ import annotations

import msgspec.inspect as mi
import pytest

from messages.errors import MoneyError
from messages.money import parse_usd
from messages.schema import ALL_MESSAGES
from supervisor.status import summarize

NOT_MONEY = ("_ms", "_bp", "_hours", "_seq", "_days", "leverage", "threshold", "moves", "moves_done", "closed",
             "checked", "released", "refunded", "disputed", "completed", "unchanged", "missing", "unreachable",
             "_micros", "created_ms", "sends", "tries", "count", "shard", "multiple")


def test_every_plain_int_field_of_a_message_is_a_declared_unit_or_money():
    """A money field declared plain `int` is shown as raw micros (`before=141480000`): none left."""
    plain = []
    for cls in ALL_MESSAGES:
        for field in mi.type_info(cls).fields:
            t = field.type
            if isinstance(t, mi.UnionType):
                members = [m for m in t.types if not isinstance(m, mi.NoneType)]
                t = members[0] if len(members) == 1 else t
            if isinstance(t, mi.IntType) and t.le is None and not field.name.endswith(NOT_MONEY) \
                    and field.name not in NOT_MONEY:
                plain.append(f"{cls.__name__}.{field.name}")
    assert plain == []


@pytest.mark.parametrize("body, shown, hidden", [
    ({"type": "LedgerAdjusted", "bucket": "casino", "amount": -1_500_000, "before": 141_480_000,
      "after": 139_980_000, "reason": "probe"}, "amount=-$1.50, before=$141.48, after=$139.98", "141480000"),
    ({"type": "ReconciliationChecked", "reason": "scheduled", "silos": [], "clean": True, "tolerance_micros": 10_000,
      "alerted": False}, "tolerance=$0.01", "10000"),
    ({"type": "PolicyChanged", "settings": {"min_move": 5_000_000, "drift_bp": 300}, "policy": {}},
     "min_move=$5.00, drift_bp=300", "5000000"),
])
def test_summaries_show_money_in_dollars(body, shown, hidden):
    line = summarize(body, limit=None)
    assert shown in line and hidden not in line, line


def test_the_money_limit_is_named_in_dollars():
    with pytest.raises(MoneyError) as err:
        parse_usd("99999999999999", field="capital")
    assert str(err.value) == "capital: $99,999,999,999,999.00 is beyond the $1,000,000,000.00 limit"


def escrow_created(amount: int, fee: int) -> dict:
    """An `EscrowCreated` event body as the journal holds it (micro-USD)."""
    return {"type": "EscrowCreated", "escrow_id": "esc_1", "counterparty": "ag_bob1", "amount": amount, "fee": fee,
            "net_to_counterparty": amount - fee, "timeout_hours": 24, "auto_release_at": "", "locked_after": amount,
            "recovered": False, "fence_seq": 1}


def test_the_escrow_line_says_the_counterparty_is_paid_net_of_the_fee():
    line = summarize(escrow_created(20_000_000, 200_000), limit=None)
    assert "$20.00 locked" in line and "ag_bob1 gets $19.80, net of the escrow service's $0.20 fee" in line, line
    assert "$20.00 to ag_bob1" not in line


def test_status_escrows_show_the_net_to_the_counterparty():
    from supervisor.status import with_net

    rows = with_net({"count": 1, "amount": 20_000_000, "items": [{"id": "esc_1", "amount": 20_000_000,
                                                                  "fee": 200_000}]})
    assert rows["items"][0]["net_to_counterparty"] == 19_800_000


def test_a_policy_amount_out_of_range_is_named_in_dollars():
    from actors.policy.buckets import Policy, PolicyError

    with pytest.raises(PolicyError) as err:
        Policy(min_move=10**20)
    assert "min_move: $100,000,000,000,000.00 (" in str(err.value) and "$1,000,000,000.00]" in str(err.value)


def test_the_sent_line_of_a_payment_says_net_of_the_fee():
    from actors.policy.buckets import DEFAULT_POLICY
    from messages.escrow_msgs import CreateEscrow
    from supervisor.commands import _what

    text = _what(CreateEscrow(counterparty="ag_bob1", amount=20_000_000, description="for data"), DEFAULT_POLICY)
    assert text == ": $20.00 to lock; once released ag_bob1 gets $19.80, net of the escrow service's 1.00 % fee ($0.20)"


def test_sub_cent_escrow_figures_are_shown_exactly_so_they_add_up():
    """$0.50 with a 1 % fee: $0.495 to the counterparty and a $0.005 fee, not "$0.49" and "$0.00"."""
    from actors.policy.buckets import DEFAULT_POLICY
    from messages.escrow_msgs import CreateEscrow
    from supervisor.commands import _what

    line = summarize(escrow_created(500_000, 5_000), limit=None)
    assert "$0.50 locked" in line and "ag_bob1 gets $0.495, net of the escrow service's $0.005 fee" in line, line
    text = _what(CreateEscrow(counterparty="ag_bob1", amount=500_000, description="for data"), DEFAULT_POLICY)
    assert text == ": $0.50 to lock; once released ag_bob1 gets $0.495, net of the escrow service's 1.00 % fee ($0.005)"


def test_an_amount_under_a_venue_minimum_is_named_exactly():
    """A refusal for being under the minimum never shows the amount as "$0.00"."""
    from actors.policy.buckets import DEFAULT_POLICY
    from messages.errors import ConfigError
    from messages.escrow_msgs import CreateEscrow
    from messages.trading_msgs import OpenPosition
    from supervisor.cmd_checks import check_against_policy

    with pytest.raises(ConfigError, match=r"--amount \$0\.000001: the escrow service's minimum is \$0\.10"):
        check_against_policy(CreateEscrow(counterparty="ag_bob1", amount=1, description="for data"), DEFAULT_POLICY)
    position = OpenPosition(coin="BTC", side="long", win_rate="0.55", win_loss_ratio="2", stop_distance="0.02",
                            leverage=2, notional=4_000)
    with pytest.raises(ConfigError, match=r"--notional \$0\.004: the venue's minimum is \$10\.00"):
        check_against_policy(position, DEFAULT_POLICY)
