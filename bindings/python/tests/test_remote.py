"""`libstate.connect(url)`: a bucket of a real `state serve` that each test starts
(on a Unix socket and a loopback port, in a temporary directory, once per engine)
and stops. Readiness is the server's "ready" line, never a sleep.

The server is the `state` binary of this checkout, target/release/state (built by
`make cli-build`, which `make python-test` runs first), or $STATE_BIN."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import libstate

ROOT = Path(__file__).resolve().parents[3]
STATE_BIN = Path(os.environ.get("STATE_BIN", ROOT / "target" / "release" / "state"))


@dataclass
class Server:
    """A running `state serve`."""

    dir: Path
    sock: Path
    port: int
    token: str
    proc: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"state+unix://{self.sock}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_server(d: Path, engine: str, token: str | None = None) -> Server:
    """Starts `state serve` on the store in `d` (adding the client alice unless
    her `token` is given: a restart)."""
    if not STATE_BIN.is_file():
        pytest.fail(f"{STATE_BIN} is missing: build it with `make cli-build` (or set STATE_BIN)")
    store = d / "store"
    if token is None:
        token = subprocess.run(
            [str(STATE_BIN), "--store", str(store), "--engine", engine, "client", "add", "alice"],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout.strip()
    sock = d / "s.sock"
    proc = subprocess.Popen(
        [str(STATE_BIN), "--store", str(store), "--engine", engine, "serve", "--create",
         "--resp", "127.0.0.1:0", "--http", "off", "--unix", str(sock)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    port = None
    lines = []
    while True:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"state serve exited: {''.join(lines)} {err}")
        lines.append(line)
        if m := re.search(r"redis protocol on 127\.0\.0\.1:(\d+)", line):
            port = int(m.group(1))
        if line.startswith("state serve: ready"):
            break
    assert port is not None, lines
    return Server(d, sock, port, token, proc)


@pytest.fixture(params=["memfile", "sled"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    # A short directory: a Unix socket's path is limited to 107 bytes.
    d = Path(tempfile.mkdtemp(prefix="lsr"))
    s = start_server(d, str(request.param))
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def remote(server: Server) -> Iterator[libstate.RemoteBucket]:
    with libstate.connect(server.url) as b:
        yield b


def scenario(b: Any) -> list[Any]:
    """The same calls on an embedded Bucket and a RemoteBucket; what they return."""
    out: list[Any] = []
    b["layout"] = b'{"cols":3}'
    b["a"] = bytearray(b"1")
    b.set("b", memoryview(b"2"))
    out.append(b["layout"])
    out.append(b.get("zz", b"dflt"))
    out.append("a" in b)
    out.append("zz" in b)
    out.append(3 in b)
    out.append(len(b))
    out.append(bool(b))
    out.append(list(b))
    out.append(list(reversed(b)))
    out.append(list(b.keys()))
    out.append(list(b.values()))
    out.append(list(b.items()))
    out.append(list(reversed(b.items())))
    out.append(dict(b) == {"a": b"1", "b": b"2", "layout": b'{"cols":3}'})
    out.append(b.get_many(["b", "zz", "a"]))
    b.set_many({"k1": b"v1", "k2": b"v2"})
    b.set_many([("k3", b"v3"), ("k1", b"v1b")], ttl=3600)
    out.append(list(b.range("k", "k3")))
    out.append(list(b.range("k2", reverse=True)))
    out.append(list(b.prefix("k")))
    left = b.ttl("k1")
    out.append(left is not None and 3590 < left <= 3600)
    out.append(b.ttl("k2"))
    out.append(b.expire("k2", 60))
    out.append(b.expire("nope", 60))
    out.append(b.persist("k2"))
    out.append(b.persist("k2"))
    out.append(b.ttl("k2"))
    with pytest.raises(KeyError):
        b.ttl("nope")
    with pytest.raises(KeyError):
        b["nope"]
    del b["k3"]
    with pytest.raises(KeyError):
        del b["k3"]
    out.append(b.delete("k2"))
    out.append(b.delete("k2"))
    b.set_json("rec", {"name": "dashboard", "cols": 3, "tags": ["é"]})
    out.append(b.get_json("rec"))
    out.append(b["rec"])
    out.append(b.get_json("missing", 7))
    with b.cursor() as c:
        out.append(c.key)
        out.append(c.first())
        out.append(c.next())
        out.append(c.key)
        out.append(c.last())
        out.append(c.prev())
        out.append(c.seek("k"))
        out.append(c.seek("zzz"))
        out.append(c.prev())
        out.append(c.first())
        out.append(c.next_n(2))
        out.append(c.prev_n(5))
        out.append(list(c))
    # MutableMapping mixins.
    out.append(b.pop("a"))
    out.append(b.setdefault("a", b"again"))
    b.update({"u": b"1"}, v=b"2")
    out.append(sorted(b))
    b.clear()
    out.append(len(b))
    out.append(bool(b))
    return out


def test_a_remote_bucket_behaves_as_an_embedded_one(remote: libstate.RemoteBucket, tmp_path: Path) -> None:
    with libstate.open(tmp_path / "embedded", "memfile") as store:
        expected = scenario(store.bucket("user1"))
    assert scenario(remote) == expected


def test_bad_arguments_raise_the_embedded_exceptions_and_send_nothing(remote: libstate.RemoteBucket) -> None:
    with pytest.raises(libstate.InvalidArgument):
        remote[""] = b"x"
    with pytest.raises(libstate.InvalidArgument):
        remote.set("k" * 1025, b"x")
    with pytest.raises(libstate.InvalidArgument):
        remote.set("k", b"x", ttl=0)
    with pytest.raises(libstate.InvalidArgument):
        remote.set("k", b"x", ttl=-1)
    with pytest.raises(libstate.InvalidArgument):
        remote.expire("k", 0)
    with pytest.raises(libstate.InvalidArgument):
        remote.set_many({"ok": b"1", "": b"2"})
    with pytest.raises(TypeError):
        remote.set("k", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        remote[3] = b"x"  # type: ignore[index]
    with pytest.raises(TypeError):
        remote.get_many("ab")
    with pytest.raises(libstate.InvalidArgument):
        remote.set_json("k", {1, 2})
    remote["notjson"] = b"{"
    with pytest.raises(libstate.InvalidArgument, match="notjson"):
        remote.get_json("notjson")
    # Nothing of the refused calls was written (the batch neither: all or none).
    assert sorted(remote) == ["notjson"]


def test_a_value_over_the_servers_limit_is_too_large_or_io(remote: libstate.RemoteBucket) -> None:
    with pytest.raises((libstate.TooLarge, libstate.StoreIOError)):
        remote["big"] = b"x" * (libstate.DEFAULT_MAX_VALUE_SIZE + 1)
    # The handle goes on working (a fresh connection).
    remote["small"] = b"ok"
    assert remote["small"] == b"ok"


def test_ttls_expire_on_the_server(remote: libstate.RemoteBucket) -> None:
    remote.set("short", b"x", ttl=0.05)
    remote.set_many({"s1": b"1", "s2": b"2"}, ttl=0.05)
    remote["long"] = b"y"
    left = remote.ttl("short")
    assert left is not None and 0 < left <= 0.05
    # The server's clock decides: poll (each read is a round trip) until the
    # keys are gone, for at most 10 s.
    deadline = time.monotonic() + 10
    while remote.get_many(["short", "s1", "s2"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "short" not in remote and remote.get("s1") is None
    assert list(remote) == ["long"]


def test_tcp_with_a_token_reaches_the_same_bucket_as_that_client(server: Server) -> None:
    url = f"state://alice:{server.token}@127.0.0.1:{server.port}"
    with libstate.connect(url) as alice:
        alice["mine"] = b"1"
        assert server.token not in repr(alice) and server.token not in alice.endpoint
    # The token as a keyword, and on the Unix socket: the same client, alice.
    with libstate.connect(f"state://127.0.0.1:{server.port}", token=server.token) as again:
        assert again["mine"] == b"1"
    with libstate.connect(server.url, token=server.token) as via_unix:
        assert via_unix["mine"] == b"1"
    # The Unix user's own bucket is another one.
    with libstate.connect(server.url) as me:
        assert "mine" not in me


def test_refused_credentials_and_bad_urls_are_invalid_arguments(server: Server) -> None:
    with pytest.raises(libstate.InvalidArgument) as e:
        libstate.connect(f"state://alice:wrong-token@127.0.0.1:{server.port}")
    assert "wrong-token" not in str(e.value)
    with pytest.raises(libstate.InvalidArgument):
        libstate.connect("http://example.com")
    with pytest.raises(libstate.InvalidArgument):
        libstate.connect(server.url, timeout=0)


def test_no_server_is_a_store_io_error(tmp_path: Path) -> None:
    with pytest.raises(libstate.StoreIOError) as e:
        libstate.connect(f"state+unix://{tmp_path}/none.sock")
    assert isinstance(e.value, OSError)


def test_the_default_url_is_the_default_stores_socket(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # `state serve` was given the socket s.sock; the default is state.sock in
    # $STATE_STORE, so point a symlink there.
    d = server.dir / "dflt"
    d.mkdir()
    (d / "state.sock").symlink_to(server.sock)
    monkeypatch.setenv("STATE_STORE", str(d))
    with libstate.connect() as b:
        b["via-default"] = b"1"
    with libstate.connect(server.url) as b:
        assert b["via-default"] == b"1"


def test_with_closes_the_bucket_and_what_was_taken_from_it(server: Server) -> None:
    with libstate.connect(server.url) as b:
        b.set_many({"a": b"1", "b": b"2"})
        c = b.cursor()
        it = iter(b)
        assert next(it) == "a"
        assert not b.closed
    assert b.closed
    for call in (lambda: b["a"], lambda: b.set("a", b"1"), lambda: len(b), lambda: c.next(), lambda: next(it), b.cursor):
        with pytest.raises(libstate.StoreClosed):
            call()
    b.close()  # idempotent


def test_a_lost_server_is_an_io_error_and_the_handle_reconnects() -> None:
    d = Path(tempfile.mkdtemp(prefix="lsr"))
    try:
        s = start_server(d, "memfile")
        with libstate.connect(s.url) as b:
            b["kept"] = b"1"
            s.stop()
            with pytest.raises(libstate.StoreIOError):
                b["after"] = b"x"
            with pytest.raises(libstate.StoreIOError):
                b.get("kept")
            s = start_server(d, "memfile", s.token)
            # The next call connects again; the acknowledged write survived.
            assert b["kept"] == b"1"
        s.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


# Runs in a child process (see test_gil_drops.py): argv is the server's URL.
REMOTE_DROPS = textwrap.dedent(
    """
    import gc, sys, threading
    import libstate

    def objects():
        b = libstate.connect(sys.argv[1])
        b.set_many({"d%03d" % i: b"v" for i in range(100)})
        w = b.watch("d")
        c = b.cursor()
        c.seek("d010")
        it = iter(b.items())
        next(it)
        return [b, w, c, it]

    made = objects()
    t = threading.Thread(target=lambda: (made.clear(), gc.collect()))
    t.start()
    t.join()
    box = []
    t = threading.Thread(target=lambda: box.extend(objects()))
    t.start()
    t.join()
    box.clear()
    gc.collect()
    alive = objects()
    watcher = alive[1]
    def wait_events():
        while True:
            watcher._recv(None)
    threading.Thread(target=wait_events, daemon=True).start()
    alive[0]["d000"] = b"changed"
    print("ok", flush=True)
    """
)


def test_remote_objects_are_released_with_the_gil(server: Server) -> None:
    # Made in one thread and dropped in another, and left alive at exit with a
    # thread blocked in the watcher's GIL-free wait: none may abort the process.
    p = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", REMOTE_DROPS, server.url],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, f"exit status {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert p.stdout.strip() == "ok", p.stdout + p.stderr


def test_threads_share_a_remote_bucket(remote: libstate.RemoteBucket) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(50):
                remote[f"t{t}/{i:03}"] = str(i).encode()
                assert remote[f"t{t}/{i:03}"] == str(i).encode()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(remote) == 200
    assert [k for k, _ in remote.prefix("t2/")] == [f"t2/{i:03}" for i in range(50)]


def test_iteration_spans_many_chunks_both_ways(remote: libstate.RemoteBucket) -> None:
    keys = [f"k{i:05}" for i in range(3000)]
    remote.set_many([(k, k.encode()) for k in keys])
    assert list(remote) == keys
    assert list(reversed(remote)) == keys[::-1]
    assert [v for v in remote.values()][:2] == [b"k00000", b"k00001"]
    assert len(remote.get_many(keys)) == 3000


def test_watch_yields_the_changes_under_a_prefix(remote: libstate.RemoteBucket) -> None:
    with remote.watch("w/") as w:
        assert w.prefix == "w/"
        remote["w/a"] = b"1"
        remote["other"] = b"x"
        remote["w/b"] = b"2"
        assert remote.expire("w/b", 60)
        assert remote.persist("w/b")
        del remote["w/a"]
        got = [next(w) for _ in range(5)]
        assert [(e.kind, e.key, e.value) for e in got] == [
            ("set", "w/a", None),
            ("set", "w/b", None),
            ("expire", "w/b", None),
            ("persist", "w/b", None),
            ("delete", "w/a", None),
        ]
        assert w.recv(timeout=0.05) is None
    assert w.closed
    assert w.recv(timeout=0) is None
    assert list(w) == []


def test_watch_as_an_async_iterator(remote: libstate.RemoteBucket) -> None:
    async def main() -> list[str | None]:
        w = remote.watch("a/")
        keys: list[str | None] = []

        async def write() -> None:
            for k in ("a/1", "a/2"):
                await asyncio.get_running_loop().run_in_executor(None, remote.set, k, b"v")

        task = asyncio.create_task(write())
        async for ev in w:
            keys.append(ev.key)
            if len(keys) == 2:
                break
        await task
        w.close()
        return keys

    assert asyncio.run(main()) == ["a/1", "a/2"]


def test_the_typed_record_example(server: Server) -> None:
    example = ROOT / "examples" / "python" / "remote_record.py"
    out = subprocess.run([sys.executable, str(example), server.url], check=True, capture_output=True, text=True, timeout=60)
    assert "put then got MyData(name='dashboard', columns=3" in out.stdout
    with libstate.connect(server.url) as b:
        assert b.get_json("mykey") == {"name": "dashboard", "columns": 3, "widgets": ["clock", "weather"]}


def _ask(server: Server, *args: str) -> bytes:
    """One command on a raw connection of the server's Unix socket (the same
    client as the peer-credentials handles); the whole reply's bytes."""
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(server.sock))
        req = f"*{len(args)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args)
        s.sendall(req)
        data = s.recv(1 << 16)
        if data.startswith(b"$"):
            head, _, rest = data.partition(b"\r\n")
            while len(rest) < int(head[1:]) + 2:
                rest += s.recv(1 << 16)
            return rest
        return data


def _server_hits(server: Server) -> int:
    m = re.search(rb"keyspace_hits:(\d+)", _ask(server, "INFO", "stats"))
    assert m is not None
    return int(m.group(1))


def _within_10s(what: str, f: Any) -> None:
    deadline = time.monotonic() + 10
    while not f():
        assert time.monotonic() < deadline, f"{what}: not within 10 s"
        time.sleep(0.001)


def test_the_cache_answers_repeated_reads_and_drops_what_changed(server: Server) -> None:
    with libstate.connect(server.url, cache=100) as b, libstate.connect(server.url) as other:
        assert b.cache_live
        other["k"] = b"1"

        def served_locally() -> bool:
            # The invalidation of the write above may still drop the first
            # cached copy; then a later round is served from the cache.
            hits = _server_hits(server)
            for _ in range(100):
                assert b["k"] == b"1" and b.get("k") == b"1"
            return _server_hits(server) == hits

        _within_10s("100 reads without asking the server", served_locally)
        # Its own writes: seen by the very next read.
        b["k"] = b"2"
        assert b["k"] == b"2"
        b.set_many({"k": b"3"})
        assert b.get("k") == b"3"
        del b["k"]
        assert b.get("k") is None
        # Another connection's write, a flush: seen once the invalidation arrives.
        other["k"] = b"4"
        _within_10s("the invalidation", lambda: b.get("k") == b"4")
        assert _ask(server, "FLUSHDB") == b"+OK\r\n"
        _within_10s("the flush", lambda: b.get("k") is None)
        # A TTL is kept with the value: never read past it.
        b.set("t", b"v", ttl=0.3)
        start = time.monotonic()
        assert b["t"] == b"v"
        time.sleep(max(0.0, 0.3 - (time.monotonic() - start)))
        assert b.get("t") is None
    with pytest.raises(libstate.InvalidArgument):
        libstate.connect(server.url, cache=0)
    with libstate.connect(server.url) as plain:
        assert not plain.cache_live
