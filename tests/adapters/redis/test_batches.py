"""sidecar/adapters/redis/batches.py: the store's packing (hiredis's, called directly) writes
the bytes redis-py's own pure-Python packer writes, the protocol as redis-py speaks it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

from sidecar.adapters.redis.batches import pack_commands
from sidecar.adapters.redis.pipeline import Command

# What a redis-py connection without hiredis packs with; the store's encoding (UTF-8, strict).
# (redis-py leaves both untyped.)
ENCODER = Encoder("utf-8", "strict", decode_responses=False)  # type: ignore[no-untyped-call]
REFERENCE = PythonRespSerializer(6000, ENCODER.encode)


def reference(commands: list[Command]) -> bytes:
    parts: list[bytes] = [part for command in commands
                          for part in REFERENCE.pack(*command)]  # type: ignore[no-untyped-call]
    return b"".join(parts)


COMMANDS: list[list[Command]] = [
    [("SET", "token-sidecar:dpop:ab12", b"1", "NX", "PX", 60000)],
    [("GET", "k")],
    [("SET", "p:refresh:00", b"bound-to-jkt", "PX", 2_592_000_000), ("GET", "x")],
    [("SET", "préfixe:é", "é".encode(), "PX", 1)],  # a non-ASCII key prefix: UTF-8
    [("SET", "k", b"", "PX", 1)],  # an empty value
    [("SET", "k", b"\r\n$3\r\n", "PX", 1)],  # framing in a value stays data
    [("DEL", "a", "b", "c"), ("PING",)],
]


@pytest.mark.parametrize("commands", COMMANDS)
def test_the_bytes_are_redis_pys(commands: list[Command]) -> None:
    assert pack_commands(commands) == reference(commands)


@given(st.lists(st.tuples(
    st.sampled_from(["SET", "GET", "DEL"]),
    st.one_of(st.text(), st.binary(), st.integers(min_value=0, max_value=2**63 - 1)),
    st.one_of(st.text(), st.binary(), st.integers(min_value=-2**63, max_value=2**63 - 1))),
    min_size=1, max_size=5))
def test_any_command_packs_as_redis_py_packs_it(commands: list[Command]) -> None:
    try:
        expected = reference(commands)
    except UnicodeEncodeError:  # a lone surrogate: redis-py refuses it, so must the store
        with pytest.raises(UnicodeEncodeError):
            pack_commands(commands)
        return
    assert pack_commands(commands) == expected
