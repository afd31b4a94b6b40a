import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messages.codec import decode, decode_entry, encode
from messages.envelope import seeded_ids, wrap
from messages.errors import MessageDecodeError
from messages.schema import BetRefused, CoinFlip, Dice, Multiplier, PlaceBet
from runtime.keys import Keys, shard_of


def envelope(**kw):
    return wrap(PlaceBet(game=Dice(direction="under", threshold=30), win_prob=0.4, **kw), agent="ag-1", now_ms=5,
                new_id=seeded_ids(3))


def test_round_trip_keeps_every_field():
    env = envelope(fixed_stake=1_000_000)
    assert decode(encode(env)) == env
    assert env.type == "PlaceBet" and env.correlation == env.id


def test_caused_messages_inherit_the_correlation():
    cmd = envelope()
    ev = wrap(BetRefused(code="no_edge", reason="x"), agent="ag-1", now_ms=6, new_id=seeded_ids(4), cause=cmd)
    assert ev.causation == cmd.id and ev.correlation == cmd.correlation


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.update(body={**d["body"], "type": "Nope"}), "Invalid value 'Nope'"),
    (lambda d: d.update(body={**d["body"], "fixed_stake": -5}), "fixed_stake"),
    (lambda d: d.update(body={**d["body"], "win_prob": 1.5}), "win_prob"),
    (lambda d: d.update(body={**d["body"], "extra": 1}), "unknown field"),
    (lambda d: d.update(agent="bad agent!"), "agent"),
    (lambda d: d.pop("id"), "missing required field `id`"),
    (lambda d: d.update(body={**d["body"], "game": {"game": "roulette"}}), "roulette"),
])
def test_bad_envelopes_raise_one_clear_error(mutate, words):
    data = msgspec.to_builtins(envelope())
    mutate(data)
    with pytest.raises(MessageDecodeError, match=words):
        decode(msgspec.msgpack.encode(data))


def test_nan_amounts_cannot_be_encoded_into_money_fields():
    data = msgspec.to_builtins(envelope())
    data["body"]["fixed_stake"] = float("nan")
    with pytest.raises(MessageDecodeError):
        decode(msgspec.msgpack.encode(data))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_another_exception(data):
    try:
        decode(data)
    except MessageDecodeError:
        pass


@settings(deadline=None)  # a deep example can take 250 ms on a loaded machine: no timing check here
@given(depth=st.integers(min_value=1, max_value=20_000),
       opener=st.sampled_from([b"\x91", b"\xdc\x00\x01", b"\x81\xa1k"]), before_tag=st.booleans())
def test_any_nesting_depth_is_a_decode_error_never_a_recursion_error(depth, opener, before_tag):
    """Issue 9, case 2: arrays or maps nested to any depth, in the body before or after its `type`
    tag, give `MessageDecodeError` (msgspec raises RecursionError past its limit)."""
    enc = msgspec.msgpack.Encoder()
    nested = opener * depth + b"\x90"
    tag = enc.encode("type") + enc.encode("PlaceBet")
    body = b"\x82" + (enc.encode("x") + nested + tag if before_tag else tag + enc.encode("x") + nested)
    data = (b"\x84" + enc.encode("id") + enc.encode("m1") + enc.encode("agent") + enc.encode("a")
            + enc.encode("created_ms") + enc.encode(1) + enc.encode("body") + body)
    with pytest.raises(MessageDecodeError):
        decode(data)


def test_decode_entry_names_the_missing_field():
    with pytest.raises(MessageDecodeError, match="no 'm' field"):
        decode_entry({b"x": b"1"})


def test_shards_are_stable_and_keys_share_one_hash_tag():
    import zlib
    assert shard_of("agent-42", 64) == zlib.crc32(b"agent-42") % 64
    keys = Keys("tr", 64)
    s = keys.shard("agent-42")
    tag = f"{{{s}}}"
    for key in (
        keys.events("agent-42"),
        keys.risk("agent-42"),
        keys.ledger("agent-42"),
        keys.applied("agent-42"),
        keys.reservations("agent-42"),
        keys.agent_commands("agent-42", "casino"),
        keys.control(s),
        keys.dead(s),
    ):
        assert key.startswith("tr:") and tag in key


def test_shard_distribution_is_roughly_even():
    counts = [0] * 16
    for i in range(16_000):
        counts[shard_of(f"agent-{i}", 16)] += 1
    assert min(counts) > 800 and max(counts) < 1200


def test_game_unions_round_trip():
    for game in (CoinFlip(side="tails"), Dice(direction="over", threshold=75), Multiplier(target=3.5)):
        env = wrap(PlaceBet(game=game), agent="a", now_ms=0, new_id=seeded_ids(1))
        assert decode(encode(env)).body.game == game
