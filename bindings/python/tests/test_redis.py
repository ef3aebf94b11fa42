"""The Redis engine from Python: `libstate.open("redis://...")` against a real
redis-server that the test starts on a free loopback port and stops."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import libstate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("redis-server")
    assert exe, "redis-server is installed by make test (Debian's redis-server)"
    d = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16) == b"+PONG\r\n":
                        break
            except OSError:
                time.sleep(0.01)
        else:
            pytest.fail("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_store_on_redis_behaves_like_any_store(redis_url: str) -> None:
    url = f"{redis_url}?namespace=py{uuid.uuid4().hex[:8]}"
    with libstate.open(url) as store:
        assert store.engine == "redis"
        b = store.bucket("user1")
        b["layout"] = b'{"cols":3}'
        b.set_many({"a": b"1", "b": b"2"})
        b.set("session", b"x", ttl=3600)
        assert b["layout"] == b'{"cols":3}'
        assert list(b) == ["a", "b", "layout", "session"]
        assert b.get_many(["a", "zz", "b"]) == {"a": b"1", "b": b"2"}
        left = b.ttl("session")
        assert left is not None and 3500 < left <= 3600
        with b.cursor() as c:
            assert c.seek("b") == ("b", b"2")
            assert c.next() == ("layout", b'{"cols":3}')
        assert b.delete("a") is True and b.delete("a") is False
        assert store.bucket("user2").get("layout") is None
    # Another handle (as another process would) sees the same data: no lock file.
    with libstate.open(url) as again:
        assert again.bucket("user1")["b"] == b"2"


def test_engine_redis_with_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(libstate.InvalidArgument):
        libstate.open(tmp_path / "s", "redis")
