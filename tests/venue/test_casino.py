"""`ServiceClient`/`CasinoClient` behaviour against scripted answers (httpx.MockTransport):
error mapping, lenient parsing, which calls are retried, and that the API key never leaks."""

from __future__ import annotations

import json
import logging
import pickle
import traceback

import httpx
import pytest

from venue.client import CasinoClient
from venue.client.base import Secret
from venue.errors import VenueNotApplied, VenueRateLimited, VenueRejected, VenueUnavailable

KEY = "sk_live_" + "5ec7e7" * 8
BET = {
    "bet_id": "bet_1", "game": "coin_flip", "amount_bet": 1, "result": {"roll": 12.34}, "won": True,
    "payout_multiplier": 1.99, "amount_won": 1.99, "new_balance": "100.99",
    "proof": {"server_seed_hash": "h", "client_seed": "cs", "nonce": 4, "result_hash": "000004d2" + "0" * 56},
    "kelly": {"bankroll": 100.99, "risk_factor": 0.25, "max_bet_this_game": 12.62, "bets_until_ruin": None,
              "suggested_bet": 6.31},
    "_info": {"service": "agent-casino"},
}


def scripted(*answers, log=None):
    """A transport answering from a list; an exception instance is raised instead."""
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        if log is not None:
            log.append(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler)


def client(*answers, log=None, **options):
    return CasinoClient("https://casino.example", KEY, transport=scripted(*answers, log=log), backoff_s=0.0,
                        sleep=lambda s: None, **options)


def test_lenient_parsing_of_a_bet():
    bet = client(httpx.Response(200, json=BET)).bet("coin_flip", 1_000_000, {"side": "heads"}, client_seed="cs",
                                                     idempotency_key="k")
    assert bet.amount_bet == 1_000_000 and bet.amount_won == 1_990_000 and bet.new_balance == 100_990_000
    assert bet.payout_multiplier == "1.99" and bet.roll == "12.34"  # 0x4d2 = 1234
    assert bet.kelly.bets_until_ruin is None and bet.net == 990_000


def test_amount_strings_and_camel_rows():
    entries = {"entries": [{"id": 9, "agentId": "ag_1", "type": "debit", "amount": "2.5", "balanceAfter": 7.499999,
                            "reason": "reservation", "reference": "bet_1", "service": "casino",
                            "createdAt": 1767225600, "at": "2026-01-01T00:00:00.000Z", "extra": 1}],
               "_info": {}}
    [entry] = client(httpx.Response(200, json=entries)).ledger()
    assert entry.amount == 2_500_000 and entry.balance_after == 7_499_999 and entry.agent_id == "ag_1"


def test_spends_send_dollars_and_an_idempotency_key():
    seen = []
    client(httpx.Response(200, json=BET), log=seen).bet("dice", 1_230_000, {"threshold": 60}, client_seed="cs",
                                                         idempotency_key="msg-1")
    request = seen[0]
    assert request.url.path == "/api/v1/games/dice"
    assert json.loads(request.content) == {"threshold": 60, "amount": 1.23, "client_seed": "cs"}
    assert request.headers["idempotency-key"] == "msg-1"
    assert request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "1"])
def test_spends_refuse_bad_amounts_before_sending(bad):
    seen = []
    from messages.errors import MoneyError

    with pytest.raises(MoneyError):
        client(httpx.Response(200, json=BET), log=seen).bet("dice", bad, {}, client_seed="c", idempotency_key="k")
    assert seen == []


@pytest.mark.parametrize("response,kind,code", [
    (httpx.Response(400, json={"error": "kelly_limit_exceeded", "max_bet": 12.5}), VenueRejected,
     "kelly_limit_exceeded"),
    (httpx.Response(402, json={"error": "insufficient_balance", "balance": 1}), VenueRejected, "insufficient_balance"),
    (httpx.Response(429, json={"error": "rate_limit_exceeded", "reset_at": "x"}), VenueRateLimited,
     "rate_limit_exceeded"),
    (httpx.Response(429, text="slow down"), VenueRateLimited, "rate_limited"),
    (httpx.Response(500, json={"error": "internal_error"}), VenueUnavailable, "internal_error"),
    (httpx.Response(503, text="<html>"), VenueUnavailable, "http_503"),
    (httpx.Response(200, content=b"\x00\xffgarbage"), VenueUnavailable, "garbage"),
    (httpx.Response(200, json={"unexpected": True}), VenueUnavailable, "unexpected_response"),
    (httpx.Response(404, text="<html>not here</html>"), VenueUnavailable, "http_404"),
    (httpx.ConnectError("refused"), VenueUnavailable, "transport"),
    (httpx.ReadTimeout("slow"), VenueUnavailable, "timeout"),
    (httpx.RemoteProtocolError("peer closed"), VenueUnavailable, "transport"),
])
def test_error_mapping(response, kind, code):
    with pytest.raises(kind) as info:
        client(response).bet("coin_flip", 1_000_000, {}, client_seed="c", idempotency_key="k")
    assert type(info.value) is kind and info.value.code == code and info.value.service == "casino"


def test_kelly_rejection_carries_max_bet_in_micros():
    with pytest.raises(VenueRejected) as info:
        client(httpx.Response(400, json={"error": "kelly_limit_exceeded", "max_bet": 12.5})).bet(
            "coin_flip", 13_000_000, {}, client_seed="c", idempotency_key="k")
    assert info.value.details["max_bet_micros"] == 12_500_000


def test_gets_are_retried_but_spends_are_not():
    balance = {"agent_id": "ag_1", "balance_usd": 5}
    seen = []
    c = client(httpx.Response(502), httpx.ReadTimeout("t"), httpx.Response(200, json=balance), log=seen)
    assert c.balance().balance == 5_000_000 and len(seen) == 3
    seen.clear()
    with pytest.raises(VenueUnavailable):
        client(httpx.Response(502), httpx.Response(200, json=BET), log=seen).bet(
            "coin_flip", 1_000_000, {}, client_seed="c", idempotency_key="k")
    assert len(seen) == 1
    seen.clear()
    with pytest.raises(VenueUnavailable):
        client(httpx.Response(502), log=seen, retries=1).balance()
    assert len(seen) == 2


def test_place_bet_once_recovers_a_bet_whose_answer_was_lost():
    history = {"bets": [{"id": "bet_9", "game": "coin_flip", "amount": 1, "amount_won": 0, "multiplier": 1.99,
                         "won": False, "verify": "GET /api/v1/fairness/verify?hash=" + "00000001" + "0" * 56,
                         "client_seed": "cs"}]}
    seen = []
    c = client(httpx.RemoteProtocolError("dropped"), httpx.Response(200, json=history),
               httpx.Response(200, json={"agent_id": "ag", "balance_usd": 9}), log=seen)
    bet = c.place_bet_once("coin_flip", 1_000_000, {}, client_seed="cs", idempotency_key="k")
    assert bet.recovered and bet.bet_id == "bet_9" and bet.new_balance == 9_000_000 and bet.roll == "0.01"
    assert [r.url.path for r in seen] == ["/api/v1/games/coin-flip", "/api/v1/bets/history", "/api/v1/auth/balance"]


def test_place_bet_once_resends_only_after_the_lookup_proves_nothing_happened():
    seen = []
    c = client(httpx.Response(500, json={"error": "internal_error"}), httpx.Response(200, json={"bets": []}),
               httpx.Response(200, json=BET), log=seen)
    bet = c.place_bet_once("coin_flip", 1_000_000, {}, client_seed="cs", idempotency_key="k")
    assert not bet.recovered and bet.bet_id == "bet_1"
    assert [r.url.path for r in seen] == ["/api/v1/games/coin-flip", "/api/v1/bets/history",
                                          "/api/v1/games/coin-flip"]


def test_place_bet_once_gives_up_with_not_applied():
    seen = []  # every bet attempt fails, every lookup finds nothing
    transport = scripted(*([httpx.ConnectError("x"), httpx.Response(200, json={"bets": []})] * 3), log=seen)
    c = CasinoClient("https://casino.example", KEY, transport=transport, backoff_s=0.0, sleep=lambda s: None)
    with pytest.raises(VenueNotApplied) as info:
        c.place_bet_once("coin_flip", 1_000_000, {}, client_seed="cs", idempotency_key="k", attempts=3)
    assert isinstance(info.value, VenueRejected) and info.value.details["last_error"] == "transport"
    assert sum(1 for r in seen if r.url.path.endswith("coin-flip")) == 3


def test_place_bet_once_reports_unknown_when_the_lookup_fails():
    c = client(httpx.ConnectError("x"), retries=0)
    with pytest.raises(VenueUnavailable) as info:
        c.place_bet_once("coin_flip", 1_000_000, {}, client_seed="cs", idempotency_key="k")
    assert info.value.code == "outcome_unknown" and not isinstance(info.value, VenueRejected)


def test_place_bet_once_passes_rejections_through_without_retry():
    seen = []
    c = client(httpx.Response(400, json={"error": "invalid_side"}), log=seen)
    with pytest.raises(VenueRejected):
        c.place_bet_once("coin_flip", 1_000_000, {}, client_seed="cs", idempotency_key="k")
    assert len(seen) == 1


def test_place_bet_once_backs_off_on_429():
    seen = []
    c = client(httpx.Response(429, json={"error": "rate_limited"}), httpx.Response(200, json=BET), log=seen)
    assert c.place_bet_once("coin_flip", 1_000_000, {}, client_seed="cs", idempotency_key="k").bet_id == "bet_1"
    assert len(seen) == 2


def test_timeout_is_set_on_every_call():
    seen = []
    c = client(httpx.Response(200, json={"agent_id": "a", "balance_usd": 1}), log=seen, timeout_s=1.5)
    c.balance()
    assert seen[0].extensions["timeout"] == {"connect": 1.5, "read": 1.5, "write": 1.5, "pool": 1.5}
    with pytest.raises(ValueError):
        CasinoClient("https://x", timeout_s=0)


def test_calls_without_a_key_are_refused_locally():
    seen = []
    c = CasinoClient("https://casino.example", transport=scripted(httpx.Response(200, json={}), log=seen))
    with pytest.raises(VenueRejected) as info:
        c.balance()
    assert info.value.code == "no_api_key" and seen == []


def test_register_adopts_the_new_key():
    reg = {"agent_id": "ag_1", "api_key": KEY, "referral_code": "ref_1", "balance": 0}
    seen = []
    c = CasinoClient("https://casino.example", transport=scripted(httpx.Response(201, json=reg),
                                                                  httpx.Response(200, json={"agent_id": "ag_1",
                                                                                            "balance_usd": 0}),
                                                                  log=seen))
    registration = c.register("ref_x")
    assert "authorization" not in seen[0].headers and json.loads(seen[0].content) == {"referral_code": "ref_x"}
    c.balance()
    assert seen[1].headers["authorization"] == f"Bearer {KEY}"
    assert registration.api_key.reveal() == KEY and registration.api_key == KEY


def test_the_key_never_leaks(caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    failures = [httpx.Response(401, json={"error": "unauthorized"}), httpx.Response(500, json={"error": "x"}),
                httpx.ConnectError(f"a transport message quoting {KEY}"), httpx.ReadTimeout("slow"),
                httpx.Response(200, content=b"garbage")]
    for failure in failures:
        c = client(failure, retries=0)
        texts.append(repr(c))
        for call in (c.balance, lambda c=c: c.bet("dice", 1_000_000, {}, client_seed="s", idempotency_key="k"),
                     lambda c=c: c.place_bet_once("dice", 1_000_000, {}, client_seed="s", idempotency_key="k")):
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - every failure is inspected
                texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    reg = client(httpx.Response(201, json={"agent_id": "a", "api_key": KEY, "referral_code": "r"})).register()
    texts += [repr(reg), str(reg), f"{reg}", repr(reg.api_key), str(reg.api_key), f"{reg.api_key}"]
    texts += [record.getMessage() for record in caplog.records]
    assert texts and not [t for t in texts if KEY in t or KEY[8:] in t]
    assert "sk_live_" in repr(reg.api_key)
    with pytest.raises(TypeError):
        pickle.dumps(Secret(KEY))


def test_secret_equality_and_wrapping():
    s = Secret(KEY)
    assert Secret(s) == s == KEY and s != "other" and hash(s) == hash(Secret(KEY))
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]
