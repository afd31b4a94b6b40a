"""`runtime.packing.FastPacker` sends what redis-py's own packer sends, and refuses what it refuses."""

from __future__ import annotations

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.connection import PythonRespSerializer
from redis.exceptions import DataError

from runtime.packing import FastConnection, FastPacker, FastUnixConnection
from runtime.redis_client import make_client

# the oracle: redis-py's pure-Python packer, which does not go through hiredis at all
_encoder = redis.Connection().encoder
ORACLE = PythonRespSerializer(6000, _encoder.encode)
PACKER = FastPacker(redis.Connection()._command_packer)


def _bytes(chunks) -> bytes:
    return b"".join(bytes(c) for c in chunks)


argument = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.binary(max_size=8).map(bytearray),
    st.binary(max_size=8).map(memoryview),
)
name = st.sampled_from(["EVALSHA", b"XADD", "HGETALL", "CLIENT SETNAME", b"CONFIG GET", "XINFO STREAM"])


@settings(max_examples=400, deadline=None)
@given(name, st.lists(argument, max_size=12))
def test_the_same_bytes_as_redis_py(command, args):
    assert _bytes(PACKER.pack(command, *args)) == _bytes(ORACLE.pack(command, *args))


@pytest.mark.parametrize("bad", [True, False, None, object(), [1], {"a": 1}])
def test_what_redis_py_refuses_is_refused(bad):
    with pytest.raises(DataError):
        ORACLE.pack("SET", "k", bad)
    with pytest.raises(DataError):
        PACKER.pack("SET", "k", bad)


def test_clients_made_from_urls_pack_with_it(redis_url):
    client = make_client(redis_url)
    assert client.connection_pool.connection_class is FastConnection
    connection = client.connection_pool.get_connection()
    try:
        assert isinstance(connection._command_packer, FastPacker)
        # and a real server reads it: every argument type, a reply of each
        key = f"pack-test:{id(connection)}"
        client.delete(key)
        client.hset(key, mapping={"s": "ü", "b": b"\x00\xff", "i": -(2**63), "f": 0.1})
        assert client.hgetall(key) == {b"s": "ü".encode(), b"b": b"\x00\xff", b"i": str(-(2**63)).encode(),
                                       b"f": b"0.1"}
        client.delete(key)
    finally:
        client.connection_pool.release(connection)


def test_a_connection_class_given_is_kept():
    client = make_client("unix:///tmp/nowhere.sock")
    assert client.connection_pool.connection_class is FastUnixConnection
    client = make_client("redis://127.0.0.1:1/0", connection_class=redis.Connection)
    assert client.connection_pool.connection_class is redis.Connection
