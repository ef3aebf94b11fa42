"""`state serve` on the Redis engine: several server instances on one Redis are one
service (issue 15 part 5)."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import httpx
import redis

from conftest import RedisServer, start_state


def test_two_servers_on_one_redis_behave_as_one_service(tmp_path: Path, real_redis: RedisServer) -> None:
    url = f"redis://127.0.0.1:{real_redis.port}/0?namespace=t{uuid.uuid4().hex[:8]}"
    clients = tmp_path / "clients.toml"
    a = start_state(tmp_path / "a", url=url, clients_file=clients)
    b = start_state(tmp_path / "b", url=url, clients_file=clients, clients=())
    b.tokens = a.tokens
    try:
        on_a, on_b = a.client("alice"), b.client("alice")
        # A write through one instance is read through the other, over RESP and HTTP.
        on_a.set("layout", '{"cols":3}')
        assert on_b.get("layout") == b'{"cols":3}'
        r = httpx.post(f"{b.http}/v1/get", json={"key": "layout"}, headers={"Authorization": f"Bearer {a.tokens['alice']}"})
        assert r.json()["found"] is True

        # Read-modify-writes stay atomic with clients spread over both instances.
        def incr(server_client: redis.Redis) -> None:
            for _ in range(150):
                server_client.incr("n")

        ts = [threading.Thread(target=incr, args=(c,)) for c in (a.client("alice"), b.client("alice"), a.client("alice"), b.client("alice"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert on_a.get("n") == b"600"

        # Isolation holds across instances.
        assert b.client("bob").get("layout") is None
        assert b.client("bob").keys("*") == []
        assert sorted(on_b.keys("*")) == [b"layout", b"n"]
    finally:
        assert a.stop() == 0
        assert b.stop() == 0
