"""Pipelines run as batches (server/src/cmd/batch.rs): consecutive GETs of one
read go to the core as one multi-get, consecutive SETs as one batch write,
consecutive INCR/DECR/INCRBY/DECRBY as one multi-key update. The
same pipelines are sent, byte for byte, to a server that squashes (the default)
and to one started with STATE_SERVE_SQUASH=off; every reply, push and counter must
be the same, errors in the middle of a run included. Where no libstate-specific
error is involved, the replies are also compared with a real redis-server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import STATE_BIN, RedisServer, StateServer, start_state

END = b"pipeline-end-7f3a"


def cmd(*args: bytes | str) -> bytes:
    """One request as a RESP array."""
    parts = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def recv_until_end(s: socket.socket) -> bytes:
    """Everything the server sent up to and including ECHO END's reply."""
    got = b""
    tail = b"$%d\r\n%s\r\n" % (len(END), END)
    while not got.endswith(tail):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    return got


def connect(port: int, name: str | None, token: str | None) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if name is not None and token is not None:
        s.sendall(cmd("AUTH", name, token))
        assert s.recv(5) == b"+OK\r\n"
    return s


def exchange(port: int, pipeline: bytes, name: str | None = "alice", token: str | None = None) -> bytes:
    """Sends `pipeline` (then ECHO END) in one write on a fresh connection and
    returns the replies."""
    with connect(port, name, token) as s:
        s.sendall(pipeline + cmd("ECHO", END))
        return recv_until_end(s)


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StateServer, StateServer]]:
    """Two servers on fresh memfile stores: squashing, and not."""
    squashing = start_state(tmp_path / "on")
    monkeypatch.setenv("STATE_SERVE_SQUASH", "off")
    plain = start_state(tmp_path / "off")
    monkeypatch.delenv("STATE_SERVE_SQUASH")
    yield squashing, plain
    assert squashing.stop() == 0
    assert plain.stop() == 0


def both(pair: tuple[StateServer, StateServer], pipeline: bytes, name: str = "alice") -> bytes:
    on, off = pair
    a = exchange(on.resp_port, pipeline, name, on.tokens[name])  # type: ignore[arg-type]
    b = exchange(off.resp_port, pipeline, name, off.tokens[name])  # type: ignore[arg-type]
    assert a == b, f"squashed:\n{a[:3000]!r}\none by one:\n{b[:3000]!r}"
    return a


def counters(s: StateServer) -> dict[str, int]:
    info = s.client().info("stats")
    return {k: int(info[k]) for k in ("total_commands_processed", "keyspace_hits", "keyspace_misses")}


LONG_KEY = "k" * 1025
BAD_UTF8 = b"\xff\xfe"


def sets_and_gets() -> bytes:
    """Runs of SETs and GETs with errors in the middle of each."""
    p = b""
    for i in range(40):
        p += cmd("SET", f"k{i % 30}", f"v{i}")  # keys repeat inside the run
        if i == 10:
            p += cmd("SET", LONG_KEY, "x")  # a too-long key
        if i == 20:
            p += cmd("SET", BAD_UTF8, "x")  # a key that is not UTF-8
        if i == 25:
            p += cmd("SET", "onlykey")  # wrong arity
    for i in range(50):
        p += cmd("GET", f"k{i}")  # k30..k49 missing
        if i == 5:
            p += cmd("GET", LONG_KEY)
        if i == 15:
            p += cmd("GET", "k1", "k2")  # wrong arity
        if i == 17:
            p += cmd("INCR", "k3")  # not an integer: an error between two runs
        if i == 33:
            p += cmd("GET", BAD_UTF8)
    # Alternating, options that leave the fast path, an inline command, MULTI.
    for i in range(10):
        p += cmd("SET", f"a{i}", str(i)) + cmd("GET", f"a{i}")
    p += cmd("SET", "a1", "x", "NX") + cmd("SET", "a2", "y", "XX") + cmd("GET", "a2")
    p += b"GET a3\r\n" + cmd("GET", "a4") + b"SET a5 inline\r\n" + cmd("GET", "a5")
    p += cmd("MULTI") + cmd("SET", "m", "1") + cmd("GET", "m") + cmd("GET", "a1") + cmd("EXEC")
    p += cmd("GET", "m") + cmd("SET", "m", "2") + cmd("GET", "m")
    p += cmd("CLIENT", "REPLY", "SKIP") + cmd("GET", "a1") + cmd("GET", "a2")
    p += cmd("CLIENT", "REPLY", "OFF") + cmd("SET", "off", "1") + cmd("GET", "off")
    p += cmd("CLIENT", "REPLY", "ON") + cmd("GET", "off")
    return p


def test_squashed_runs_reply_byte_for_byte_as_one_by_one(pair: tuple[StateServer, StateServer]) -> None:
    got = both(pair, sets_and_gets())
    assert got.count(b"+OK\r\n") > 40
    assert b"ERR invalid key" in got and b"wrong number of arguments" in got
    assert b"ERR value is not an integer" in got
    on, off = pair
    assert counters(on) == counters(off)
    # Written the same: every key reads back the same on both.
    keys = [f"k{i}" for i in range(30)] + [f"a{i}" for i in range(10)] + ["m", "off"]
    assert on.client().mget(keys) == off.client().mget(keys)


def test_a_get_run_past_the_flush_mark_stops_and_resumes(pair: tuple[StateServer, StateServer]) -> None:
    """Replies past 64 KiB are written out in the middle of a pipeline; a GET run
    that crosses the mark stops there and the rest is parsed again."""
    setup = b"".join(cmd("SET", f"big{i}", bytes([65 + i % 26]) * (9000 + i)) for i in range(20))
    both(pair, setup)
    p = b"".join(cmd("GET", f"big{i % 25}") for i in range(150))
    p += b"".join(cmd("GET", f"big{i}") + cmd("SET", f"s{i}", "v") for i in range(20))
    got = both(pair, p)
    assert len(got) > 1_000_000


def test_a_run_before_a_protocol_error_replies_first(pair: tuple[StateServer, StateServer]) -> None:
    """A run is answered before the protocol error that closes the connection,
    and its writes are made."""
    on, off = pair
    p = b"".join(cmd("SET", f"p{i}", "v") for i in range(10)) + b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$-5\r\n"
    replies = []
    for s in (on, off):
        with connect(s.resp_port, "alice", s.tokens["alice"]) as c:  # type: ignore[arg-type]
            c.sendall(p)
            got = b""
            while chunk := c.recv(1 << 16):
                got += chunk
            replies.append(got)
    assert replies[0] == replies[1]
    assert replies[0].startswith(b"+OK\r\n" * 10) and b"Protocol error" in replies[0]
    assert on.client().get("p9") == b"v"


def test_quota_errors_in_the_middle_of_a_set_run(pair: tuple[StateServer, StateServer]) -> None:
    """A client with a quota: its SETs are refused part way through a run exactly
    as one by one."""
    for s in pair:
        subprocess.run(
            [str(STATE_BIN), "--store", str(s.store), "client", "quota", "bob", "--max-bytes", "400"],
            check=True,
            capture_output=True,
        )
    p = b"".join(cmd("SET", f"q{i}", "x" * 30) for i in range(20)) + b"".join(cmd("GET", f"q{i}") for i in range(20))
    got = both(pair, p, name="bob")
    assert b"quota" in got.lower()


def test_keyspace_events_of_a_squashed_run_are_the_same(pair: tuple[StateServer, StateServer]) -> None:
    streams = []
    for s in pair:
        c = s.client()
        c.config_set("notify-keyspace-events", "KEAn")
        with connect(s.resp_port, "alice", s.tokens["alice"]) as sub:  # type: ignore[arg-type]
            sub.sendall(cmd("PSUBSCRIBE", "__key*@0__:*"))
            first = b""
            while first.count(b"\r\n") < 4:
                first += sub.recv(1 << 16)
            p = b"".join(cmd("SET", f"e{i % 7}", str(i)) for i in range(20)) + cmd("GET", "e1") + cmd("SET", "last", "1")
            exchange(s.resp_port, p, "alice", s.tokens["alice"])  # type: ignore[arg-type]
            got = first
            while b"__keyevent@0__:set\r\n$4\r\nlast\r\n" not in got:
                got += sub.recv(1 << 16)
            streams.append(got)
    assert streams[0] == streams[1]
    assert streams[0].count(b"__keyevent@0__:new") == 8
    assert streams[0].count(b"__keyevent@0__:set") == 21


def test_runs_reply_as_redis_does(pair: tuple[StateServer, StateServer], real_redis: RedisServer) -> None:
    """Without libstate's own errors (key limits), the replies are Redis's."""
    p = b"".join(cmd("SET", f"r{i % 9}", f"v{i}") for i in range(30))
    p += cmd("SET", "x") + b"".join(cmd("GET", f"r{i}") for i in range(12)) + cmd("GET", "a", "b")
    p += cmd("INCR", "r1") + b"".join(cmd("GET", f"r{i}") + cmd("SET", f"r{i}", "w") for i in range(5))
    got = both(pair, p)
    real = real_redis.client()
    real.flushdb()
    want = exchange(real_redis.port, p, None, None)
    assert got == want


I64_MAX = 9223372036854775807


def counter_runs() -> bytes:
    """Runs of mixed INCR/INCRBY/DECR/DECRBY with repeated keys, errors in the
    middle (a value that is not an integer, an overflow, bad keys, bad amounts),
    expiring keys, and the things that end a run."""
    p = cmd("SET", "text", "abc") + cmd("SET", "big", str(I64_MAX - 2)) + cmd("SET", "e", "5", "EX", "100")
    p += cmd("SET", "neg", str(-I64_MAX + 1))
    for i in range(40):
        key = f"c{i % 6}"  # keys repeat inside the run
        p += [cmd("INCR", key), cmd("INCRBY", key, str(i)), cmd("DECR", key), cmd("DECRBY", key, "3")][i % 4]
        if i == 3:
            p += cmd("INCR", "text")  # not an integer
        if i == 5:
            p += cmd("INCRBY", "big", "1") + cmd("INCR", "big") + cmd("INCR", "big")  # the third overflows
        if i == 7:
            p += cmd("DECRBY", "neg", "1") + cmd("DECR", "neg") + cmd("DECR", "neg")  # the third overflows
        if i == 9:
            p += cmd("INCR", LONG_KEY) + cmd("DECRBY", BAD_UTF8, "1")  # bad keys
        if i == 11:
            p += cmd("INCRBY", "c1", "x") + cmd("INCRBY", "c1", "1.5") + cmd("DECRBY", "c1", "")  # bad amounts
        if i == 13:
            p += cmd("DECRBY", "c2", str(-I64_MAX - 1))  # cannot be negated
            p += cmd("INCRBY", "c2", str(-I64_MAX - 1)) + cmd("INCRBY", "c2", str(I64_MAX))
        if i == 15:
            p += cmd("INCR", "e") + cmd("INCRBY", "e", "10") + cmd("TTL", "e")  # keeps its deadline
        if i == 17:
            p += cmd("INCR", "c3", "c4")  # wrong arity: ends the run
        if i == 19:
            p += cmd("INCRBY", LONG_KEY, "x")  # a bad key goes before a bad amount
        if i == 21:
            p += cmd("GET", "c1") + cmd("SET", "c1", "7") + cmd("INCR", "c1")  # between other runs
        if i == 23:
            p += cmd("INCRBYFLOAT", "c5", "1.5") + cmd("INCR", "c5")  # a float in the middle
        if i == 25:
            p += cmd("DEL", "c0") + cmd("INCR", "c0") + cmd("INCR", "c0")  # created again
        if i == 27:
            p += b"INCR c1\r\n"  # inline: runs alone
        if i == 29:
            p += cmd("EXPIRE", "c2", "50") + cmd("INCR", "c2") + cmd("TTL", "c2")
    p += cmd("MULTI") + cmd("INCR", "m") + cmd("INCR", "m") + cmd("EXEC") + cmd("INCR", "m")
    p += cmd("CLIENT", "REPLY", "SKIP") + cmd("INCR", "m") + cmd("INCR", "m")
    p += cmd("CLIENT", "REPLY", "OFF") + cmd("INCR", "m") + cmd("INCR", "m")
    p += cmd("CLIENT", "REPLY", "ON") + cmd("GET", "m")
    return p


COUNTER_KEYS = ["text", "big", "neg", "e", "m"] + [f"c{i}" for i in range(6)]


def test_counter_runs_reply_byte_for_byte_as_one_by_one(pair: tuple[StateServer, StateServer]) -> None:
    got = both(pair, counter_runs())
    assert b"ERR value is not an integer or out of range" in got
    assert b"ERR increment or decrement would overflow" in got
    assert b"ERR decrement would overflow" in got
    assert b"ERR invalid key" in got and b"wrong number of arguments" in got
    assert got.count(b":") > 60
    on, off = pair
    assert counters(on) == counters(off)
    assert on.client().mget(COUNTER_KEYS) == off.client().mget(COUNTER_KEYS)
    # Deadlines kept the same way (TTL in whole seconds, read at once).
    assert [on.client().ttl(k) for k in COUNTER_KEYS] == [off.client().ttl(k) for k in COUNTER_KEYS]
    assert on.client().get("m") == b"7"


def test_counter_runs_reply_as_redis_does(pair: tuple[StateServer, StateServer], real_redis: RedisServer) -> None:
    """Without libstate's own errors (key limits), a counter pipeline's replies
    are Redis's."""
    p = cmd("SET", "text", "abc") + cmd("SET", "big", str(I64_MAX - 1))
    for i in range(30):
        key = f"r{i % 4}"
        p += [cmd("INCR", key), cmd("INCRBY", key, str(i - 10)), cmd("DECR", key), cmd("DECRBY", key, "2")][i % 4]
        if i == 4:
            p += cmd("INCR", "text") + cmd("INCR", "big") + cmd("INCR", "big") + cmd("INCRBY", "r1", "x")
        if i == 9:
            p += cmd("DECRBY", "r2", str(-I64_MAX - 1)) + cmd("INCR", "r2", "r3")
    p += b"".join(cmd("GET", f"r{i}") for i in range(4))
    got = both(pair, p)
    real = real_redis.client()
    real.flushdb()
    want = exchange(real_redis.port, p, None, None)
    assert got == want


def test_quota_with_a_counter_run(pair: tuple[StateServer, StateServer]) -> None:
    """A client with a quota: its counter runs go one by one, refused part way
    through exactly as one by one."""
    for s in pair:
        subprocess.run(
            [str(STATE_BIN), "--store", str(s.store), "client", "quota", "bob", "--max-records", "3"],
            check=True,
            capture_output=True,
        )
    p = b"".join(cmd("INCRBY", f"q{i % 5}", str(i)) for i in range(20)) + cmd("MGET", *[f"q{i}" for i in range(5)])
    got = both(pair, p, name="bob")
    assert b"quota" in got.lower()


def test_keyspace_events_of_a_counter_run_are_the_same(pair: tuple[StateServer, StateServer]) -> None:
    streams = []
    for s in pair:
        c = s.client()
        c.config_set("notify-keyspace-events", "KEAn")
        with connect(s.resp_port, "alice", s.tokens["alice"]) as sub:  # type: ignore[arg-type]
            sub.sendall(cmd("PSUBSCRIBE", "__key*@0__:*"))
            first = b""
            while first.count(b"\r\n") < 4:
                first += sub.recv(1 << 16)
            p = cmd("SET", "t", "x")
            p += b"".join([cmd("INCR", f"n{i % 3}"), cmd("DECRBY", f"n{i % 3}", "2")][i % 2] for i in range(12))
            p += cmd("INCR", "t") + cmd("INCR", "n0") + cmd("DEL", "n1") + cmd("INCR", "n1") + cmd("INCR", "n1")
            p += cmd("SET", "last", "1")
            exchange(s.resp_port, p, "alice", s.tokens["alice"])  # type: ignore[arg-type]
            got = first
            while b"__keyevent@0__:set\r\n$4\r\nlast\r\n" not in got:
                got += sub.recv(1 << 16)
            streams.append(got)
    assert streams[0] == streams[1]
    assert streams[0].count(b"__keyevent@0__:new") == 6
    assert streams[0].count(b"__keyevent@0__:incrby") == 15
