"""Signed commands: every way a command is refused, the success path, scopes, nonces and keys."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import typing

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages import codec
from messages.catalogue import ACTOR_TRIGGERS, CATALOGUE
from messages.envelope import Envelope
from messages.errors import ConfigError, MessageDecodeError, TreasuryError
from messages.schema import (
    BUCKETS,
    Allocate,
    AnyMessage,
    BetRefused,
    CapitalAllocated,
    CoinFlip,
    Dice,
    Multiplier,
    PlaceBet,
    RiskControl,
    SetRisk,
)
from messages.treasury_msgs import Rebalance
from runtime.keyring import (
    KEYS_ENV,
    KEYS_FILE_ENV,
    Keyring,
    SigningKey,
    add_key_to_file,
    generate_key,
    scope_covers,
    write_key_file,
)
from runtime.nonces import MemoryNonceStore, NonceStore, RedisNonceStore
from runtime.signing import (
    CODES,
    DEFAULT_TTL_MS,
    MAX_TTL_MS,
    CommandAuthError,
    VerifiedCommand,
    canonical_envelope,
    format_signature,
    parse_signature,
    required_scope_for,
    sign,
    signed_bytes,
    verify,
)

# The same values as the fixtures in conftest.py (a conftest is not imported from).
NOW_MS = 1_700_000_000_000
AGENT_SECRET = bytes(range(32))
OPERATOR_SECRET = bytes(range(100, 132))
OTHER_SECRET = bytes(range(200, 232))
NONCE = "0123456789abcdef0123456789abcdef"


class SpyNonceStore:
    """A memory store that remembers every claim, to prove which checks ran before it."""

    def __init__(self) -> None:
        self.inner = MemoryNonceStore()
        self.claims: list[tuple[str, str, int, int, str | None]] = []

    def claim(self, key_id, nonce, expires_ms, now_ms, *, agent=None, holder=None) -> bool:
        self.claims.append((key_id, nonce, expires_ms, now_ms, agent))
        return self.inner.claim(key_id, nonce, expires_ms, now_ms, agent=agent, holder=holder)


def refused(code: str, envelope: Envelope, keyring: Keyring, nonces: NonceStore, **kw) -> CommandAuthError:
    kw.setdefault("now_ms", NOW_MS)
    with pytest.raises(CommandAuthError) as info:
        verify(envelope, keyring, nonces=nonces, **kw)
    assert info.value.code == code, str(info.value)
    return info.value


# ---------------------------------------------------------------- success


def test_signed_command_verifies(bet_envelope, agent_key, keyring, nonces):
    signed = sign(bet_envelope, agent_key, now_ms=NOW_MS, nonce=NONCE)

    result = verify(signed, keyring, now_ms=NOW_MS + 1_000, nonces=nonces)

    assert result == VerifiedCommand(
        envelope=signed, key_id="deploy-1", scope="agent", expires_ms=NOW_MS + DEFAULT_TTL_MS, nonce=NONCE
    )
    assert re.fullmatch(rf"v1\.deploy-1\.{NOW_MS + DEFAULT_TTL_MS}\.{NONCE}\.[0-9a-f]{{64}}", signed.signature)
    assert bet_envelope.signature is None, "sign returns a copy; the original is unchanged"
    assert msgspec.structs.replace(signed, signature=None) == bet_envelope


def test_signature_survives_the_bus_codec(bet_envelope, agent_key, keyring, nonces):
    signed = sign(bet_envelope, agent_key, now_ms=NOW_MS)
    decoded = codec.decode(codec.encode(signed))
    assert verify(decoded, keyring, now_ms=NOW_MS, nonces=nonces).envelope == signed


def test_signing_is_deterministic_given_the_nonce(bet_envelope, agent_key):
    a = sign(bet_envelope, agent_key, now_ms=NOW_MS, nonce=NONCE)
    b = sign(bet_envelope, agent_key, now_ms=NOW_MS, nonce=NONCE)
    assert a.signature == b.signature


def test_fresh_nonce_per_signature(bet_envelope, agent_key):
    a = sign(bet_envelope, agent_key, now_ms=NOW_MS)
    b = sign(bet_envelope, agent_key, now_ms=NOW_MS)
    assert parse_signature(a.signature).nonce != parse_signature(b.signature).nonce


def test_resigning_replaces_the_old_signature(bet_envelope, agent_key, operator_key, keyring, nonces):
    once = sign(bet_envelope, agent_key, now_ms=NOW_MS)
    twice = sign(once, operator_key, now_ms=NOW_MS)
    assert verify(twice, keyring, now_ms=NOW_MS, nonces=nonces).key_id == "ops-alice"


def test_signed_bytes_cover_key_expiry_nonce_and_envelope(bet_envelope):
    data = signed_bytes(bet_envelope, "deploy-1", 123, NONCE)
    assert data == b"agent-treasury/command/v1\ndeploy-1\n123\n" + NONCE.encode() + b"\n" + canonical_envelope(
        bet_envelope
    )


def test_canonical_bytes_ignore_dict_insertion_order(make_envelope):
    one = make_envelope(CapitalAllocated(buckets={"reserve": 1, "casino": 2}, total=3))
    two = make_envelope(CapitalAllocated(buckets={"casino": 2, "reserve": 1}, total=3))
    assert canonical_envelope(one) == canonical_envelope(two)


def test_canonical_bytes_exclude_the_signature(bet_envelope, agent_key):
    assert canonical_envelope(sign(bet_envelope, agent_key, now_ms=NOW_MS)) == canonical_envelope(bet_envelope)


# ---------------------------------------------------------------- each failure mode


def test_unsigned(bet_envelope, keyring, nonces):
    refused("unsigned", bet_envelope, keyring, nonces)


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "v1",
        "garbage",
        f"v1.deploy-1.{NOW_MS + 1000}.{NONCE}",  # no MAC
        f"v1.deploy-1.{NOW_MS + 1000}.{NONCE}.{'a' * 63}",  # MAC too short
        f"v1.deploy-1.{NOW_MS + 1000}.{NONCE}.{'A' * 64}",  # uppercase hex: one spelling only
        f"v1.deploy-1.0{NOW_MS + 1000}.{NONCE}.{'a' * 64}",  # leading zero
        f"v1.deploy-1.-5.{NONCE}.{'a' * 64}",
        f"v1.deploy-1.{NOW_MS + 1000}.short.{'a' * 64}",  # nonce under 16 chars
        f"v1.deploy.1.{NOW_MS + 1000}.{NONCE}.{'a' * 64}",  # dot in key id
        f"v1.deploy-1.{NOW_MS + 1000}.{NONCE}.{'a' * 64}.",
        f" v1.deploy-1.{NOW_MS + 1000}.{NONCE}.{'a' * 64}",
        f"v1.deploy-1.{NOW_MS + 1000}.{NONCE}.{'a' * 64}\n",
        f"v1.deploy-1.{NOW_MS + 1000}.{NONCE}.{'a' * 64}" + "x" * 300,
        f"v1.déploy.{NOW_MS + 1000}.{NONCE}.{'a' * 64}",
        "v1." + "k" * 65 + f".{NOW_MS + 1000}.{NONCE}.{'a' * 64}",
    ],
)
def test_malformed_signature(signature, bet_envelope, keyring):
    spy = SpyNonceStore()
    refused("malformed_signature", msgspec.structs.replace(bet_envelope, signature=signature), keyring, spy)
    assert spy.claims == []


def test_unsupported_version_is_named(bet_envelope, keyring, nonces):
    signature = f"v2.deploy-1.{NOW_MS + 1000}.{NONCE}.{'a' * 64}"
    err = refused("malformed_signature", msgspec.structs.replace(bet_envelope, signature=signature), keyring, nonces)
    assert "unsupported signature version 'v2'" in str(err)


def test_parse_signature_refuses_non_strings():
    with pytest.raises(CommandAuthError) as info:
        parse_signature(b"v1.x.1.0123456789abcdef.00")
    assert info.value.code == "malformed_signature"


def test_unknown_key(bet_envelope, keyring, nonces):
    stranger = SigningKey(key_id="stranger", secret=OTHER_SECRET, scope="operator")
    err = refused("unknown_key", sign(bet_envelope, stranger, now_ms=NOW_MS), keyring, nonces)
    assert "'stranger'" in str(err)


def test_forged_signature_with_a_guessed_secret(bet_envelope, keyring, nonces):
    forger = SigningKey(key_id="deploy-1", secret=OTHER_SECRET, scope="agent")
    refused("bad_signature", sign(bet_envelope, forger, now_ms=NOW_MS), keyring, nonces)


def test_signature_copied_onto_another_command(make_envelope, agent_key, keyring, nonces):
    signed = sign(make_envelope(Allocate(capital=1)), agent_key, now_ms=NOW_MS)
    other = make_envelope(Allocate(capital=1_000_000_000))
    refused("bad_signature", msgspec.structs.replace(other, signature=signed.signature), keyring, nonces)


@pytest.mark.parametrize(
    "change",
    [
        {"body": PlaceBet(game=CoinFlip(side="tails"), win_prob=0.99, kelly="half")},
        {"body": PlaceBet(game=CoinFlip(side="heads"), win_prob=0.55, kelly="half")},
        {"body": PlaceBet(game=CoinFlip(side="tails"), win_prob=0.55, kelly="full")},
        {"body": PlaceBet(game=CoinFlip(side="tails"), win_prob=0.55, kelly="half", fixed_stake=10)},
        {"agent": "agent-8"},
        {"id": "m0009"},
        {"created_ms": NOW_MS},
        {"causation": "m0000"},
        {"correlation": "m0003"},
    ],
    ids=["win_prob", "side", "kelly", "fixed_stake", "agent", "id", "created_ms", "causation", "correlation"],
)
def test_tampered_after_signing(change, bet_envelope, agent_key, keyring):
    signed = sign(bet_envelope, agent_key, now_ms=NOW_MS)
    spy = SpyNonceStore()
    refused("bad_signature", msgspec.structs.replace(signed, **change), keyring, spy)
    assert spy.claims == []


@pytest.mark.parametrize("part", ["key_id", "expires_ms", "nonce"])
def test_signed_header_fields_cannot_be_swapped(part, bet_envelope, agent_key, operator_key, keyring, nonces):
    signed = sign(bet_envelope, agent_key, now_ms=NOW_MS, nonce=NONCE)
    p = parse_signature(signed.signature)
    swapped = {
        "key_id": p._replace(key_id=operator_key.key_id),  # claim the operator's key with the agent's MAC
        "expires_ms": p._replace(expires_ms=p.expires_ms + 1),  # stretch the lifetime
        "nonce": p._replace(nonce="f" * 32),  # dodge the replay check
    }[part]
    forged = format_signature(swapped.key_id, swapped.expires_ms, swapped.nonce, swapped.mac)
    refused("bad_signature", msgspec.structs.replace(signed, signature=forged), keyring, nonces)


def test_expired(bet_envelope, agent_key, keyring, nonces):
    signed = sign(bet_envelope, agent_key, now_ms=NOW_MS, ttl_ms=1_000)
    refused("expired", signed, keyring, nonces, now_ms=NOW_MS + 1_000)  # expiry is exclusive
    refused("expired", signed, keyring, nonces, now_ms=NOW_MS + 60_000)
    assert verify(signed, keyring, now_ms=NOW_MS + 999, nonces=nonces).nonce


def test_expiry_too_far_in_the_future(bet_envelope, agent_key, keyring, nonces):
    too_long = sign(bet_envelope, agent_key, now_ms=NOW_MS, ttl_ms=MAX_TTL_MS + 1)
    refused("expiry_too_far", too_long, keyring, nonces)
    refused(
        "expiry_too_far", sign(bet_envelope, agent_key, now_ms=NOW_MS, ttl_ms=5_000), keyring, nonces, max_ttl_ms=4_999
    )
    at_limit = sign(bet_envelope, agent_key, now_ms=NOW_MS, ttl_ms=MAX_TTL_MS)
    assert verify(at_limit, keyring, now_ms=NOW_MS, nonces=nonces)


def test_signed_by_a_clock_far_ahead(bet_envelope, agent_key, keyring, nonces):
    """A signer whose clock runs an hour fast produces expiries beyond the allowed window."""
    ahead = sign(bet_envelope, agent_key, now_ms=NOW_MS + 3_600_000)
    refused("expiry_too_far", ahead, keyring, nonces)


def test_replayed(bet_envelope, agent_key, keyring, nonces):
    signed = sign(bet_envelope, agent_key, now_ms=NOW_MS)
    verify(signed, keyring, now_ms=NOW_MS, nonces=nonces)
    refused("replayed", signed, keyring, nonces, now_ms=NOW_MS + 10)
    # The same nonce on a different command of the same key is a replay too.
    other = sign(
        msgspec.structs.replace(bet_envelope, id="m0777"),
        agent_key,
        now_ms=NOW_MS,
        nonce=parse_signature(signed.signature).nonce,
    )
    refused("replayed", other, keyring, nonces)


def test_replayed_through_the_codec(bet_envelope, agent_key, keyring, nonces):
    wire = codec.encode(sign(bet_envelope, agent_key, now_ms=NOW_MS))
    verify(codec.decode(wire), keyring, now_ms=NOW_MS, nonces=nonces)
    refused("replayed", codec.decode(wire), keyring, nonces)


def test_same_nonce_under_different_keys_is_independent(bet_envelope, agent_key, operator_key, keyring, nonces):
    verify(sign(bet_envelope, agent_key, now_ms=NOW_MS, nonce=NONCE), keyring, now_ms=NOW_MS, nonces=nonces)
    verify(sign(bet_envelope, operator_key, now_ms=NOW_MS, nonce=NONCE), keyring, now_ms=NOW_MS, nonces=nonces)


def test_agent_key_cannot_resume(resume_envelope, agent_key, operator_key, keyring, nonces):
    err = refused("insufficient_scope", sign(resume_envelope, agent_key, now_ms=NOW_MS), keyring, nonces)
    assert "needs an operator key" in str(err)
    assert (
        verify(sign(resume_envelope, operator_key, now_ms=NOW_MS), keyring, now_ms=NOW_MS, nonces=nonces).scope
        == "operator"
    )


def test_required_scope_raises_the_bar_but_cannot_lower_it(bet_envelope, resume_envelope, agent_key, keyring, nonces):
    refused(
        "insufficient_scope", sign(bet_envelope, agent_key, now_ms=NOW_MS), keyring, nonces, required_scope="operator"
    )
    refused(
        "insufficient_scope", sign(resume_envelope, agent_key, now_ms=NOW_MS), keyring, nonces, required_scope="agent"
    )


def test_unknown_required_scope_is_a_config_error(bet_envelope, agent_key, keyring, nonces):
    with pytest.raises(ConfigError):
        verify(
            sign(bet_envelope, agent_key, now_ms=NOW_MS), keyring, now_ms=NOW_MS, nonces=nonces, required_scope="root"
        )


def test_operator_key_may_sign_agent_commands(bet_envelope, operator_key, keyring, nonces):
    assert (
        verify(sign(bet_envelope, operator_key, now_ms=NOW_MS), keyring, now_ms=NOW_MS, nonces=nonces).key_id
        == "ops-alice"
    )


def test_agent_key_cannot_inject_internal_messages(make_envelope, agent_key, keyring, nonces):
    fake_event = make_envelope(CapitalAllocated(buckets={"reserve": 10**12}, total=10**12))
    refused("insufficient_scope", sign(fake_event, agent_key, now_ms=NOW_MS), keyring, nonces)


# ---------------------------------------------------------------- check order and nonces


def _failing_variants(bet_envelope, resume_envelope, agent_key):
    """One command per failure mode before the nonce check, all carrying the same nonce."""
    good = sign(bet_envelope, agent_key, now_ms=NOW_MS, nonce=NONCE)
    p = parse_signature(good.signature)
    forger = SigningKey(key_id="deploy-1", secret=OTHER_SECRET, scope="agent")
    return {
        "bad_signature (forged)": sign(bet_envelope, forger, now_ms=NOW_MS, nonce=NONCE),
        "bad_signature (tampered)": msgspec.structs.replace(good, agent="agent-8"),
        "bad_signature (stretched expiry)": msgspec.structs.replace(
            good, signature=format_signature(p.key_id, p.expires_ms + 10, p.nonce, p.mac)
        ),
        "expired": sign(bet_envelope, agent_key, now_ms=NOW_MS - 120_000, nonce=NONCE),
        "expiry_too_far": sign(bet_envelope, agent_key, now_ms=NOW_MS, ttl_ms=MAX_TTL_MS + 1, nonce=NONCE),
        "insufficient_scope": sign(resume_envelope, agent_key, now_ms=NOW_MS, nonce=NONCE),
    }, good


def test_refused_commands_do_not_burn_the_nonce(bet_envelope, resume_envelope, agent_key, keyring):
    variants, good = _failing_variants(bet_envelope, resume_envelope, agent_key)
    spy = SpyNonceStore()
    for label, envelope in variants.items():
        with pytest.raises(CommandAuthError) as info:
            verify(envelope, keyring, now_ms=NOW_MS, nonces=spy)
        assert info.value.code == label.split(" ")[0], label
    assert spy.claims == [], "no check before the last may touch the nonce store"

    assert verify(good, keyring, now_ms=NOW_MS, nonces=spy).nonce == NONCE
    assert spy.claims == [("deploy-1", NONCE, NOW_MS + DEFAULT_TTL_MS, NOW_MS, "agent-7")]


def test_codes_are_distinct_and_errors_are_treasury_errors():
    assert len(set(CODES)) == len(CODES) == 8
    assert issubclass(CommandAuthError, TreasuryError)
    err = CommandAuthError("expired", "too late")
    assert (err.code, err.detail, str(err)) == ("expired", "too late", "command refused (expired): too late")


def test_error_texts_reveal_no_secret_or_expected_mac(bet_envelope, resume_envelope, agent_key, keyring):
    variants, good = _failing_variants(bet_envelope, resume_envelope, agent_key)
    expected_mac = parse_signature(good.signature).mac
    for envelope in variants.values():
        with pytest.raises(CommandAuthError) as info:
            verify(envelope, keyring, now_ms=NOW_MS, nonces=MemoryNonceStore())
        text = str(info.value) + repr(info.value)
        for secret in (AGENT_SECRET, OPERATOR_SECRET):
            assert secret.hex() not in text
        if parse_signature(envelope.signature).mac != expected_mac:
            assert expected_mac not in text


# ---------------------------------------------------------------- scopes per command


@pytest.mark.parametrize(
    ("body", "scope"),
    [
        (Allocate(capital=1), "agent"),
        (PlaceBet(game=Dice()), "agent"),
        (SetRisk(state="PAUSED", reason="r"), "agent"),
        (SetRisk(state="HALTED", reason="r"), "agent"),
        (SetRisk(state="ACTIVE", reason="r"), "operator"),
        (CapitalAllocated(buckets={}, total=0), "operator"),
        (BetRefused(code="c", reason="r"), "operator"),
        (RiskControl(state="ACTIVE", reason="r"), "operator"),
    ],
)
def test_required_scope_for(body, scope):
    assert required_scope_for(body) == scope


@settings(max_examples=100, deadline=None, derandomize=True)
@given(body=st.one_of([st.builds(t) for t in typing.get_args(AnyMessage)]))
def test_only_listed_types_are_open_to_agent_keys(body):
    """Every message type of the schema, whatever it grows to, is operator-only unless the
    catalogue lists it as a command of weaker scope."""
    scope = required_scope_for(body)
    facts = CATALOGUE.get(type(body))
    if facts is None or facts.scope == "operator":
        assert scope == "operator"
    elif isinstance(body, SetRisk):
        assert scope == ("operator" if body.state == "ACTIVE" else "agent")
    elif isinstance(body, Rebalance):
        assert scope == ("operator" if body.trigger not in ACTOR_TRIGGERS | {"manual"} else "agent")
    else:
        assert scope == "agent"


def test_unknown_command_types_need_an_operator():
    """A command type added later (a policy change, say) is operator-only until allowed."""

    class SetPolicy(msgspec.Struct, frozen=True):
        max_bet: int = 0

    assert required_scope_for(SetPolicy()) == "operator"


# ---------------------------------------------------------------- sign() arguments


def test_sign_refuses_bad_arguments(bet_envelope, agent_key):
    with pytest.raises(ConfigError):
        sign(bet_envelope, agent_key, now_ms=NOW_MS, ttl_ms=0)
    with pytest.raises(ConfigError):
        sign(bet_envelope, agent_key, now_ms=NOW_MS, nonce="has.a.dot.in.it.xxxxxxx")
    with pytest.raises(ConfigError):
        sign(bet_envelope, agent_key, now_ms=NOW_MS, nonce="short")


# ---------------------------------------------------------------- byte flips (property)

_SIGNER = SigningKey(key_id="ops-alice", secret=OPERATOR_SECRET, scope="operator")
_RING = Keyring([SigningKey(key_id="deploy-1", secret=AGENT_SECRET, scope="agent"), _SIGNER])

_ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,24}", fullmatch=True)
_games = st.one_of(
    st.builds(CoinFlip, side=st.sampled_from(["heads", "tails"])),
    st.builds(Dice, direction=st.sampled_from(["over", "under"]), threshold=st.integers(1, 99)),
    st.builds(Multiplier, target=st.floats(1.01, 1000.0)),
)
_micros = st.integers(0, 10**15)
_bodies = st.one_of(
    st.builds(
        PlaceBet,
        game=_games,
        win_prob=st.none() | st.floats(0.0, 1.0),
        kelly=st.sampled_from(["full", "half", "quarter"]) | st.floats(0.01, 1.0),
        fixed_stake=st.none() | _micros,
    ),
    st.builds(Allocate, capital=_micros),
    st.builds(
        SetRisk,
        state=st.sampled_from(["ACTIVE", "PAUSED", "HALTED"]),
        reason=st.text(max_size=20),
        until_ms=st.none() | st.integers(0, 2**53),
    ),
    st.builds(CapitalAllocated, buckets=st.dictionaries(st.sampled_from(BUCKETS), _micros), total=_micros),
)
_envelopes = st.builds(
    Envelope,
    id=_ids,
    agent=_ids,
    created_ms=st.integers(0, 2**53),
    body=_bodies,
    causation=st.none() | _ids,
    correlation=st.none() | _ids,
)


def _flip_outcome(wire: bytes, signed: Envelope) -> str:
    """'decode' if the bus cannot decode it, 'refused' if verify refuses it, 'same' if accepted
    (which the callers allow only when the bytes spell the very command that was signed)."""
    try:
        decoded = codec.decode(wire)
    except (MessageDecodeError, UnicodeDecodeError):
        # msgspec 0.22 raises UnicodeDecodeError (not DecodeError) for a string that is not
        # UTF-8; either way the bus cannot decode the entry and nothing reaches verify.
        return "decode"
    spy = SpyNonceStore()
    try:
        verify(decoded, _RING, now_ms=NOW_MS, nonces=spy)
    except CommandAuthError as exc:
        assert spy.claims == [] or exc.code == "replayed"
        return "refused"
    assert canonical_envelope(decoded) == canonical_envelope(signed)
    assert decoded.signature == signed.signature
    return "same"


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(envelope=_envelopes, position=st.integers(0, 2**16), xor=st.integers(1, 255))
def test_flipping_any_byte_of_a_signed_command_is_refused(envelope, position, xor):
    """Any single-byte change is refused by the codec or by verify, unless the changed bytes are
    another msgpack spelling of exactly the signed command (then it is the same command, and its
    nonce still stops a second application)."""
    signed = sign(envelope, _SIGNER, now_ms=NOW_MS, nonce=NONCE)
    wire = bytearray(codec.encode(signed))
    position %= len(wire)
    wire[position] ^= xor
    _flip_outcome(bytes(wire), signed)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(envelope=_envelopes, data=st.data())
def test_changing_any_character_of_the_signature_is_refused(envelope, data):
    signed = sign(envelope, _SIGNER, now_ms=NOW_MS, nonce=NONCE)
    sig = signed.signature
    i = data.draw(st.integers(0, len(sig) - 1))
    ch = data.draw(st.characters().filter(lambda c: c != sig[i]) | st.sampled_from("0123456789abcdef.v-_"))
    if ch == sig[i]:
        return
    spy = SpyNonceStore()
    with pytest.raises(CommandAuthError):
        verify(msgspec.structs.replace(signed, signature=sig[:i] + ch + sig[i + 1 :]), _RING, now_ms=NOW_MS, nonces=spy)
    assert spy.claims == []


@settings(max_examples=200, deadline=None, derandomize=True)
@given(envelope=_envelopes)
def test_any_signed_command_verifies_after_the_codec(envelope):
    signed = sign(envelope, _SIGNER, now_ms=NOW_MS)
    assert (
        verify(codec.decode(codec.encode(signed)), _RING, now_ms=NOW_MS, nonces=MemoryNonceStore()).envelope == signed
    )


def test_every_single_byte_flip_of_one_command(make_envelope):
    """Exhaustive over positions for one command with every field set, two masks each."""
    envelope = make_envelope(
        PlaceBet(game=Multiplier(target=3.5), win_prob=0.42, kelly="quarter", fixed_stake=250_000)
    )
    envelope = msgspec.structs.replace(envelope, causation="m0000")
    signed = sign(envelope, _SIGNER, now_ms=NOW_MS, nonce=NONCE)
    wire = codec.encode(signed)
    outcomes = {"decode": 0, "refused": 0, "same": 0}
    for position in range(len(wire)):
        for xor in (0x01, 0x80, 0xFF):
            mutated = bytearray(wire)
            mutated[position] ^= xor
            outcomes[_flip_outcome(bytes(mutated), signed)] += 1
    assert outcomes["same"] == 0
    assert outcomes["refused"] > 0 and outcomes["decode"] > 0


def test_a_respelled_integer_is_the_same_command(make_envelope):
    """msgpack can spell 300 as uint16 (0xcd) or int16 (0xd1). One changed byte then decodes to
    the same command: the signature covers the command, not one spelling of it, so it verifies,
    and the nonce still refuses it if the original was applied."""
    signed = sign(make_envelope(Allocate(capital=300)), _SIGNER, now_ms=NOW_MS, nonce=NONCE)
    wire = codec.encode(signed)
    assert wire.count(b"\xcd\x01\x2c") == 1
    respelled = wire.replace(b"\xcd\x01\x2c", b"\xd1\x01\x2c")
    assert _flip_outcome(respelled, signed) == "same"
    store = MemoryNonceStore()
    verify(codec.decode(wire), _RING, now_ms=NOW_MS, nonces=store)
    with pytest.raises(CommandAuthError, match="replayed"):
        verify(codec.decode(respelled), _RING, now_ms=NOW_MS, nonces=store)


# ---------------------------------------------------------------- memory nonce store


def test_memory_nonce_store_claims_once_until_expiry():
    store = MemoryNonceStore(grace_ms=100)
    assert isinstance(store, NonceStore)
    assert store.claim("k", NONCE, NOW_MS + 1_000, NOW_MS)
    assert not store.claim("k", NONCE, NOW_MS + 1_000, NOW_MS + 999)
    assert not store.claim("k", NONCE, NOW_MS + 1_000, NOW_MS + 1_100)  # still within the grace
    assert store.claim("k", "another-nonce-000", NOW_MS + 5_000, NOW_MS + 1_101)
    assert len(store) == 1, "the expired record was dropped"
    assert store.claim("k", NONCE, NOW_MS + 3_000, NOW_MS + 1_101)


def test_memory_nonce_store_is_atomic_across_threads():
    store = MemoryNonceStore()
    barrier = threading.Barrier(20)
    wins = []

    def worker():
        barrier.wait()
        wins.append(store.claim("k", NONCE, NOW_MS + 1_000, NOW_MS))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 19 + [True]


def test_redis_errors_are_not_fresh_nonces():
    """An unreachable store must fail the check loudly, never count as a first claim."""
    import redis

    class DownRedis:
        def set(self, *args, **kwargs):
            raise redis.ConnectionError("connection refused")

    store = RedisNonceStore(DownRedis(), "tr")
    with pytest.raises(redis.ConnectionError):
        store.claim("deploy-1", NONCE, NOW_MS + 1_000, NOW_MS, agent="agent-7")


def test_redis_nonce_store_on_fakeredis():
    import fakeredis

    client = fakeredis.FakeRedis()
    store = RedisNonceStore(client, "tr", shards=64, grace_ms=1_000)
    assert store.claim("deploy-1", NONCE, NOW_MS + 5_000, NOW_MS, agent="agent-7")
    assert not store.claim("deploy-1", NONCE, NOW_MS + 5_000, NOW_MS, agent="agent-7")
    assert 5_000 < client.pttl(store.key("deploy-1", NONCE, "agent-7")) <= 6_001


# ---------------------------------------------------------------- keys and keyrings


def test_secrets_never_appear_in_reprs(agent_key, keyring):
    secret_hex = AGENT_SECRET.hex()
    for text in (repr(agent_key), str(agent_key), repr(keyring), str(keyring), f"{agent_key}", repr([agent_key])):
        assert secret_hex not in text
        assert repr(AGENT_SECRET) not in text
    assert repr(agent_key) == "SigningKey(key_id='deploy-1', scope='agent', secret=<hidden>)"
    assert repr(keyring) == "Keyring([deploy-1:agent, ops-alice:operator])"


def test_generate_key():
    key = generate_key("ops-bob", "operator")
    assert (key.key_id, key.scope, len(key.secret)) == ("ops-bob", "operator", 32)
    assert generate_key("ops-bob").secret != key.secret
    assert key.reveal_hex() == key.secret.hex()
    assert generate_key("x").scope == "agent"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key_id": "has.dot", "secret": AGENT_SECRET},
        {"key_id": "", "secret": AGENT_SECRET},
        {"key_id": "k", "secret": b"short"},
        {"key_id": "k", "secret": bytes(65)},
        {"key_id": "k", "secret": AGENT_SECRET.hex()},
        {"key_id": "k", "secret": AGENT_SECRET, "scope": "root"},
    ],
)
def test_signing_key_refuses_bad_values(kwargs):
    with pytest.raises(ConfigError) as info:
        SigningKey(**kwargs)
    assert AGENT_SECRET.hex() not in str(info.value)


def test_scope_covers():
    assert scope_covers("operator", "agent") and scope_covers("operator", "operator") and scope_covers("agent", "agent")
    assert not scope_covers("agent", "operator")


def test_keyring_from_env_string(agent_key, operator_key):
    ring = Keyring.parse_env(f" {agent_key.env_entry()},\n {operator_key.env_entry()} ")
    assert ring.key_ids() == ["deploy-1", "ops-alice"]
    assert ring.get("ops-alice") == operator_key
    assert "deploy-1" in ring and len(ring) == 2
    assert Keyring.parse_env("").key_ids() == []


@pytest.mark.parametrize(
    "value",
    [
        f"deploy-1:agent:{AGENT_SECRET.hex()[:-1]}z",
        f"deploy-1:{AGENT_SECRET.hex()}",
        f"deploy-1:root:{AGENT_SECRET.hex()}",
        f"deploy-1:agent:{AGENT_SECRET.hex()}:extra",
        f"deploy-1:agent:{AGENT_SECRET.hex()[:20]}",
        f"deploy-1:agent:{AGENT_SECRET.hex()},deploy-1:operator:{OPERATOR_SECRET.hex()}",
    ],
)
def test_keyring_env_errors_never_echo_secrets(value):
    with pytest.raises(ConfigError) as info:
        Keyring.parse_env(value)
    text = str(info.value)
    assert "TREASURY_KEYS" in text or "duplicate" in text
    for secret in (AGENT_SECRET, OPERATOR_SECRET):
        assert secret.hex()[:16] not in text


def test_key_file_round_trip_and_permissions(tmp_path, agent_key, operator_key):
    path = tmp_path / "keys.json"
    write_key_file(path, [agent_key, operator_key])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data == {
        "version": 1,
        "keys": [
            {"id": "deploy-1", "scope": "agent", "secret": AGENT_SECRET.hex()},
            {"id": "ops-alice", "scope": "operator", "secret": OPERATOR_SECRET.hex()},
        ],
    }
    ring = Keyring.from_file(path)
    assert list(ring) == [agent_key, operator_key]


def test_add_key_to_file(tmp_path, agent_key, operator_key):
    path = tmp_path / "keys.json"
    add_key_to_file(path, agent_key)
    add_key_to_file(path, operator_key)
    assert Keyring.from_file(path).key_ids() == ["deploy-1", "ops-alice"]
    with pytest.raises(ConfigError, match="duplicate key id 'deploy-1'"):
        add_key_to_file(path, generate_key("deploy-1"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(ConfigError, match="written as JSON"):
        write_key_file(tmp_path / "keys.toml", [agent_key])


def test_toml_key_file(tmp_path, agent_key, operator_key):
    path = tmp_path / "keys.toml"
    path.write_text(
        "version = 1\n\n"
        f'[[keys]]\nid = "deploy-1"\nscope = "agent"\nsecret = "{AGENT_SECRET.hex()}"\n\n'
        f'[[keys]]\nid = "ops-alice"\nscope = "operator"\nsecret = "{OPERATOR_SECRET.hex()}"\n'
    )
    assert list(Keyring.from_file(path)) == [agent_key, operator_key]


@pytest.mark.parametrize(
    "content",
    [
        "{not json " + AGENT_SECRET.hex(),
        json.dumps({"keys": [{"id": "k", "scope": "agent", "secret": AGENT_SECRET.hex() + "zz"}]}),
        json.dumps({"keys": [{"id": "k", "scope": "agent", "secret": AGENT_SECRET.hex(), "note": "x"}]}),
        json.dumps({"keys": [{"id": "k", "secret": AGENT_SECRET.hex()[:10]}]}),
        json.dumps({"keys": [{"scope": "agent", "secret": AGENT_SECRET.hex()}]}),
        json.dumps({"version": 2, "keys": []}),
        json.dumps([AGENT_SECRET.hex()]),
    ],
)
def test_bad_key_files_are_refused_without_echoing_secrets(tmp_path, content):
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        Keyring.from_file(path)
    assert AGENT_SECRET.hex()[:16] not in str(info.value)
    assert str(path) in str(info.value)


def test_missing_key_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read key file"):
        Keyring.from_file(tmp_path / "absent.json")


def test_keyring_from_environment_merges_file_and_inline(tmp_path, agent_key, operator_key):
    path = tmp_path / "keys.json"
    write_key_file(path, [operator_key])
    ring = Keyring.from_env({KEYS_FILE_ENV: str(path), KEYS_ENV: agent_key.env_entry()})
    assert ring.key_ids() == ["deploy-1", "ops-alice"]
    assert Keyring.from_env({}).key_ids() == []
    with pytest.raises(ConfigError, match="duplicate key id 'ops-alice'"):
        Keyring.from_env({KEYS_FILE_ENV: str(path), KEYS_ENV: operator_key.env_entry()})


def test_the_same_delivery_may_claim_again_but_another_may_not():
    """A crash between verifying and committing redelivers the same stream entry: not a replay."""
    store = MemoryNonceStore()
    assert store.claim("k", "n" * 16, NOW_MS + 1000, NOW_MS, holder="1-1")
    assert store.claim("k", "n" * 16, NOW_MS + 1000, NOW_MS, holder="1-1")
    assert not store.claim("k", "n" * 16, NOW_MS + 1000, NOW_MS, holder="2-1")
    assert not store.claim("k", "n" * 16, NOW_MS + 1000, NOW_MS)
