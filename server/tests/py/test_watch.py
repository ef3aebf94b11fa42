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
