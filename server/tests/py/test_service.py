"""libstate's own rules over the Redis protocol: identity, isolation, key rules,
SCAN's server-side cursors, quotas, limits, load and shutdown; with redis-py,
redis-cli and redis-benchmark."""

from __future__ import annotations

import getpass
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
import redis

from conftest import STATE_BIN, StateServer, read_line, start_state, state


def raw(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return s


def read_until_closed(s: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


# --- identity ---------------------------------------------------------------


def send(s: socket.socket, *args: str | bytes) -> bytes:
    """Sends one RESP request and returns the first reply line."""
    req = f"*{len(args)}\r\n".encode()
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        req += f"${len(b)}\r\n".encode() + b + b"\r\n"
    s.sendall(req)
    return read_line(s)


def test_commands_before_auth_get_noauth(server: StateServer) -> None:
    s = raw(server.resp_port or 0)
    assert send(s, "PING") == b"+PONG\r\n"
    for cmd in (("GET", "k"), ("SET", "k", "v"), ("KEYS", "*"), ("SCAN", "0"), ("INFO",), ("MULTI",), ("CLIENT", "SETINFO", "LIB-NAME", "x")):
        assert send(s, *cmd) == b"-NOAUTH Authentication required.\r\n", cmd
    assert send(s, "HELLO", "3").startswith(b"-NOAUTH HELLO must be called with the client already authenticated")


def test_auth_forms_and_failures_say_nothing_specific(server: StateServer) -> None:
    s = raw(server.resp_port or 0)
    replies = {send(s, "AUTH", *args) for args in (("wrong",), ("alice", "wrong"), ("nobody", "wrong"), ("bob", server.tokens["alice"]))}
    assert replies == {b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"}
    assert send(s, "GET", "k").startswith(b"-NOAUTH")
    assert send(s, "AUTH", server.tokens["alice"]) == b"+OK\r\n"
    assert send(s, "SET", "who", "alice") == b"+OK\r\n"
    assert send(s, "AUTH", "bob", server.tokens["bob"]) == b"+OK\r\n"
    assert send(s, "GET", "who") == b"$-1\r\n"  # now bob's bucket
    h = raw(server.resp_port or 0)
    assert send(h, "HELLO", "3", "AUTH", "alice", server.tokens["alice"]).startswith(b"%7")
    r = redis.Redis(host="127.0.0.1", port=server.resp_port, protocol=3, username="alice", password=server.tokens["alice"])
    assert r.get("who") == b"alice"


def test_unix_socket_peer_credentials_name_the_client(server: StateServer) -> None:
    me = getpass.getuser()
    u = server.unix_client()
    u.set("local", "1")
    assert u.get("local") == b"1"
    info = u.execute_command("CLIENT", "INFO")
    assert f"user=unix:{me} " in (info.decode() if isinstance(info, bytes) else str(info))
    assert oct((server.unix or Path()).stat().st_mode & 0o777) == oct(0o600)
    # The Unix user's bucket is unix:NAME, in its own namespace.
    assert server.stop() == 0
    assert state(server.store, "get", f"unix:{me}", "local") == "1\n"


def test_a_token_client_named_like_a_unix_user_does_not_share_its_bucket(server: StateServer) -> None:
    me = getpass.getuser()
    tok = state(server.store, "client", "add", me).strip()
    u = server.unix_client()
    t = redis.Redis(host="127.0.0.1", port=server.resp_port, username=me, password=tok)
    u.set("k", "unix")
    assert t.get("k") is None
    t.set("k", "token")
    assert u.get("k") == b"unix"
    # A token client's name cannot contain ":", so none can look like unix:USER.
    bad = subprocess.run([str(STATE_BIN), "--store", str(server.store), "client", "add", f"x:{me}"], capture_output=True, text=True)
    assert bad.returncode == 2 and "is not allowed" in bad.stderr


def test_hello_setname_is_checked_like_client_setname_before_auth(server: StateServer) -> None:
    s = raw(server.resp_port or 0)
    err = b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    assert send(s, "CLIENT", "SETNAME", "bad name") == b"-NOAUTH Authentication required.\r\n"
    assert send(s, "HELLO", "3", "AUTH", "alice", server.tokens["alice"], "SETNAME", "bad name") == err
    assert send(s, "HELLO", "3", "AUTH", "alice", server.tokens["alice"], "SETNAME", "\u202eevil") == err
    assert send(s, "GET", "k") == b"-NOAUTH Authentication required.\r\n", "a refused HELLO signs nobody in"
    assert send(s, "AUTH", "alice", server.tokens["alice"]) == b"+OK\r\n"
    assert send(s, "HELLO", "2", "SETNAME", "a\tb") == err
    assert send(s, "CLIENT", "SETNAME", "a\tb") == err
    assert send(s, "CLIENT", "GETNAME") == b"$-1\r\n"
    r = server.client(single_connection_client=True)
    assert r.execute_command("HELLO", "2", "SETNAME", "app-1")
    assert r.client_getname() == "app-1"


def test_only_allowed_unix_users_get_a_bucket_on_the_socket(tmp_path: Path) -> None:
    """Another Unix user who can reach the socket is no client until allowed. Needs
    a second user to connect as: the suite runs as root in `make test`."""
    if os.geteuid() != 0:
        pytest.skip("connecting as another Unix user needs root")
    top = Path(tempfile.mkdtemp(prefix="state-peer-"))
    try:
        os.chmod(top, 0o711)  # traversable, not writable, by others
        store = top / "store"
        srv = start_state(store)
        try:
            os.chmod(store, 0o711)
            assert srv.unix is not None
            os.chmod(srv.unix, 0o666)  # widened by hand: anyone may connect
            # SET, then CLIENT INFO: two error lines, or +OK and a bulk string (3 lines).
            probe = (
                "import socket, sys\n"
                "s = socket.socket(socket.AF_UNIX)\n"
                "s.connect(sys.argv[1])\n"
                "s.sendall(b'SET k v\\r\\nCLIENT INFO\\r\\n')\n"
                "d = b''\n"
                "while d.count(b'\\r\\n') < (3 if d.startswith(b'+') else 2):\n"
                "    c = s.recv(4096)\n"
                "    if not c: break\n"
                "    d += c\n"
                "sys.stdout.write(d.decode())\n"
            )

            def as_nobody() -> str:
                return subprocess.run(
                    ["/usr/bin/python3", "-c", probe, str(srv.unix)], user="nobody", group="nogroup",
                    capture_output=True, text=True, timeout=30, check=True, cwd="/",
                ).stdout

            assert as_nobody().startswith("-NOAUTH Authentication required.")
            state(store, "client", "add", "unix:nobody")
            out = as_nobody()
            assert out.startswith("+OK") and "user=unix:nobody " in out, out
            # An open session of the allowed user ends when it is removed.
            held = (
                "import socket, sys\n"
                "s = socket.socket(socket.AF_UNIX)\n"
                "s.settimeout(20)\n"
                "s.connect(sys.argv[1])\n"
                "s.sendall(b'PING\\r\\n')\n"
                "assert s.recv(100) == b'+PONG\\r\\n'\n"
                "print('signed in', flush=True)\n"
                "print('ended' if s.recv(100) == b'' else 'still open', flush=True)\n"
            )
            session = subprocess.Popen(
                ["/usr/bin/python3", "-c", held, str(srv.unix)], user="nobody", group="nogroup",
                stdout=subprocess.PIPE, text=True, cwd="/",
            )
            assert session.stdout is not None
            assert session.stdout.readline() == "signed in\n"
            state(store, "client", "rm", "unix:nobody")
            assert session.stdout.readline() == "ended\n"
            assert session.wait(timeout=30) == 0
            assert as_nobody().startswith("-NOAUTH")
        finally:
            assert srv.stop() == 0
        assert state(store, "get", "unix:nobody", "k") == "v\n"
        assert "nobody" not in state(store, "buckets").replace("unix:nobody", "")
    finally:
        shutil.rmtree(top)


def test_clients_added_while_serving_can_sign_in(server: StateServer) -> None:
    tok = state(server.store, "client", "add", "late").strip()
    r = redis.Redis(host="127.0.0.1", port=server.resp_port, username="late", password=tok)
    assert r.set("k", "v")
    state(server.store, "client", "rm", "late")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=server.resp_port, username="late", password=tok).ping()


# --- isolation --------------------------------------------------------------


def test_a_client_never_reaches_another_clients_keys(server: StateServer) -> None:
    a, b = server.client("alice"), server.client("bob")
    a.mset({"k1": "a1", "k2": "a2", "shared": "alice"})
    a.set("ttl", "x", ex=1000)
    b.set("shared", "bob")
    assert b.get("k1") is None
    assert b.mget(["k1", "k2"]) == [None, None]
    assert b.exists("k1", "k2") == 0
    assert b.keys("*") == [b"shared"]
    assert list(b.scan_iter()) == [b"shared"]
    assert b.dbsize() == 1
    assert b.ttl("ttl") == -2
    assert b.delete("k1", "k2") == 0
    assert b.persist("ttl") is False
    assert b.expire("k1", 10) is False
    assert b.incr("k1") == 1  # bob's own k1
    b.flushdb()
    assert sorted(a.keys("*")) == [b"k1", b"k2", b"shared", b"ttl"]
    assert a.get("shared") == b"alice" and a.get("k1") == b"a1"
    # A SCAN cursor of alice's is not bob's.
    cur, _ = a.scan(0, count=1)
    assert cur != 0
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        b.scan(cur, count=1)
    assert len(a.scan(cur, count=10)[1]) == 3


# --- key rules and libstate-specific replies --------------------------------


def test_keys_outside_libstate_rules_are_errors_naming_the_rule(server: StateServer) -> None:
    r = server.client()
    for bad in (b"", b"x" * 1025, b"\xff\xfe"):
        with pytest.raises(redis.ResponseError, match="libstate keys are UTF-8 text of 1 to 1024 bytes"):
            r.set(bad, "v")
        with pytest.raises(redis.ResponseError, match="invalid key"):
            r.get(bad)
    assert r.set("x" * 1024, "v")
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        r.execute_command("SELECT", "1")


def test_scan_returns_every_key_present_throughout_exactly_once_in_key_order(server: StateServer) -> None:
    r = server.client()
    w = server.client()
    keys = [f"key:{i:05d}" for i in range(2000)]
    r.mset({k: "v" for k in keys})
    seen: list[bytes] = []
    cursor = 0
    rng = random.Random(7)
    first = True
    while first or cursor != 0:
        first = False
        cursor, batch = r.scan(cursor, count=97)
        seen.extend(batch)
        # Churn around the scan: new keys come and go, the original ones stay.
        extra = f"key:{rng.randrange(2000):05d}x"
        w.set(extra, "1")
        w.delete(extra)
    originals = [k for k in seen if not k.endswith(b"x")]
    assert originals == [k.encode() for k in keys]
    assert seen == sorted(seen)
    assert sorted(r.scan(0, match="key:0000*", count=1000)[1]) == [f"key:0000{i}".encode() for i in range(10)]
    assert r.scan(0, _type="hash")[1] == []
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        r.execute_command("SCAN", "abc")


def test_multi_exec_is_atomic_against_other_clients(server: StateServer) -> None:
    r = server.client("alice")
    stop = threading.Event()
    bad: list[tuple[bytes | None, bytes | None]] = []

    def reader() -> None:
        o = server.client("alice")
        while not stop.is_set():
            a, b = o.mget("a", "b")
            if a != b:
                bad.append((a, b))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(300):
            p = r.pipeline(transaction=True)
            p.set("a", str(i)).set("b", str(i))
            p.execute()
    finally:
        stop.set()
        t.join()
    assert bad == []


def test_incr_from_many_connections_loses_no_update(server: StateServer) -> None:
    def work() -> None:
        c = server.client()
        for _ in range(200):
            c.incr("n")

    ts = [threading.Thread(target=work) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert server.client().get("n") == b"1600"


# --- quotas -----------------------------------------------------------------


def test_quotas_refuse_writes_and_write_nothing(tmp_path: Path) -> None:
    store = tmp_path / "s"
    tok = state(store, "client", "add", "small", "--max-records", "3", "--max-bytes", "100").strip()
    s = start_state(store, clients=())
    try:
        r = redis.Redis(host="127.0.0.1", port=s.resp_port, username="small", password=tok)
        r.mset({"a": "1", "b": "2", "c": "3"})
        with pytest.raises(redis.ResponseError, match="quota exceeded.*max_records of 3"):
            r.set("d", "4")
        with pytest.raises(redis.ResponseError, match="quota exceeded"):
            r.mset({"e": "1", "f": "2"})
        assert r.exists("d", "e", "f") == 0
        with pytest.raises(redis.ResponseError, match="max_bytes of 100"):
            r.set("a", "x" * 200)
        assert r.get("a") == b"1"
        assert r.delete("a") == 1
        assert r.set("d", "4")
        info = r.info("client")
        assert info["records"] == 3 and info["max_records"] == 3
    finally:
        assert s.stop() == 0


# --- limits -----------------------------------------------------------------


def test_an_oversized_bulk_is_refused_before_buffering_and_only_that_connection_closes(server: StateServer) -> None:
    ok = server.client()
    ok.set("k", "v")
    s = raw(server.resp_port or 0)
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999\r\n")
    reply = read_until_closed(s)
    assert reply.startswith(b"-ERR Protocol error: invalid bulk length")
    s = raw(server.resp_port or 0)
    s.sendall(b"*2000000\r\n")
    assert read_until_closed(s).startswith(b"-ERR Protocol error: invalid multibulk length")
    s = raw(server.resp_port or 0)
    s.sendall(b"*2\r\n$3\r\nGET\r\n!!!\r\n")
    assert b"Protocol error" in read_until_closed(s)
    assert ok.get("k") == b"v"


def test_too_many_connections_get_an_error(tmp_path: Path) -> None:
    s = start_state(tmp_path / "s", "--max-connections", "4")
    try:
        held = [raw(s.resp_port or 0) for _ in range(4)]
        for h in held:  # each one is admitted and served
            h.sendall(b"PING\r\n")
            assert h.recv(100) == b"+PONG\r\n"
        extra = raw(s.resp_port or 0)
        assert read_until_closed(extra) == b"-ERR max number of clients reached\r\n"
        held.pop().close()
        # The slot is free once the server has seen the close: a new connection is
        # admitted as soon as that happened (bounded retries, each a full round trip).
        for _ in range(200):
            c = raw(s.resp_port or 0)
            c.sendall(b"PING\r\n")
            if c.recv(100) == b"+PONG\r\n":
                break
        else:
            pytest.fail("a freed connection slot was never reused")
    finally:
        assert s.stop() == 0


def test_a_slow_partial_request_is_closed_after_the_read_timeout(tmp_path: Path) -> None:
    s = start_state(tmp_path / "s", "--read-timeout", "300ms")
    try:
        slow = raw(s.resp_port or 0)
        slow.sendall(b"*2\r\n$3\r\nGET\r\n$5\r\nab")
        assert read_until_closed(slow) == b""
        # An idle connection with nothing pending is not closed (no idle timeout).
        idle = raw(s.resp_port or 0)
        busy = s.client()
        for _ in range(100):
            busy.ping()
        idle.sendall(b"PING\r\n")
        assert idle.recv(100) == b"+PONG\r\n"
    finally:
        assert s.stop() == 0


def test_a_pipeline_of_10k_commands(server: StateServer) -> None:
    r = server.client()
    p = r.pipeline(transaction=False)
    for i in range(10_000):
        p.set(f"k{i}", str(i))
    for i in range(10_000):
        p.get(f"k{i}")
    out = p.execute()
    assert out[:10_000] == [True] * 10_000
    assert out[10_000:] == [str(i).encode() for i in range(10_000)]


def test_200_concurrent_clients_for_a_bounded_time_see_no_errors(server: StateServer) -> None:
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            c = server.client("alice" if i % 2 else "bob")
            for j in range(25):
                c.set(f"c{i}:{j}", str(j))
                assert c.get(f"c{i}:{j}") == str(j).encode()
            c.close()
        except BaseException as e:  # noqa: BLE001 - collected and asserted
            errors.append(e)

    ts = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
    assert errors == []
    assert server.client("alice").dbsize() == 100 * 25


# --- shutdown and crashes ---------------------------------------------------


def writer_load(s: StateServer, acked: list[str], stop: threading.Event, n: int) -> list[threading.Thread]:
    def work(w: int) -> None:
        try:
            c = s.client()
            for i in range(100_000):
                if stop.is_set():
                    return
                k = f"w{w}:{i}"
                c.set(k, k)
                acked.append(k)
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError):
            return

    ts = [threading.Thread(target=work, args=(w,)) for w in range(n)]
    for t in ts:
        t.start()
    return ts


@pytest.mark.parametrize("sig,extra", [(signal.SIGTERM, ()), (signal.SIGKILL, ("--sync",))], ids=["sigterm", "sigkill-sync"])
def test_every_acknowledged_write_survives_shutdown_or_a_kill(tmp_path: Path, sig: signal.Signals, extra: tuple[str, ...]) -> None:
    store = tmp_path / "s"
    s = start_state(store, *extra)
    acked: list[str] = []
    stop = threading.Event()
    ts = writer_load(s, acked, stop, 8)
    # Wait for real load before the signal (a count, not a sleep).
    probe = s.client()
    while len(acked) < 2000:
        probe.ping()
    rc = s.stop(sig)
    stop.set()
    for t in ts:
        t.join(timeout=60)
    if sig == signal.SIGTERM:
        assert rc == 0
    s2 = start_state(store, clients=())
    s2.tokens = s.tokens
    try:
        c = s2.client()
        vals = c.mget(acked) if acked else []
        missing = [k for k, v in zip(acked, vals) if v != k.encode()]
        assert missing == [], f"{len(missing)} of {len(acked)} acknowledged writes lost"
    finally:
        assert s2.stop() == 0


# --- real clients nobody here wrote -----------------------------------------


def test_redis_cli_works_over_tcp_and_the_unix_socket(server: StateServer) -> None:
    cli = shutil.which("redis-cli")
    assert cli, "redis-cli is installed by make test (Debian's redis-tools)"
    base = [cli, "-p", str(server.resp_port), "--user", "alice", "--pass", server.tokens["alice"], "--no-auth-warning"]
    run = lambda *a: subprocess.run([*base, *a], capture_output=True, text=True, timeout=30, check=True).stdout.strip()  # noqa: E731
    assert run("SET", "layout", '{"cols":3}') == "OK"
    assert run("GET", "layout") == '{"cols":3}'
    assert run("INCR", "n") == "1"
    assert run("TTL", "layout") == "-1"
    assert run("DBSIZE") == "2"
    u = subprocess.run([cli, "-s", str(server.unix), "PING"], capture_output=True, text=True, timeout=30, check=True)
    assert u.stdout.strip() == "PONG"
    noauth = subprocess.run([cli, "-p", str(server.resp_port), "GET", "k"], capture_output=True, text=True, timeout=30)
    assert "NOAUTH" in noauth.stdout + noauth.stderr


def test_redis_benchmark_runs_clean(server: StateServer) -> None:
    exe = shutil.which("redis-benchmark")
    assert exe, "redis-benchmark is installed by make test (Debian's redis-tools)"
    out = subprocess.run(
        [exe, "-p", str(server.resp_port), "--user", "alice", "-a", server.tokens["alice"], "-t", "set,get,incr,mset", "-n", "2000", "-c", "10", "-P", "8", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "requests per second" in out.stdout
    assert "ERR" not in out.stdout + out.stderr


# --- TLS --------------------------------------------------------------------


def test_tls_listeners(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a test certificate"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    s = start_state(tmp_path / "s", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        r = redis.Redis(host="127.0.0.1", port=s.resp_port, username="alice", password=s.tokens["alice"], ssl=True, ssl_ca_certs=str(cert))
        assert r.set("k", "over tls") and r.get("k") == b"over tls"
        import ssl

        import httpx

        ctx = ssl.create_default_context(cafile=str(cert))
        resp = httpx.post(f"https://127.0.0.1:{s.http_port}/v1/get", json={"key": "k"}, headers={"Authorization": f"Bearer {s.tokens['alice']}"}, verify=ctx)
        assert resp.json()["found"] is True
        # A plain-text client gets nothing it can use.
        plain = raw(s.resp_port or 0)
        plain.sendall(b"PING\r\n")
        assert b"PONG" not in read_until_closed(plain)
    finally:
        assert s.stop() == 0


# --- connection commands libstate answers itself -----------------------------


def test_server_and_connection_commands(server: StateServer) -> None:
    r = server.client(single_connection_client=True)
    assert r.command_count() >= 45
    commands = r.command()
    assert commands["get"]["arity"] == 2 and commands["set"]["arity"] == -3
    info = r.info()
    assert info["redis_version"] == "7.0.0" and info["client"] == "alice" and info["redis_mode"] == "standalone"
    cid = r.client_id()
    assert isinstance(cid, int) and cid > 0
    assert f"id={cid}" in str(r.execute_command("CLIENT", "INFO"))
    assert r.config_get("appendonly") == {"appendonly": "no"}
    with pytest.raises(redis.ResponseError, match="CONFIG"):
        r.config_set("maxmemory", "1")
    s = raw(server.resp_port or 0)
    assert send(s, "AUTH", server.tokens["alice"]) == b"+OK\r\n"
    assert send(s, "MULTI") == b"+OK\r\n"
    assert send(s, "RESET") == b"+RESET\r\n"
    assert send(s, "GET", "k").startswith(b"-NOAUTH")  # RESET signs out on TCP
    assert send(s, "QUIT") == b"+OK\r\n"
    assert read_until_closed(s) == b""
