"""CLIENT TRACKING (client-side caching): the same command sequences sent to
`state serve` and to a real redis-server 7, over raw RESP3 sockets, compared
push by push; then what Redis cannot be compared on (the table's limit, expiry,
isolation), and redis-py's own client-side cache against `state serve`.

Every wait for an invalidation is a read with a bounded timeout, never a sleep."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import redis
from conftest import RedisServer, StateServer, start_state

Frame = Any


class Resp3:
    """One raw RESP3 connection: sends commands, returns each reply with the
    pushes that arrived before it."""

    def __init__(self, port: int, auth: tuple[str, str] | None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        hello: list[str] = ["HELLO", "3"]
        if auth:
            hello += ["AUTH", *auth]
        reply, pushes = self.cmd(*hello)
        assert isinstance(reply, dict) and not pushes, reply

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _frame(self) -> tuple[bool, Frame]:
        """(is a push, the frame)."""
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+",):
            return False, rest.decode()
        if t == b"-":
            return False, ("error", rest.decode())
        if t == b":":
            return False, int(rest)
        if t == b"_":
            return False, None
        if t in (b"$", b"="):
            n = int(rest)
            if n < 0:
                return False, None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return False, data
        if t in (b"*", b"~", b">"):
            n = int(rest)
            items = [self._frame()[1] for _ in range(max(n, 0))]
            if t == b"~":
                return False, ("set", sorted(items))
            return t == b">", items
        if t == b"%":
            n = int(rest)
            d = {}
            for _ in range(n):
                k = self._frame()[1]
                d[k] = self._frame()[1]
            return False, d
        raise AssertionError(f"unexpected frame {line!r}")

    def cmd(self, *args: str) -> tuple[Frame, list[Frame]]:
        out = f"*{len(args)}\r\n".encode()
        for a in args:
            b = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(b), b)
        self.sock.sendall(out)
        pushes = []
        while True:
            push, f = self._frame()
            if not push:
                return f, pushes
            pushes.append(f)

    def wait_push(self, timeout: float) -> Frame | None:
        """The next push, read within `timeout` seconds (None if none came)."""
        self.sock.settimeout(timeout)
        try:
            push, f = self._frame()
        except TimeoutError:
            return None
        finally:
            self.sock.settimeout(10)
        assert push, f
        return f


def pair(srv: StateServer | RedisServer) -> tuple[Resp3, Resp3]:
    """A reading connection and a writing one of the same client."""
    if isinstance(srv, RedisServer):
        return Resp3(srv.port, None), Resp3(srv.port, None)
    assert srv.resp_port is not None
    auth = ("alice", srv.tokens["alice"])
    return Resp3(srv.resp_port, auth), Resp3(srv.resp_port, auth)


# Each step: which connection ("r" reads, "w" writes) sends what. Every reply and
# every push the reading connection gets before it is compared with Redis's.
SCRIPTS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "default mode: a read key is invalidated once": [
        ("r", ("CLIENT", "TRACKING", "ON")),
        ("r", ("GET", "k")),
        ("w", ("SET", "k", "1")),
        ("r", ("PING",)),
        ("w", ("SET", "k", "2")),
        ("r", ("PING",)),
        ("r", ("MGET", "k", "k2", "k3")),
        ("w", ("MSET", "k", "1", "k2", "2")),
        ("r", ("PING",)),
        ("r", ("STRLEN", "k3")),
        ("w", ("DEL", "k3")),
        ("w", ("SET", "k3", "x")),
        ("r", ("PING",)),
        ("r", ("CLIENT", "TRACKINGINFO")),
        ("r", ("CLIENT", "GETREDIR")),
    ],
    "own writes are pushed after the reply, and NOLOOP drops them": [
        ("r", ("CLIENT", "TRACKING", "ON")),
        ("r", ("GET", "k")),
        ("r", ("SET", "k", "1")),
        ("r", ("PING",)),
        ("r", ("CLIENT", "TRACKING", "ON", "NOLOOP")),
        ("r", ("GET", "k")),
        ("r", ("SET", "k", "2")),
        ("r", ("PING",)),
        ("w", ("SET", "k", "3")),
        ("r", ("PING",)),
        ("r", ("GET", "k")),
        ("w", ("SET", "k", "4")),
        ("r", ("PING",)),
        ("r", ("CLIENT", "TRACKINGINFO")),
    ],
    "BCAST with prefixes": [
        ("r", ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "cfg:")),
        ("w", ("MSET", "user:2", "a", "cfg:x", "b", "other", "c", "user:1", "d")),
        ("r", ("PING",)),
        ("w", ("SET", "other", "x")),
        ("r", ("PING",)),
        ("w", ("DEL", "user:1")),
        ("r", ("PING",)),
        ("r", ("CLIENT", "TRACKINGINFO")),
        ("r", ("CLIENT", "TRACKING", "ON", "PREFIX", "u")),
        ("r", ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user")),
        ("r", ("CLIENT", "TRACKING", "OFF")),
        ("w", ("SET", "user:3", "x")),
        ("r", ("PING",)),
    ],
    "BCAST without a prefix hears every key": [
        ("r", ("CLIENT", "TRACKING", "ON", "BCAST")),
        ("w", ("SET", "a", "1")),
        ("r", ("PING",)),
        ("w", ("MSET", "b", "1", "a", "2")),
        ("r", ("PING",)),
    ],
    "OPTIN and OPTOUT with CLIENT CACHING": [
        ("r", ("CLIENT", "TRACKING", "ON", "OPTIN")),
        ("r", ("GET", "a")),
        ("r", ("CLIENT", "CACHING", "YES")),
        ("r", ("CLIENT", "TRACKINGINFO")),
        ("r", ("GET", "b")),
        ("r", ("GET", "c")),
        ("w", ("MSET", "a", "1", "b", "2", "c", "3")),
        ("r", ("PING",)),
        ("r", ("CLIENT", "CACHING", "NO")),
        ("r", ("CLIENT", "TRACKING", "ON", "OPTOUT")),
        ("r", ("CLIENT", "TRACKING", "OFF")),
        ("r", ("CLIENT", "TRACKING", "ON", "OPTOUT")),
        ("r", ("CLIENT", "CACHING", "NO")),
        ("r", ("GET", "a")),
        ("r", ("GET", "b")),
        ("w", ("MSET", "a", "1", "b", "2")),
        ("r", ("PING",)),
    ],
    "FLUSHDB invalidates everything with a null": [
        ("w", ("SET", "k", "1")),
        ("r", ("CLIENT", "TRACKING", "ON")),
        ("r", ("GET", "k")),
        ("w", ("FLUSHDB",)),
        ("r", ("PING",)),
        ("w", ("SET", "k", "2")),
        ("r", ("PING",)),
    ],
    "errors": [
        ("r", ("CLIENT", "CACHING", "YES")),
        ("r", ("CLIENT", "GETREDIR")),
        ("r", ("CLIENT", "TRACKINGINFO")),
        ("r", ("CLIENT", "TRACKING", "MAYBE")),
        ("r", ("CLIENT", "TRACKING", "ON", "BOGUS")),
        ("r", ("CLIENT", "TRACKING", "ON", "PREFIX", "a")),
        ("r", ("CLIENT", "TRACKING", "ON", "BCAST", "OPTIN")),
        ("r", ("CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT")),
        ("r", ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ab", "PREFIX", "a")),
        ("r", ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "b", "PREFIX", "b")),
        ("r", ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a")),
        ("r", ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a")),
        ("r", ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "c", "PREFIX", "a:x")),
        ("r", ("CLIENT", "TRACKINGINFO")),
        ("r", ("CLIENT", "TRACKING", "OFF")),
        ("r", ("CLIENT", "TRACKING", "ON")),
        ("r", ("CLIENT", "CACHING", "YES")),
        ("r", ("CLIENT", "TRACKING", "ON", "BCAST")),
        ("r", ("CLIENT", "TRACKING", "OFF")),
        ("r", ("CLIENT", "TRACKING", "OFF")),
    ],
}


def run(srv: StateServer | RedisServer, script: list[tuple[str, tuple[str, ...]]]) -> list[tuple[Frame, list[Frame]]]:
    r, w = pair(srv)
    try:
        w.cmd("FLUSHDB")
        assert r.wait_push(0.05) is None
        got = []
        for who, args in script:
            reply, pushes = (r if who == "r" else w).cmd(*args)
            got.append((reply, pushes if who == "r" else []))
        return got
    finally:
        r.close()
        w.close()


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_pushes_match_redis(name: str, server: StateServer, real_redis: RedisServer) -> None:
    want = run(real_redis, SCRIPTS[name])
    got = run(server, SCRIPTS[name])
    for (who, args), w, g in zip(SCRIPTS[name], want, got):
        assert g == w, f"{who} {args}: redis {w!r}, libstate {g!r}"


def test_command_lists_client(server: StateServer) -> None:
    table = server.client().command()
    assert table["client"]["arity"] == -2


@pytest.mark.parametrize("srv", ["state", "redis"])
def test_an_expired_key_is_invalidated(srv: str, server: StateServer, real_redis: RedisServer) -> None:
    target: StateServer | RedisServer = server if srv == "state" else real_redis
    r, w = pair(target)
    try:
        w.cmd("SET", "exp", "v", "PX", "150")
        r.cmd("CLIENT", "TRACKING", "ON")
        assert r.cmd("GET", "exp") == (b"v", [])
        # Removed by the server's sweep (libstate) or active expiry (Redis): the
        # push comes on its own, within a bounded wait.
        assert r.wait_push(15) == [b"invalidate", [b"exp"]]
    finally:
        r.close()
        w.close()


def test_the_table_is_bounded(tmp_path: Any) -> None:
    s = start_state(tmp_path / "store", "--tracking-table-max-keys", "2")
    try:
        r, w = pair(s)
        r.cmd("CLIENT", "TRACKING", "ON")
        assert r.cmd("GET", "a") == (None, [])
        assert r.cmd("GET", "b") == (None, [])
        # The third key pushes the oldest out: it is invalidated after the reply.
        assert r.cmd("GET", "c") == (None, [])
        assert r.wait_push(5) == [b"invalidate", [b"a"]]
        w.cmd("MSET", "a", "1", "b", "2", "c", "3")
        assert r.cmd("PING") == ("PONG", [[b"invalidate", [b"b"]], [b"invalidate", [b"c"]]])
        r.close()
        w.close()
    finally:
        assert s.stop() == 0


def test_a_client_hears_of_its_own_keys_only(server: StateServer) -> None:
    assert server.resp_port is not None
    alice = Resp3(server.resp_port, ("alice", server.tokens["alice"]))
    bob = Resp3(server.resp_port, ("bob", server.tokens["bob"]))
    try:
        alice.cmd("CLIENT", "TRACKING", "ON", "BCAST")
        bob.cmd("SET", "k", "bob's")
        assert alice.cmd("PING") == ("PONG", [])
        # The same key name in alice's own bucket is heard.
        alice2 = Resp3(server.resp_port, ("alice", server.tokens["alice"]))
        alice2.cmd("SET", "k", "alice's")
        assert alice.cmd("PING") == ("PONG", [[b"invalidate", [b"k"]]])
        alice2.close()
    finally:
        alice.close()
        bob.close()


def test_resp2_tracking_sends_no_push(server: StateServer) -> None:
    """As Redis: without RESP3 (and libstate has no REDIRECT) nothing is pushed,
    and REDIRECT is refused with a reason."""
    c = server.client(single_connection_client=True)
    assert c.execute_command("CLIENT", "TRACKING", "ON") == b"OK"
    assert c.get("k") is None
    server.client().set("k", "1")
    assert c.get("k") == b"1"
    with pytest.raises(redis.ResponseError, match="REDIRECT"):
        c.execute_command("CLIENT", "TRACKING", "ON", "REDIRECT", "1")


def _patched_cache_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    # redis-py enables its cache for Redis 7.4+ only (a product check: the
    # protocol it uses, CLIENT TRACKING with RESP3 pushes, is Redis 6's); libstate
    # says 7.0.0 in HELLO.
    from redis.connection import CacheProxyConnection

    monkeypatch.setattr(CacheProxyConnection, "MIN_ALLOWED_VERSION", "7.0.0")


def test_redis_py_client_side_cache(server: StateServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from redis.cache import CacheConfig

    _patched_cache_gate(monkeypatch)
    cached = server.client(protocol=3, cache_config=CacheConfig(max_size=100))
    other = server.client()
    other.set("k", "1")
    assert cached.get("k") == b"1"
    cache = cached.get_cache()
    assert cache is not None and cache.size == 1
    assert cached.get("k") == b"1"
    other.set("k", "2")
    # The invalidation reaches the cached connection asynchronously: within a
    # bounded time the next read misses the cache and returns the new value.
    deadline = time.monotonic() + 10
    while cached.get("k") != b"2":
        assert time.monotonic() < deadline, "the invalidation never arrived"
    assert cached.get("k") == b"2"
    other.flushdb()
    deadline = time.monotonic() + 10
    while cached.get("k") is not None:
        assert time.monotonic() < deadline, "the flush never arrived"


def test_a_big_flush_is_one_null_and_no_keyspace_event(server: StateServer) -> None:
    """FLUSHDB of more keys than a subscriber's queue holds: the tracking
    connection gets one null invalidation; a keyspace subscriber hears nothing
    and is not dropped."""
    r, w = pair(server)
    assert server.resp_port is not None
    sub = Resp3(server.resp_port, ("alice", server.tokens["alice"]))
    try:
        args = [x for i in range(3000) for x in (f"k{i}", "v")]
        assert w.cmd("MSET", *args) == ("OK", [])
        r.cmd("CLIENT", "TRACKING", "ON")
        r.cmd("GET", "k1")
        sub.sock.sendall(b"*2\r\n$10\r\nPSUBSCRIBE\r\n$16\r\n__keyspace@0__:*\r\n")
        assert sub.wait_push(10) == [b"psubscribe", b"__keyspace@0__:*", 1]
        assert w.cmd("FLUSHDB") == ("OK", [])
        assert r.cmd("PING") == ("PONG", [[b"invalidate", None]])
        assert sub.cmd("PING") == ("PONG", [])
        assert w.cmd("DBSIZE") == (0, [])
    finally:
        for c in (r, w, sub):
            c.close()
