"""Fixtures for the server suite: a real `state serve` and a real `redis-server`,
each started in a temporary directory on loopback or a Unix socket, and stopped
after the test. Readiness is a handshake (the server prints where it listens;
redis-server answers PING), never a sleep."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[3]
STATE_BIN = Path(os.environ.get("STATE_BIN", ROOT / "target" / "release" / "state"))


def state(store: Path, *args: str) -> str:
    """Runs the `state` CLI on `store` and returns its standard output."""
    out = subprocess.run(
        [str(STATE_BIN), "--store", str(store), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout


def read_line(sock: socket.socket) -> bytes:
    """Reads one reply line (up to and including CRLF), or what came before the
    peer closed."""
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return line


@dataclass
class StateServer:
    """A running `state serve`."""

    store: Path
    proc: subprocess.Popen[str]
    unix: Path | None
    resp_port: int | None
    http_port: int | None
    tokens: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def client(self, name: str = "alice", **kw: object) -> redis.Redis:
        """A redis-py client over TCP, authenticated as `name`."""
        assert self.resp_port is not None
        return redis.Redis(
            host="127.0.0.1",
            port=self.resp_port,
            username=name,
            password=self.tokens[name],
            socket_timeout=30,
            **kw,  # type: ignore[arg-type]
        )

    def unix_client(self, **kw: object) -> redis.Redis:
        """A redis-py client on the Unix socket (peer credentials, no AUTH)."""
        assert self.unix is not None
        return redis.Redis(unix_socket_path=str(self.unix), socket_timeout=30, **kw)  # type: ignore[arg-type]

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stops the server; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=10)
        return rc


def start_state(
    store: Path,
    *extra: str,
    clients: tuple[str, ...] = ("alice", "bob"),
    engine: str = "memfile",
    url: str | None = None,
    clients_file: Path | None = None,
) -> StateServer:
    """Adds `clients` (if new) and starts `state serve` on free ports: on the store
    directory `store`, or on the store at `url` (the Redis engine; then `store` is
    only a scratch directory and the client list is `clients_file`)."""
    where = ["--store", url] if url else ["--store", str(store), "--engine", engine]
    cl = ["--clients", str(clients_file)] if clients_file else []
    listed = clients_file if clients_file else store / "clients.toml"
    tokens = {}
    existing = subprocess.run([str(STATE_BIN), *where, "client", *cl, "list"], capture_output=True, text=True, check=True).stdout if listed.exists() else ""
    for c in clients:
        if not re.search(rf"^{re.escape(c)}\b", existing, re.M):
            tokens[c] = subprocess.run([str(STATE_BIN), *where, "client", *cl, "add", c], capture_output=True, text=True, check=True).stdout.strip()
    sock = None if url else store / "state.sock"
    unix = ["--unix", str(sock)] if sock else ["--unix", "off"]
    args = [str(STATE_BIN), *where, "serve", "--create", "--resp", "127.0.0.1:0", "--http", "127.0.0.1:0", *unix, *cl, *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    resp = http = None
    lines = []
    # The server prints where it listens, then nothing more on stdout.
    while True:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"state serve exited: {''.join(lines)} {err}")
        lines.append(line)
        if m := re.search(r"redis protocol on 127\.0\.0\.1:(\d+)", line):
            resp = int(m.group(1))
        if m := re.search(r"HTTP on https?://127\.0\.0\.1:(\d+)/", line):
            http = int(m.group(1))
        if line.startswith("state serve: ready"):
            break
    return StateServer(store=store, proc=proc, unix=sock, resp_port=resp, http_port=http, tokens=tokens)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StateServer]:
    """`state serve` on a fresh memfile store, with clients alice and bob."""
    s = start_state(tmp_path / "store")
    yield s
    assert s.stop() == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    proc: subprocess.Popen[bytes]
    port: int
    dir: Path

    def client(self, **kw: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30, **kw)  # type: ignore[arg-type]


def start_redis(tmp: Path, *conf: str) -> RedisServer:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed: `make test` installs Debian's redis-server")
    tmp.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp), "--save", "", "--appendonly", "no", *conf],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        for _ in range(500):
            if proc.poll() is not None:
                break
            try:
                if r.ping():
                    return RedisServer(proc, port, tmp)
            except redis.ConnectionError:
                time.sleep(0.01)
        proc.kill()
        proc.wait()
    raise RuntimeError("redis-server did not start")


@pytest.fixture(scope="session")
def real_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server 7 on a free loopback port, for side-by-side replies."""
    r = start_redis(tmp_path_factory.mktemp("redis"))
    yield r
    r.proc.terminate()
    r.proc.wait(timeout=30)
