"""Every command and option, sent to `state serve` and to a real redis-server 7:
the replies must be the same wherever Redis's semantics apply."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from conftest import RedisServer, StateServer

Cmd = tuple[Any, ...]

# Scripts run in order from an empty key space; every reply is compared.
SCRIPTS: dict[str, list[Cmd]] = {
    "get_set": [
        ("GET", "k"),
        ("SET", "k", "v"),
        ("GET", "k"),
        ("SET", "k", b"\x00\xff\r\n bin"),
        ("GET", "k"),
        ("SET", "k", ""),
        ("GET", "k"),
        ("STRLEN", "k"),
        ("STRLEN", "missing"),
        ("TYPE", "k"),
        ("TYPE", "missing"),
    ],
    "set_options": [
        ("SET", "k", "v", "NX"),
        ("SET", "k", "w", "NX"),
        ("GET", "k"),
        ("SET", "k", "w", "XX"),
        ("SET", "n", "w", "XX"),
        ("GET", "n"),
        ("SET", "k", "x", "GET"),
        ("SET", "n", "x", "GET"),
        ("SET", "n", "y", "NX", "GET"),
        ("SET", "n", "z", "XX", "GET"),
        ("SET", "k", "v", "NX", "XX"),
        ("SET", "k", "v", "EX", "0"),
        ("SET", "k", "v", "EX", "-5"),
        ("SET", "k", "v", "EX", "abc"),
        ("SET", "k", "v", "EX"),
        ("SET", "k", "v", "EX", "10", "PX", "100"),
        ("SET", "k", "v", "FOO"),
        ("SET", "k", "v", "EX", "1000"),
        ("TTL", "k"),
        ("SET", "k", "v2", "KEEPTTL"),
        ("TTL", "k"),
        ("GET", "k"),
        ("SET", "k", "v", "EX", "10", "KEEPTTL"),
        ("SET", "k", "v3"),
        ("TTL", "k"),
        ("SET", "k", "v", "PX", "1000000"),
        ("TTL", "k"),
        ("SET", "k", "v", "EXAT", "1"),
        ("GET", "k"),
        ("SET", "k", "v", "PXAT", "99999999999999"),
        ("TTL", "missing"),
        ("SET", "k", "v", "EX", "9223372036854775807"),
    ],
    "setnx_setex_getset": [
        ("SETNX", "a", "1"),
        ("SETNX", "a", "2"),
        ("GET", "a"),
        ("SETEX", "b", "1000", "x"),
        ("TTL", "b"),
        ("SETEX", "b", "0", "x"),
        ("SETEX", "b", "-1", "x"),
        ("SETEX", "b", "x", "x"),
        ("PSETEX", "c", "1000000", "y"),
        ("TTL", "c"),
        ("PSETEX", "c", "0", "y"),
        ("GETSET", "a", "3"),
        ("GETSET", "new", "4"),
        ("TTL", "b"),
        ("GETSET", "b", "5"),
        ("TTL", "b"),
        ("GETDEL", "a"),
        ("GETDEL", "a"),
        ("EXISTS", "a"),
    ],
    "getex": [
        ("SET", "k", "v"),
        ("GETEX", "k"),
        ("GETEX", "k", "EX", "1000"),
        ("TTL", "k"),
        ("GETEX", "k", "PERSIST"),
        ("TTL", "k"),
        ("GETEX", "k", "PX", "1000000"),
        ("TTL", "k"),
        ("GETEX", "k", "EX", "0"),
        ("GETEX", "k", "FOO"),
        ("GETEX", "k", "EX", "1", "PERSIST"),
        ("GETEX", "missing", "EX", "10"),
        ("GETEX", "k", "EXAT", "1"),
        ("GET", "k"),
    ],
    "multi_key": [
        ("MSET", "a", "1", "b", "2", "c", "3"),
        ("MGET", "a", "b", "missing", "c"),
        ("MSET", "a"),
        ("MSET", "a", "1", "b"),
        ("MSETNX", "x", "1", "a", "9"),
        ("GET", "x"),
        ("GET", "a"),
        ("MSETNX", "x", "1", "y", "2"),
        ("MGET", "x", "y"),
        ("EXISTS", "a", "a", "missing", "b"),
        ("DEL", "a", "a", "missing", "b"),
        ("UNLINK", "c", "x"),
        ("DBSIZE",),
        ("KEYS", "*"),
    ],
    "counters": [
        ("INCR", "n"),
        ("INCR", "n"),
        ("INCRBY", "n", "10"),
        ("DECR", "n"),
        ("DECRBY", "n", "5"),
        ("GET", "n"),
        ("INCRBY", "n", "abc"),
        ("INCRBY", "n", "1.5"),
        ("INCRBY", "n", " 1"),
        ("INCRBY", "n", "+1"),
        ("INCRBY", "n", "01"),
        ("SET", "s", "hello"),
        ("INCR", "s"),
        ("SET", "big", "9223372036854775807"),
        ("INCR", "big"),
        ("SET", "small", "-9223372036854775808"),
        ("DECR", "small"),
        ("DECRBY", "n", "-9223372036854775808"),
        ("SET", "sp", " 1"),
        ("INCR", "sp"),
        ("SET", "e", "v", "EX", "1000"),
        ("SET", "e", "5", "KEEPTTL"),
        ("INCR", "e"),
        ("TTL", "e"),
        ("APPEND", "e", "0"),
        ("TTL", "e"),
        ("GET", "e"),
        ("APPEND", "new", "abc"),
        ("APPEND", "new", "def"),
        ("GET", "new"),
    ],
    "expire": [
        ("SET", "k", "v"),
        ("EXPIRE", "k", "1000"),
        ("TTL", "k"),
        ("EXPIRE", "missing", "10"),
        ("PERSIST", "k"),
        ("PERSIST", "k"),
        ("PERSIST", "missing"),
        ("TTL", "k"),
        ("EXPIRE", "k", "100", "XX"),
        ("EXPIRE", "k", "100", "NX"),
        ("EXPIRE", "k", "200", "NX"),
        ("TTL", "k"),
        ("EXPIRE", "k", "50", "GT"),
        ("EXPIRE", "k", "500", "GT"),
        ("TTL", "k"),
        ("EXPIRE", "k", "600", "LT"),
        ("EXPIRE", "k", "300", "LT"),
        ("TTL", "k"),
        ("EXPIRE", "k", "300", "XX"),
        ("EXPIRE", "k", "10", "NX", "XX"),
        ("EXPIRE", "k", "10", "GT", "LT"),
        ("EXPIRE", "k", "10", "FOO"),
        ("EXPIRE", "k", "abc"),
        ("SET", "p", "v"),
        ("EXPIRE", "p", "10", "GT"),
        ("EXPIRE", "p", "10", "LT"),
        ("TTL", "p"),
        ("PEXPIRE", "p", "1000000"),
        ("TTL", "p"),
        ("EXPIREAT", "p", "99999999999"),
        ("EXPIRETIME", "p"),
        ("PEXPIREAT", "p", "99999999999000"),
        ("PEXPIRETIME", "p"),
        ("EXPIRETIME", "missing"),
        ("SET", "q", "v"),
        ("EXPIRETIME", "q"),
        ("PTTL", "q"),
        ("PTTL", "missing"),
        ("EXPIRE", "q", "0"),
        ("EXISTS", "q"),
        ("SET", "q", "v"),
        ("EXPIRE", "q", "-10"),
        ("GET", "q"),
        ("SET", "q", "v"),
        ("EXPIREAT", "q", "1"),
        ("GET", "q"),
        ("EXPIRE", "p", "9223372036854775807"),
    ],
    "keys_flush": [
        ("MSET", "user:1", "a", "user:2", "b", "user:10", "c", "other", "d", "h?llo", "e"),
        ("KEYS", "user:*"),
        ("KEYS", "user:?"),
        ("KEYS", "*1*"),
        ("KEYS", "user:[12]"),
        ("KEYS", "user:[^1]"),
        ("KEYS", "h\\?llo"),
        ("KEYS", "nothing*"),
        ("DBSIZE",),
        ("FLUSHDB",),
        ("DBSIZE",),
        ("KEYS", "*"),
        ("FLUSHDB", "ASYNC"),
        ("FLUSHDB", "FOO"),
    ],
    "connection": [
        ("PING",),
        ("PING", "hello"),
        ("PING", "a", "b"),
        ("ECHO", "hi"),
        ("ECHO",),
        ("SELECT", "0"),
        ("SELECT", "x"),
        ("CLIENT", "SETNAME", "my-app"),
        ("CLIENT", "GETNAME"),
        ("CLIENT", "SETNAME", "bad name"),
        # HELLO's SETNAME is checked as CLIENT SETNAME's. (libstate checks it before
        # AUTH runs; Redis 7.0 authenticates first, so that order is not compared.)
        ("HELLO", "2", "SETNAME", "bad name"),
        ("HELLO", "2", "SETNAME", "a\nb"),
        ("CLIENT", "GETNAME"),
        ("GET",),
        ("GET", "a", "b"),
        ("NOSUCHCOMMAND", "a"),
        ("MULTI",),
        ("SET", "a", "1"),
        ("INCR", "a"),
        ("GET", "a"),
        ("EXEC",),
        ("EXEC",),
        ("DISCARD",),
        ("MULTI",),
        ("MULTI",),
        ("SET", "a", "2"),
        ("DISCARD",),
        ("GET", "a"),
        ("MULTI",),
        ("SET", "a", "3"),
        ("NOSUCHCOMMAND",),
        ("EXEC",),
        ("GET", "a"),
        ("MULTI",),
        ("SET", "s", "text"),
        ("INCR", "s"),
        ("SET", "t", "1"),
        ("EXEC",),
        ("GET", "t"),
    ],
    # Issue 25's commands, each with its edge cases and errors.
    "ranges": [
        ("SETRANGE", "r", "0", ""),
        ("EXISTS", "r"),
        ("SETRANGE", "r", "5", "hello"),
        ("GET", "r"),
        ("SETRANGE", "r", "0", "HE"),
        ("SETRANGE", "r", "-1", "x"),
        ("SETRANGE", "r", "x", "x"),
        ("GETRANGE", "r", "0", "-1"),
        ("GETRANGE", "r", "-3", "-1"),
        ("GETRANGE", "r", "5", "2"),
        ("GETRANGE", "r", "-1", "-5"),
        ("GETRANGE", "r", "0", "4294967297"),
        ("GETRANGE", "r", "-9223372036854775808", "-9223372036854775807"),
        ("GETRANGE", "missing", "0", "-1"),
        ("GETRANGE", "r", "a", "1"),
        ("SUBSTR", "r", "1", "3"),
        ("SET", "n", "1234"),
        ("SETRANGE", "n", "1", "x"),
        ("GET", "n"),
        ("SET", "e", "v", "EX", "100"),
        ("SETRANGE", "e", "1", "w"),
        ("TTL", "e"),
        ("SET", "a", "ohmytext"),
        ("SET", "b", "mynewtext"),
        ("LCS", "a", "b"),
        ("LCS", "a", "b", "LEN"),
        ("LCS", "a", "b", "IDX"),
        ("LCS", "a", "b", "IDX", "WITHMATCHLEN"),
        ("LCS", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"),
        ("LCS", "a", "b", "IDX", "MINMATCHLEN", "-4"),
        ("LCS", "a", "b", "LEN", "IDX"),
        ("LCS", "a", "b", "FOO"),
        ("LCS", "a", "b", "MINMATCHLEN"),
        ("LCS", "a", "missing"),
        ("LCS", "missing", "missing2", "IDX"),
    ],
    "bits": [
        ("SETBIT", "b", "7", "1"),
        ("GET", "b"),
        ("SETBIT", "b", "7", "0"),
        ("SETBIT", "b", "100", "1"),
        ("STRLEN", "b"),
        ("GETBIT", "b", "100"),
        ("GETBIT", "b", "101"),
        ("GETBIT", "b", "99999"),
        ("GETBIT", "missing", "0"),
        ("SETBIT", "b", "-1", "1"),
        ("SETBIT", "b", "4294967296", "1"),
        ("SETBIT", "b", "1", "2"),
        ("SETBIT", "b", "1", "-1"),
        ("SETBIT", "b", "1", "01"),
        ("GETBIT", "b", "x"),
        ("SET", "fb", "foobar"),
        ("BITCOUNT", "fb"),
        ("BITCOUNT", "fb", "0", "0"),
        ("BITCOUNT", "fb", "1", "1"),
        ("BITCOUNT", "fb", "1", "1", "BYTE"),
        ("BITCOUNT", "fb", "5", "30", "BIT"),
        ("BITCOUNT", "fb", "-1", "-2"),
        ("BITCOUNT", "fb", "0"),
        ("BITCOUNT", "fb", "0", "1", "FOO"),
        ("BITCOUNT", "fb", "a", "1"),
        ("BITCOUNT", "missing", "a", "b"),
        ("SET", "p", b"\x00\xff\xf0"),
        ("BITPOS", "p", "0"),
        ("BITPOS", "p", "1"),
        ("BITPOS", "p", "1", "2"),
        ("BITPOS", "p", "1", "2", "-1", "BYTE"),
        ("BITPOS", "p", "1", "7", "15", "BIT"),
        ("BITPOS", "p", "0", "1", "-1", "BIT"),
        ("BITPOS", "p", "1", "-1"),
        ("BITPOS", "p", "2"),
        ("BITPOS", "p", "1", "x"),
        ("BITPOS", "missing", "0"),
        ("BITPOS", "missing", "1", "x"),
        ("SET", "ff", b"\xff\xff\xff"),
        ("BITPOS", "ff", "0"),
        ("BITPOS", "ff", "0", "0", "-1"),
        ("SET", "x1", b"\x0f\xf0"),
        ("SET", "x2", b"\xff"),
        ("BITOP", "AND", "d", "x1", "x2"),
        ("GET", "d"),
        ("BITOP", "OR", "d", "x1", "missing"),
        ("GET", "d"),
        ("BITOP", "XOR", "d", "x1", "x2", "fb"),
        ("GET", "d"),
        ("BITOP", "NOT", "d", "x1"),
        ("GET", "d"),
        ("BITOP", "NOT", "d", "x1", "x2"),
        ("BITOP", "FOO", "d", "x1"),
        ("BITOP", "AND", "d", "missing", "missing2"),
        ("EXISTS", "d"),
    ],
    "incrbyfloat": [
        ("INCRBYFLOAT", "f", "1"),
        ("INCRBYFLOAT", "f", "0.25"),
        ("INCRBYFLOAT", "f", "-1.1"),
        ("INCRBYFLOAT", "f", "3.0e3"),
        ("INCRBYFLOAT", "f", "1e20"),
        ("INCRBYFLOAT", "f", "1.5e-5"),
        ("SET", "g", "10.5"),
        ("INCRBYFLOAT", "g", "0.1"),
        ("INCRBYFLOAT", "g", "12345678.9"),
        ("INCRBYFLOAT", "g", "-12345678.9"),
        ("INCRBYFLOAT", "g", "1e300"),
        ("INCRBYFLOAT", "g", "-1e300"),
        ("SET", "h", "17179869184"),
        ("INCRBYFLOAT", "h", "1.5"),
        ("SET", "z", "0.024390243902439025"),
        ("INCRBYFLOAT", "z", "-0.024390243902439025"),
        ("INCRBYFLOAT", "z", "+inf"),
        ("INCRBYFLOAT", "z", "nan"),
        ("INCRBYFLOAT", "z", " 1"),
        ("INCRBYFLOAT", "z", "1 "),
        ("INCRBYFLOAT", "z", "abc"),
        ("INCRBYFLOAT", "z", "1e5000"),
        ("SET", "s", "text"),
        ("INCRBYFLOAT", "s", "1"),
        ("SET", "t", "5", "EX", "100"),
        ("INCRBYFLOAT", "t", "0.5"),
        ("TTL", "t"),
    ],
    "key_commands": [
        ("SET", "a", "1", "EX", "100"),
        ("SET", "b", "2"),
        ("RENAME", "a", "c"),
        ("GET", "c"),
        ("TTL", "c"),
        ("EXISTS", "a"),
        ("RENAME", "missing", "x"),
        ("RENAME", "c", "c"),
        ("RENAMENX", "c", "c"),
        ("RENAMENX", "c", "b"),
        ("RENAMENX", "c", "d"),
        ("RENAMENX", "missing", "x"),
        ("RENAME", "d", "b"),
        ("GET", "b"),
        ("TTL", "b"),
        ("COPY", "b", "e"),
        ("TTL", "e"),
        ("COPY", "b", "e"),
        ("COPY", "b", "e", "REPLACE"),
        ("COPY", "b", "e", "DB", "0", "REPLACE"),
        ("COPY", "b", "e", "DB", "x"),
        ("COPY", "b", "b"),
        ("COPY", "missing", "f"),
        ("COPY", "b", "f", "FOO"),
        ("TOUCH", "b", "e", "missing"),
        ("DEL", "e"),
        ("RANDOMKEY",),
        ("OBJECT", "ENCODING", "b"),
        ("SET", "i", "12345"),
        ("OBJECT", "ENCODING", "i"),
        ("SET", "long", "x" * 100),
        ("OBJECT", "ENCODING", "long"),
        ("OBJECT", "ENCODING", "missing"),
        ("OBJECT", "REFCOUNT", "long"),
        ("OBJECT", "FREQ", "long"),
        ("OBJECT", "FOO", "b"),
        ("OBJECT", "ENCODING"),
        ("FLUSHALL",),
        ("RANDOMKEY",),
        ("FLUSHALL", "SYNC"),
        ("FLUSHALL", "FOO"),
    ],
    "transactions": [
        ("SET", "w", "1"),
        ("WATCH", "w"),
        ("SET", "w", "2"),
        ("MULTI",),
        ("INCR", "w"),
        ("EXEC",),
        ("GET", "w"),
        ("WATCH", "w"),
        ("MULTI",),
        ("WATCH", "w"),
        ("PING",),
        ("ECHO", "e"),
        ("INCR", "w"),
        ("EXEC",),
        ("WATCH", "w", "missing"),
        ("UNWATCH",),
        ("SET", "w", "10"),
        ("MULTI",),
        ("INCR", "w"),
        ("EXEC",),
        ("WATCH", "w"),
        ("MULTI",),
        ("UNWATCH",),
        ("EXEC",),
        ("MULTI",),
        ("NOSUCH",),
        ("SET", "w", "0"),
        ("INCR", "w"),
        ("EXEC",),
        ("WATCH", "w"),
        ("DISCARD",),
        ("UNWATCH",),
        ("WATCH",),
    ],
    "notify_config": [
        ("CONFIG", "SET", "notify-keyspace-events", "KEA"),
        ("CONFIG", "GET", "notify-keyspace-events"),
        ("CONFIG", "SET", "notify-keyspace-events", "gKE"),
        ("CONFIG", "GET", "notify-keyspace-events"),
        ("CONFIG", "SET", "notify-keyspace-events", "$lshzxeKE"),
        ("CONFIG", "GET", "notify-keyspace-events"),
        ("CONFIG", "SET", "notify-keyspace-events", "Q"),
        ("CONFIG", "SET", "notify-keyspace-events", ""),
        ("CONFIG", "GET", "notify-keyspace-events"),
    ],
}


def normal(cmd: Cmd, reply: Any) -> Any:
    """Errors as (error, message); KEYS sorted (Redis returns them unordered,
    libstate in key order)."""
    if isinstance(reply, Exception):
        return ("error", str(reply))
    if isinstance(reply, list):
        items = [normal(cmd, x) for x in reply]
        return sorted(items) if cmd[0] == "KEYS" else items
    return reply


def run(client: redis.Redis, cmds: list[Cmd]) -> list[Any]:
    out: list[Any] = []
    for c in cmds:
        try:
            out.append(normal(c, client.execute_command(*c)))
        except redis.ResponseError as e:
            out.append(("error", str(e)))
    return out


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_replies_match_redis(name: str, server: StateServer, real_redis: RedisServer) -> None:
    # One connection each, so MULTI state carries from command to command.
    rc = real_redis.client(single_connection_client=True)
    rc.flushdb()
    sc = server.client(single_connection_client=True)
    want = run(rc, SCRIPTS[name])
    got = run(sc, SCRIPTS[name])
    for cmd, w, g in zip(SCRIPTS[name], want, got):
        assert g == w, f"{cmd}: redis {w!r}, libstate {g!r}"


def test_resp3_replies_match_redis(server: StateServer, real_redis: RedisServer) -> None:
    cmds: list[Cmd] = [("SET", "k", "v"), ("GET", "k"), ("GET", "missing"), ("MGET", "k", "missing"), ("TTL", "k")]
    r = real_redis.client(protocol=3)
    r.flushdb()
    s = server.client(protocol=3)
    assert run(s, cmds) == run(r, cmds)
    hello = s.execute_command("HELLO", "3")
    assert hello[b"proto"] == 3 and hello[b"server"] == b"redis"


def test_ttl_in_milliseconds_matches_within_the_elapsed_time(server: StateServer, real_redis: RedisServer) -> None:
    r = real_redis.client()
    s = server.client()
    for c in (r, s):
        c.set("k", "v", px=1_000_000)
    assert abs(int(r.pttl("k")) - int(s.pttl("k"))) < 5_000
    assert 999_000 < int(s.pttl("k")) <= 1_000_000
    assert int(s.execute_command("PEXPIRETIME", "k")) - int(r.execute_command("PEXPIRETIME", "k")) in range(-5000, 5000)


def test_watch_sees_another_connections_write(server: StateServer, real_redis: RedisServer) -> None:
    """WATCH on one connection, a write on another: EXEC fails (None) on both
    servers; without the write it runs."""
    for srv in (real_redis, server):
        a = srv.client(single_connection_client=True)
        b = srv.client(single_connection_client=True)
        a.flushdb()
        a.set("k", "1")
        a.execute_command("WATCH", "k")
        b.set("k", "2")
        a.execute_command("MULTI")
        a.execute_command("INCR", "k")
        assert a.execute_command("EXEC") is None, srv
        assert a.get("k") == b"2"
        a.execute_command("WATCH", "k")
        b.get("k")
        a.execute_command("MULTI")
        a.execute_command("INCR", "k")
        assert a.execute_command("EXEC") == [3], srv


def test_time_is_the_clock(server: StateServer) -> None:
    import time

    secs, micros = server.client().execute_command("TIME")
    assert abs(int(secs) + int(micros) / 1e6 - time.time()) < 5
    assert 0 <= int(micros) < 1_000_000


def test_setrange_and_setbit_past_the_largest_value_are_refused_first(server: StateServer) -> None:
    """Redis's limit is 512 MiB (its message names proto-max-bulk-len); libstate's
    is the store's maximum value size (16 MiB by default), checked before the
    value is built: nothing is written."""
    c = server.client()
    for offset in ("16777216", "536870908", "9223372036854775807"):
        with pytest.raises(redis.ResponseError, match="string exceeds maximum allowed size"):
            c.execute_command("SETRANGE", "big", offset, "x")
    with pytest.raises(redis.ResponseError, match="bit offset is not an integer or out of range"):
        c.execute_command("SETBIT", "big", str(16 << 23), "1")
    assert c.exists("big") == 0
    assert c.execute_command("SETRANGE", "big", str((16 << 20) - 1), "x") == 16 << 20


def test_watch_sees_a_write_of_the_same_value(server: StateServer, real_redis: RedisServer) -> None:
    """Redis fails EXEC for any write to a watched key, even one that changes
    nothing; so does libstate (its key watches see every committed write)."""
    for srv in (real_redis, server):
        a = srv.client(single_connection_client=True)
        b = srv.client(single_connection_client=True)
        a.set("same", "v")
        a.execute_command("WATCH", "same")
        b.set("same", "v")
        a.execute_command("MULTI")
        a.execute_command("PING")
        assert a.execute_command("EXEC") is None, srv
        a.execute_command("WATCH", "same")
        b.set("other", "v")
        a.execute_command("MULTI")
        a.execute_command("PING")
        assert a.execute_command("EXEC") == [b"PONG"], srv


def test_multi_queues_what_redis_queues(server: StateServer, real_redis: RedisServer) -> None:
    cmds: list[Cmd] = [
        ("SET", "q:a", "1"),
        ("MULTI",),
        ("SCAN", "0", "MATCH", "q:*"),
        ("ECHO", "e"),
        ("PUBLISH", "ch", "m"),
        ("PUBSUB", "NUMSUB", "ch"),
        ("DBSIZE",),
        ("EXEC",),
        ("MULTI",),
        ("SET", "q:b", "2"),
        ("SAVE",),
        ("EXEC",),
        ("EXISTS", "q:b"),
        ("MULTI",),
        ("SHUTDOWN",),
        ("DISCARD",),
    ]
    rc = real_redis.client(single_connection_client=True)
    rc.flushdb()
    sc = server.client(single_connection_client=True)
    for c in (rc, sc):
        c.response_callbacks.clear()  # raw replies: SCAN's parser would read QUEUED
    assert run(sc, cmds) == run(rc, cmds)


def test_publish_reaches_the_clients_own_connections_only(server: StateServer) -> None:
    alice_sub = server.client("alice").pubsub()
    bob_sub = server.client("bob").pubsub()
    for p in (alice_sub, bob_sub):
        p.subscribe("news")
        assert p.get_message(timeout=30)["type"] == "subscribe"
    assert server.client("alice").publish("news", "hi") == 1
    m = alice_sub.get_message(timeout=30)
    assert (m["type"], m["channel"], m["data"]) == ("message", b"news", b"hi")
    assert bob_sub.get_message(timeout=0.5) is None, "another client's PUBLISH is not heard"
    assert server.client("bob").execute_command("PUBSUB", "NUMSUB", "news") == [b"news", 1]


def test_info_counts_hits_misses_and_expired_keys_and_lastsave(server: StateServer) -> None:
    import time

    c = server.client()
    before = c.info("stats")
    c.set("h", "1")
    c.get("h")
    c.get("nope")
    c.mget("h", "nope", "nope2")
    c.set("gone", "x", px=20)
    deadline = time.time() + 30
    while c.info("stats")["expired_keys"] <= before["expired_keys"]:
        assert time.time() < deadline, "the sweeper did not count the expired key"
        time.sleep(0.05)
    after = c.info("stats")
    assert after["keyspace_hits"] - before["keyspace_hits"] == 2
    assert after["keyspace_misses"] - before["keyspace_misses"] == 3
    assert abs(int(c.lastsave().timestamp()) - time.time()) < 60
    assert c.save() is True


def test_a_clients_max_value_size_is_refused_while_parsing(server: StateServer) -> None:
    """bob's quota allows 100000-byte values: a longer argument is refused as soon
    as its length arrives (nothing buffered), as one over the store's maximum is."""
    import socket
    import subprocess

    from conftest import STATE_BIN, read_line

    subprocess.run(
        [str(STATE_BIN), "--store", str(server.store), "client", "quota", "bob", "--max-value-size", "100000"],
        check=True,
        capture_output=True,
    )
    for name, refused in (("bob", True), ("alice", False)):
        with socket.create_connection(("127.0.0.1", server.resp_port), timeout=30) as s:
            tok = server.tokens[name]
            s.sendall(f"*3\r\n$4\r\nAUTH\r\n${len(name)}\r\n{name}\r\n${len(tok)}\r\n{tok}\r\n".encode())
            assert read_line(s) == b"+OK\r\n"
            s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$200000\r\n")
            if refused:
                assert read_line(s) == b"-ERR Protocol error: invalid bulk length\r\n"
            else:
                s.sendall(b"x" * 200000 + b"\r\n")
                assert read_line(s) == b"+OK\r\n"
