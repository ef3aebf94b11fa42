"""Keyspace notifications with redis-py's pubsub, unchanged (RESP2 and RESP3),
side by side with a real redis-server; and the Server-Sent Events stream at
GET /v1/watch with httpx. Every wait is for a message, with a generous timeout."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from conftest import RedisServer, StateServer, start_state


def next_message(p: Any, timeout: float = 30.0) -> dict[str, Any]:
    """The next message of a pubsub, skipping nothing: confirmations included."""
    m = p.get_message(timeout=timeout)
    assert m is not None, "no message arrived"
    return dict(m)


def keyspace_session(r: redis.Redis) -> list[dict[str, Any]]:
    """Subscribes to one key's channel and a pattern, changes the key, returns
    what redis-py received."""
    p = r.pubsub()
    p.subscribe("__keyspace@0__:layout")
    p.psubscribe("__keyevent@0__:*")
    got = [next_message(p), next_message(p)]
    r.set("layout", b'{"cols":3}')
    r.delete("layout")
    got += [next_message(p) for _ in range(4)]
    p.unsubscribe()
    p.punsubscribe()
    got += [next_message(p), next_message(p)]
    p.close()
    return got


def test_redis_py_pubsub_sees_what_a_real_redis_sends(server: StateServer, real_redis: RedisServer) -> None:
    real = real_redis.client()
    real.config_set("notify-keyspace-events", "KEA")
    try:
        expected = keyspace_session(real)
    finally:
        real.config_set("notify-keyspace-events", "")
        real.delete("layout")
    assert keyspace_session(server.client("alice")) == expected


def test_resp3_pubsub_and_expired_events(server: StateServer) -> None:
    r = server.client("alice", protocol=3)
    p = r.pubsub()
    p.psubscribe("__keyspace@0__:session*")
    assert next_message(p)["type"] == "psubscribe"
    r.set("session", b"x", px=50)
    assert next_message(p)["data"] == b"set"
    assert next_message(p)["data"] == b"expire"  # as Redis: SET PX sends both
    # The sweeper removes it within about a second; the event comes then.
    m = next_message(p)
    assert (m["type"], m["channel"], m["data"]) == ("pmessage", b"__keyspace@0__:session", b"expired")
    # The connection still serves commands in RESP3.
    assert r.get("session") is None
    p.close()


def test_sweep_interval_sets_when_expired_events_come(tmp_path: Path) -> None:
    # With the sweeper an hour apart, a key that expired is announced by no one
    # (the default, 1s, announces it within about a second).
    s = start_state(tmp_path / "store", "--sweep-interval", "1h")
    try:
        r = s.client("alice")
        p = r.pubsub()
        p.psubscribe("__keyspace@0__:*")
        assert next_message(p)["type"] == "psubscribe"
        r.set("session", b"x", px=50)
        assert next_message(p)["data"] == b"set"
        assert next_message(p)["data"] == b"expire"
        assert p.get_message(timeout=2.5) is None, "no sweep ran, so no expired event"
        p.close()
    finally:
        assert s.stop() == 0


def test_a_client_never_hears_of_another_clients_keys(server: StateServer) -> None:
    alice, bob = server.client("alice"), server.client("bob")
    p = alice.pubsub()
    p.psubscribe("*")
    assert next_message(p)["type"] == "psubscribe"
    bob.set("layout", b"bob's")
    alice.set("mine", b"1")
    # Alice's first message is about her own key: bob's write came first and
    # did not reach her.
    m = next_message(p)
    assert m["channel"] in (b"__keyspace@0__:mine", b"__keyevent@0__:set")
    assert b"layout" not in m["channel"] and m["data"] != b"layout"
    p.close()


def sse_events(lines: Iterator[str], n: int) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        if line.startswith("data: "):
            out.append(json.loads(line[len("data: ") :]))
            if len(out) == n:
                break
    return out


def test_sse_streams_changes_under_a_prefix(server: StateServer) -> None:
    headers = {"Authorization": f"Bearer {server.tokens['alice']}"}
    with httpx.stream("GET", f"{server.http}/v1/watch", params={"prefix": "layout"}, headers=headers, timeout=30) as es:
        assert es.status_code == 200
        assert es.headers["content-type"].startswith("text/event-stream")
        # The response is open, so the watcher is registered.
        server.client("bob").set("layout", b"bob's")
        alice = server.client("alice")
        alice.set("other", b"x")
        alice.set("layout", b'{"cols":3}')
        alice.delete("layout")
        got = sse_events(es.iter_lines(), 2)
    assert got == [
        {"key": "layout", "kind": "set", "value": base64.b64encode(b'{"cols":3}').decode()},
        {"key": "layout", "kind": "delete"},
    ]


def test_sse_takes_the_token_as_a_query_parameter_only_there(server: StateServer) -> None:
    url = f"{server.http}/v1/watch"
    assert httpx.get(url, params={"prefix": "x"}, timeout=30).status_code == 401
    assert httpx.get(url, params={"token": "wrong"}, timeout=30).status_code == 401
    with httpx.stream("GET", url, params={"token": server.tokens["alice"]}, timeout=30) as es:
        assert es.status_code == 200
        server.client("alice").set("k", b"v")
        assert sse_events(es.iter_lines(), 1) == [{"key": "k", "kind": "set", "value": base64.b64encode(b"v").decode()}]
    # The JSON API does not accept a token in the URL.
    r = httpx.post(f"{server.http}/v1/get", params={"token": server.tokens["alice"]}, json={"key": "k"}, timeout=30)
    assert r.status_code == 401


# Each command's keyspace events, as Redis 7.0 names and orders them (the
# command's own name where Redis gives one: incrby, append, rename_from, ...;
# `new` first for a key created; nothing for FLUSHDB). Run on both servers with
# `notify-keyspace-events KEAn`; the message streams must be the same.
EVENT_SCRIPT: list[tuple[str, ...]] = [
    ("SET", "ev:a", "1"),
    ("SET", "ev:a", "2", "EX", "100"),
    ("SET", "ev:a", "3", "KEEPTTL"),
    ("SET", "ev:a", "3", "NX"),
    ("INCR", "ev:n"),
    ("INCRBY", "ev:n", "5"),
    ("DECR", "ev:n"),
    ("DECRBY", "ev:n", "2"),
    ("INCRBYFLOAT", "ev:f", "1.5"),
    ("APPEND", "ev:s", "hello"),
    ("APPEND", "ev:s", "x"),
    ("SETRANGE", "ev:s", "0", "J"),
    ("SETRANGE", "ev:s", "0", ""),
    ("SETRANGE", "ev:nothing", "3", ""),
    ("SETBIT", "ev:b", "3", "1"),
    ("SETBIT", "ev:b", "3", "1"),
    ("SETBIT", "ev:b", "3", "0"),
    ("SETBIT", "ev:b", "20", "0"),
    ("RENAME", "ev:a", "ev:r"),
    ("RENAME", "ev:r", "ev:r"),
    ("SET", "ev:c", "v"),
    ("RENAME", "ev:s", "ev:c"),
    ("RENAMENX", "ev:c", "ev:r"),
    ("COPY", "ev:c", "ev:d"),
    ("COPY", "ev:c", "ev:d"),
    ("COPY", "ev:c", "ev:d", "REPLACE"),
    ("EXPIRE", "ev:d", "100"),
    ("PERSIST", "ev:d"),
    ("PERSIST", "ev:d"),
    ("GETEX", "ev:d", "EX", "50"),
    ("GETEX", "ev:d", "PERSIST"),
    ("GETEX", "ev:d", "PERSIST"),
    ("GETDEL", "ev:d"),
    ("SETEX", "ev:e", "100", "v"),
    ("PSETEX", "ev:e", "100000", "v"),
    ("SETNX", "ev:g", "v"),
    ("SETNX", "ev:g", "v"),
    ("MSET", "ev:m2", "1", "ev:m1", "2"),
    ("MSETNX", "ev:m4", "1", "ev:m3", "2"),
    ("GETSET", "ev:m1", "3"),
    ("GETSET", "ev:gs", "1"),
    ("GETDEL", "ev:none"),
    ("INCR", "ev:none"),
    ("DECRBY", "ev:none", "3"),
    ("INCR", "ev:m1"),
    ("APPEND", "ev:gs", "2"),
    ("BITOP", "OR", "ev:bo", "ev:b"),
    ("BITOP", "OR", "ev:bo", "ev:none"),
    ("DEL", "ev:m1", "ev:m2", "ev:none"),
    ("EXPIRE", "ev:e", "0"),
    ("PEXPIREAT", "ev:g", "1"),
    ("MULTI",),
    ("SET", "ev:x", "1"),
    ("INCR", "ev:x"),
    ("SET", "ev:y", "1"),
    ("APPEND", "ev:x", "z"),
    ("EXPIRE", "ev:x", "100"),
    ("EXEC",),
    ("FLUSHDB",),
    ("SET", "ev:end", "1"),
]


def event_stream(r: redis.Redis) -> list[tuple[bytes, bytes]]:
    """Runs EVENT_SCRIPT on `r` (one connection) while a pubsub connection of its
    pool listens; returns the
    (channel, message) pairs heard, up to the closing SET's keyevent."""
    p = r.pubsub()
    p.psubscribe("__keyspace@0__:ev:*", "__keyevent@0__:*")
    assert [next_message(p)["type"] for _ in range(2)] == ["psubscribe", "psubscribe"]
    for cmd in EVENT_SCRIPT:
        try:
            r.execute_command(*cmd)
        except redis.ResponseError:
            pass
    got: list[tuple[bytes, bytes]] = []
    while True:
        m = next_message(p)
        assert m["type"] == "pmessage", m
        got.append((m["channel"], m["data"]))
        if got[-1] == (b"__keyevent@0__:set", b"ev:end"):
            break
    p.close()
    return got


def test_every_commands_events_match_a_real_redis(server: StateServer, real_redis: RedisServer) -> None:
    real = real_redis.client(single_connection_client=True)
    real.flushdb()
    real.config_set("notify-keyspace-events", "KEAn")
    try:
        expected = event_stream(real_redis.client(single_connection_client=True))
    finally:
        real.config_set("notify-keyspace-events", "")
        real.flushdb()
    s = server.client(single_connection_client=True)
    s.config_set("notify-keyspace-events", "KEAn")
    got = event_stream(server.client(single_connection_client=True))
    for i, (w, g) in enumerate(zip(expected, got)):
        assert g == w, f"event {i}: redis {w!r}, libstate {g!r}; redis sent {expected[max(0, i - 4) : i + 4]!r}"
    assert len(got) == len(expected)
