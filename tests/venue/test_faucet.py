"""The faucet client: transport failures are retried, the per-IP 429s are not."""

from __future__ import annotations

import httpx
import pytest

from tests.venue.test_casino import scripted
from venue.client.faucet import FaucetClient
from venue.errors import VenueRateLimited

CLAIM = {"credited": 1.0, "claim_id": "c1", "agent_id": "ag_0123456789ab", "referral_tracked": False}


def faucet(*answers, log):
    return FaucetClient("https://faucet.example", transport=scripted(*answers, log=log), backoff_s=0.0,
                        sleep=lambda s: None)


@pytest.mark.parametrize("code", ["ip_rate_limited", "rate_limited"])
def test_a_per_ip_refusal_is_not_retried(code):
    sent: list = []
    with pytest.raises(VenueRateLimited) as info:
        faucet(httpx.Response(429, json={"error": code}), log=sent).claim("ag_0123456789ab")
    assert info.value.code == code and len(sent) == 1


def test_a_lost_answer_is_retried_and_the_claim_lands():
    sent: list = []
    claim = faucet(httpx.Response(502, text="bad gateway"), httpx.Response(200, json=CLAIM), log=sent
                   ).claim("ag_0123456789ab")
    assert claim.credited == 1_000_000 and len(sent) == 2
