"""Running `state serve` as operators do (issue 26): the config file and its
precedence, the socket's mode and group, log formats and colour, refusing a
mistyped store directory."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

import redis

from conftest import STATE_BIN, StateServer, start_state, state


def spawn(store: Path, *args: str, env: dict[str, str] | None = None, **kw: object) -> tuple[subprocess.Popen[str], list[str]]:
    """Starts `state --store STORE serve ARGS` and reads standard output up to its
    `ready` line (the handshake); returns the process and the lines read."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STATE_")}
    full_env.update(env or {})
    proc = subprocess.Popen(
        [str(STATE_BIN), "--store", str(store), "serve", *args],
        stdout=subprocess.PIPE,
        stderr=kw.pop("stderr", subprocess.PIPE),
        text=True,
        env=full_env,
        **kw,  # type: ignore[arg-type]
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while True:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"state serve exited {proc.wait()}: {''.join(lines)} {err}")
        lines.append(line)
        if line.startswith("state serve: ready"):
            return proc, lines


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err or ""


def reap(proc: subprocess.Popen[str] | None) -> None:
    """Kills a server a failed test left running."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def port_of(lines: list[str], what: str) -> int | None:
    pattern = {"resp": r"redis protocol on 127\.0\.0\.1:(\d+)", "http": r"HTTP on https?://127\.0\.0\.1:(\d+)/"}[what]
    for line in lines:
        if m := re.search(pattern, line):
            return int(m.group(1))
    return None


def test_config_file_sets_flags_and_the_command_line_and_environment_override_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    sock = tmp_path / "s.sock"
    conf = tmp_path / "serve.toml"
    conf.write_text(
        f'engine = "memfile"\ncreate = true\nunix = "{sock}"\nunix-mode = "0660"\n'
        'resp = "127.0.0.1:0"\nhttp = "off"\nmax_connections = 1\n'
    )
    # The file alone: its socket, its mode, no HTTP listener.
    proc, lines = spawn(store, "--config", str(conf))
    try:
        assert port_of(lines, "resp") is not None and port_of(lines, "http") is None
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
        assert (store / "libstate.meta").read_text().find("memfile") > 0
    finally:
        assert stop(proc)[0] == 0
    # STATE_HTTP beats the file's `http = "off"`; --resp off beats both the file
    # and STATE_RESP; STATE_MAX_CONNECTIONS=3 beats the file's 1.
    env = {"STATE_HTTP": "127.0.0.1:0", "STATE_RESP": "127.0.0.1:0", "STATE_MAX_CONNECTIONS": "3"}
    proc, lines = spawn(store, "--config", str(conf), "--resp", "off", env=env)
    try:
        assert port_of(lines, "http") is not None
        assert port_of(lines, "resp") is None
        clients = [redis.Redis(unix_socket_path=str(sock), socket_timeout=30) for _ in range(3)]
        for c in clients:
            assert c.ping()
    finally:
        assert stop(proc)[0] == 0


def test_a_bad_config_file_names_the_key_and_serves_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "serve.toml"
    conf.write_text("max-conections = 3\n")
    r = subprocess.run([str(STATE_BIN), "--store", str(tmp_path / "s"), "serve", "--config", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "serve.toml" in r.stderr and '"max-conections": no such setting' in r.stderr


def test_socket_mode_and_group_flags(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    gid = os.getgid()
    proc, _ = spawn(tmp_path / "store", "--create", "--unix", str(sock), "--unix-mode", "0660", "--unix-group", str(gid), "--resp", "off", "--http", "off")
    try:
        st = os.stat(sock)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == gid
        assert redis.Redis(unix_socket_path=str(sock), socket_timeout=30).ping()
    finally:
        assert stop(proc)[0] == 0
    r = subprocess.run([str(STATE_BIN), "--store", str(tmp_path / "store"), "serve", "--unix-mode", "999"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "octal mode" in r.stderr


def test_a_store_directory_that_does_not_exist_is_refused_without_create(tmp_path: Path) -> None:
    typo = tmp_path / "sotre"
    r = subprocess.run([str(STATE_BIN), "--store", str(typo), "serve", "--resp", "off", "--http", "off"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3
    assert "does not exist" in r.stderr and "--create" in r.stderr
    assert not typo.exists()
    proc, _ = spawn(typo, "--create", "--resp", "off", "--http", "off")
    assert stop(proc)[0] == 0
    assert (typo / "libstate.meta").exists()
    # The default store (no --store, no STATE_STORE) is created where it runs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATE_")}
    proc2 = subprocess.Popen([str(STATE_BIN), "serve", "--resp", "off", "--http", "off"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc2.stdout is not None
    while not (line := proc2.stdout.readline()).startswith("state serve: ready"):
        assert line, proc2.stderr.read() if proc2.stderr else ""
    assert stop(proc2)[0] == 0
    assert (tmp_path / "state-data" / "libstate.meta").exists()


def test_log_format_json_writes_one_object_per_line(tmp_path: Path) -> None:
    proc, _ = spawn(tmp_path / "store", "--create", "--log-format", "json", "--resp", "off", "--http", "off")
    rc, err = stop(proc)
    assert rc == 0
    logged = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert logged, "the shutdown is logged"
    assert all("level" in e and "fields" in e for e in logged)
    assert any("shutting down" in e["fields"].get("message", "") for e in logged)


def _stderr_on_a_terminal(tmp_path: Path, env: dict[str, str]) -> bytes:
    """The server's standard error when it is a terminal (a pty)."""
    master, slave = pty.openpty()
    try:
        proc, _ = spawn(tmp_path / "store", "--create", "--resp", "off", "--http", "off", env=env, stderr=slave)
        os.close(slave)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the pty is gone
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        os.close(master)


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path: Path) -> None:
    assert b"\x1b[" in _stderr_on_a_terminal(tmp_path, {})
    plain = _stderr_on_a_terminal(tmp_path, {"NO_COLOR": "1"})
    assert b"shutting down" in plain and b"\x1b[" not in plain
    # Not a terminal: no colour either.
    proc, _ = spawn(tmp_path / "store", "--resp", "off", "--http", "off")
    rc, err = stop(proc)
    assert rc == 0 and "shutting down" in err and "\x1b[" not in err


# --- signals and supervision ---------------------------------------------------


class Notifications:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(30)

    def next(self) -> str:
        return self.sock.recv(4096).decode()

    def close(self) -> None:
        self.sock.close()


def make_cert(dir: Path, name: str) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a test certificate"
    cert, key = dir / f"{name}.crt", dir / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def served_cert(port: int) -> bytes:
    """The certificate (DER) a TLS handshake on `port` presents."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw_sock:
        with ctx.wrap_socket(raw_sock) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return der


def der_of(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def test_readiness_reload_and_stopping_are_notified_and_sighup_never_stops(tmp_path: Path) -> None:
    notes = Notifications(tmp_path / "notify.sock")
    sock = tmp_path / "s.sock"
    proc = None
    try:
        proc, lines = spawn(tmp_path / "store", "--create", "--unix", str(sock), "--resp", "127.0.0.1:0", "--http", "127.0.0.1:0", env={"NOTIFY_SOCKET": str(notes.path)})
        assert notes.next() == "READY=1"
        # Ready means every listener accepts.
        assert redis.Redis(unix_socket_path=str(sock), socket_timeout=30).ping()
        for what in ("resp", "http"):
            port = port_of(lines, what)
            assert port is not None
            socket.create_connection(("127.0.0.1", port), timeout=30).close()
        for _ in range(2):
            proc.send_signal(signal.SIGHUP)
            reloading = notes.next().split("\n")
            assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")
            assert notes.next() == "READY=1"
            assert proc.poll() is None
            assert redis.Redis(unix_socket_path=str(sock), socket_timeout=30).ping()
        proc.send_signal(signal.SIGTERM)
        assert notes.next() == "STOPPING=1"
        assert proc.wait(timeout=60) == 0
        assert not sock.exists()
    finally:
        reap(proc)
        notes.close()


def test_sighup_reloads_the_client_list_and_keeps_it_when_the_new_one_is_bad(tmp_path: Path) -> None:
    notes = Notifications(tmp_path / "notify.sock")
    s = start_state(tmp_path / "store", clients=("alice",))
    s.proc.terminate()
    assert s.proc.wait(timeout=60) == 0
    clients = tmp_path / "store" / "clients.toml"
    good = clients.read_text()
    proc = None
    try:
        proc, lines = spawn(tmp_path / "store", "--unix", "off", "--resp", "127.0.0.1:0", "--http", "off", env={"NOTIFY_SOCKET": str(notes.path)})
        port = port_of(lines, "resp")
        assert notes.next() == "READY=1"
        # Replaced atomically, as an editor or a config tool does: a reader never
        # sees it half-written (an empty file is a valid, empty list).
        bad = tmp_path / "bad.toml"
        bad.write_text("this is [not toml\n")
        bad.chmod(0o600)
        os.replace(bad, clients)
        proc.send_signal(signal.SIGHUP)
        assert notes.next().startswith("RELOADING=1")
        assert notes.next() == "READY=1"
        assert proc.poll() is None
        alice = redis.Redis(host="127.0.0.1", port=port, username="alice", password=s.tokens["alice"], socket_timeout=30)
        assert alice.ping(), "the previous list stays in force"
        fixed = tmp_path / "good.toml"
        fixed.write_text(good)
        fixed.chmod(0o600)
        os.replace(fixed, clients)
        carol = state(tmp_path / "store", "client", "add", "carol").strip()
        proc.send_signal(signal.SIGHUP)
        assert notes.next().startswith("RELOADING=1")
        assert notes.next() == "READY=1"
        assert redis.Redis(host="127.0.0.1", port=port, username="carol", password=carol, socket_timeout=30).ping()
        rc, err = stop(proc)
        assert rc == 0
        assert "reload: keeping the previous client list" in err
        assert "reloaded the client list" in err
    finally:
        reap(proc)
        notes.close()


def test_sighup_reloads_the_tls_certificate_and_keeps_it_when_the_new_one_is_bad(tmp_path: Path) -> None:
    notes = Notifications(tmp_path / "notify.sock")
    a_cert, a_key = make_cert(tmp_path, "a")
    b_cert, b_key = make_cert(tmp_path, "b")
    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(a_cert, cert)
    shutil.copy(a_key, key)
    proc = None
    try:
        proc, lines = spawn(tmp_path / "store", "--create", "--unix", "off", "--resp", "127.0.0.1:0", "--http", "off",
                            "--tls-cert", str(cert), "--tls-key", str(key), env={"NOTIFY_SOCKET": str(notes.path)})
        port = port_of(lines, "resp")
        assert port is not None
        assert notes.next() == "READY=1"
        assert served_cert(port) == der_of(a_cert)
        shutil.copy(b_cert, cert)
        shutil.copy(b_key, key)
        proc.send_signal(signal.SIGHUP)
        assert notes.next().startswith("RELOADING=1") and notes.next() == "READY=1"
        assert served_cert(port) == der_of(b_cert)
        key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        proc.send_signal(signal.SIGHUP)
        assert notes.next().startswith("RELOADING=1") and notes.next() == "READY=1"
        assert proc.poll() is None
        assert served_cert(port) == der_of(b_cert), "the previous certificate stays in force"
        rc, err = stop(proc)
        assert rc == 0
        assert "reload: keeping the previous TLS certificate and key" in err
    finally:
        reap(proc)
        notes.close()


def test_socket_activation_serves_the_listeners_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "activated.sock"
    unix_l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix_l.bind(str(path))
    unix_l.listen(16)
    resp_l = socket.socket()
    resp_l.bind(("127.0.0.1", 0))
    resp_l.listen(16)
    http_l = socket.socket()
    http_l.bind(("127.0.0.1", 0))
    http_l.listen(16)
    fds = [unix_l.fileno(), resp_l.fileno(), http_l.fileno()]

    def hand_over() -> None:
        # In the child, before exec: the sockets at fds 3, 4, 5, as systemd does.
        # High numbers first, so no dup2 overwrites a socket still to be moved.
        moved = [os.dup(fd) for fd in fds]
        for i, fd in enumerate(moved):
            os.dup2(fd, 3 + i)
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.environ["LISTEN_FDS"] = "3"
        os.environ["LISTEN_FDNAMES"] = "unix:resp:http"

    store = tmp_path / "store"
    s = start_state(store, clients=("alice",))
    assert s.stop() == 0
    env_before = dict(os.environ)
    try:
        for k in list(os.environ):
            if k.startswith("STATE_"):
                del os.environ[k]
        proc = subprocess.Popen(
            [str(STATE_BIN), "--store", str(store), "serve", "--resp", "127.0.0.1:1", "--http", "127.0.0.1:1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=hand_over, pass_fds=(3, 4, 5),
        )
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    assert proc.stdout is not None
    lines = []
    while not (line := proc.stdout.readline()).startswith("state serve: ready"):
        assert line, proc.stderr.read() if proc.stderr else ""
        lines.append(line)
    try:
        # The listeners it was handed, not the addresses on its command line.
        assert port_of(lines, "resp") == resp_l.getsockname()[1]
        assert port_of(lines, "http") == http_l.getsockname()[1]
        assert any(str(path) in line for line in lines)
        assert redis.Redis(unix_socket_path=str(path), socket_timeout=30).ping()
        r = redis.Redis(host="127.0.0.1", port=resp_l.getsockname()[1], username="alice", password=s.tokens["alice"], socket_timeout=30)
        assert r.set("k", "v") and r.get("k") == b"v"
    finally:
        rc, _ = stop(proc)
    assert rc == 0
    assert path.exists(), "the socket's owner (systemd) removes it, not the server"


# --- metrics and probes --------------------------------------------------------


def test_metrics_follow_prometheus_naming_with_build_and_process_metrics(tmp_path: Path) -> None:
    import httpx

    s = start_state(tmp_path / "s", "--metrics-token", "scrape-token")
    try:
        assert httpx.get(f"{s.http}/metrics").status_code == 401
        assert httpx.get(f"{s.http}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        s.client().set("k", "v")
        m = httpx.get(f"{s.http}/metrics", headers={"Authorization": "Bearer scrape-token"}).text
        samples = {}
        for line in m.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        # Every metric of ours carries the prefix; the process ones use the names
        # Prometheus client libraries use.
        for name in samples:
            assert name.startswith(("libstate_", "process_")), name
        version = subprocess.run([str(STATE_BIN), "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
        assert samples[f'libstate_build_info{{version="{version}",redis_version="7.0.0"}}'] == 1
        assert samples["process_resident_memory_bytes"] > 1 << 20
        assert samples["process_open_fds"] >= 3
        assert samples["process_cpu_seconds_total"] > 0
        assert abs(samples["process_start_time_seconds"] - time.time()) < 600
        assert samples['libstate_request_duration_seconds_bucket{le="+Inf"}'] >= 1
        assert "# TYPE libstate_request_duration_seconds histogram" in m
    finally:
        assert s.stop() == 0


def test_livez_and_readyz_answer_without_a_token(server: StateServer) -> None:
    import httpx

    assert httpx.get(f"{server.http}/livez").text == "ok\n"
    r = httpx.get(f"{server.http}/readyz")
    assert r.status_code == 200 and r.text == "ready\n"


# --- administration ------------------------------------------------------------


def run_admin(conn: redis.Redis, *args: str) -> tuple[int, str, str]:
    code, out, err = conn.execute_command("LIBSTATE.RUN", os.getcwd(), b"", *args)
    return int(code), out.decode(), err.decode()


def test_client_administration_while_serving_applies_at_once(tmp_path: Path) -> None:
    s = start_state(tmp_path / "s")
    try:
        alice = s.client("alice")
        for i in range(3):
            alice.set(f"k{i}", "v" * 10)
        s.client("bob").set("b", "1")
        usage = state(s.store, "client", "usage")
        assert re.search(r"^alice records=3 bytes=36 max_records=- ", usage, re.M), usage
        assert re.search(r"^bob records=1 bytes=2 ", usage, re.M), usage
        # A quota set now holds for alice's open connection.
        state(s.store, "client", "quota", "alice", "--max-records", "4")
        alice.set("k3", "v")
        try:
            alice.set("k4", "v")
            raise AssertionError("the quota was not applied")
        except redis.ResponseError as e:
            assert "quota" in str(e).lower()
        assert "max_records=4" in state(s.store, "client", "usage")
        state(s.store, "client", "quota", "alice", "--clear")
        alice.set("k4", "v")
        # A rotated token: printed once, the old one refused, its session ended.
        new = state(s.store, "client", "rotate", "alice").strip()
        assert len(new) > 20 and new != s.tokens["alice"]
        try:
            alice.ping()
            raise AssertionError("the old session was not ended")
        except redis.ConnectionError:
            pass
        try:
            s.client("alice").ping()
            raise AssertionError("the old token still works")
        except redis.AuthenticationError:
            pass
        s.tokens["alice"] = new
        fresh = s.client("alice")
        assert fresh.get("k0") == b"v" * 10
        # Purge: the data goes, the client stays.
        assert "removed the records of client alice" in state(s.store, "client", "purge", "alice")
        assert fresh.dbsize() == 0 and s.client("bob").get("b") == b"1"
    finally:
        assert s.stop() == 0


def test_libstate_run_is_for_the_owner_and_admin_clients_only(tmp_path: Path) -> None:
    import tempfile

    store = tmp_path / "s"
    tokens = {name: state(store, "--engine", "memfile", "client", "add", name, *extra).strip() for name, extra in (("alice", ()), ("ops", ("--admin",)))}
    state(store, "client", "add", "unix:nobody")  # an ordinary client on the socket
    # A socket other users can reach: in a world-traversable directory, mode 0666.
    open_dir = Path(tempfile.mkdtemp(dir="/tmp"))
    open_dir.chmod(0o755)
    sock = open_dir / "open.sock"
    proc, lines = spawn(store, "--unix", str(sock), "--unix-mode", "0666", "--resp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--metrics-token", "m")
    port = port_of(lines, "resp")
    http = f"http://127.0.0.1:{port_of(lines, 'http')}"
    tcp = lambda name: redis.Redis(host="127.0.0.1", port=port, username=name, password=tokens[name], socket_timeout=30)  # noqa: E731
    try:
        # The owner (this test runs as the server's user) on the socket: anything.
        owner = redis.Redis(unix_socket_path=str(sock), socket_timeout=30)
        code, out, _ = run_admin(owner, "info")
        assert code == 0 and "engine" in out
        # An admin client's token, over TCP: the client commands only.
        admin = tcp("ops")
        code, out, _ = run_admin(admin, "client", "usage")
        assert code == 0 and "ops (admin)" in out
        for refused in (("info",), ("backup", str(tmp_path / "x")), ("client", "--clients", "/tmp/x.toml", "list")):
            try:
                run_admin(admin, *refused)
                raise AssertionError(f"ops ran {refused}")
            except redis.exceptions.NoPermissionError:
                pass
        # Ordinary clients: nothing, by token over TCP, nor as another Unix user.
        try:
            run_admin(tcp("alice"), "client", "usage")
            raise AssertionError("alice ran an admin command")
        except redis.exceptions.NoPermissionError:
            pass
        # `state load` through the server (LIBSTATE.LOAD) is the owner's alone.
        for who in ("ops", "alice"):
            try:
                tcp(who).execute_command("LIBSTATE.LOAD", "BEGIN", "/", "load", "-")
                raise AssertionError(f"{who} started a load")
            except redis.exceptions.NoPermissionError:
                pass
        # Raw RESP from the system's python (the test's venv is not readable by
        # that user): the reply's first line.
        probe = (
            "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
            "s.sendall(b'*4\\r\\n$12\\r\\nLIBSTATE.RUN\\r\\n$1\\r\\n/\\r\\n$0\\r\\n\\r\\n$4\\r\\ninfo\\r\\n')\n"
            "print(s.makefile('rb').readline().decode().strip())\n"
        )
        r = subprocess.run(["/usr/bin/python3", "-c", probe, str(sock)], capture_output=True, text=True, timeout=60, user=65534)
        assert r.stdout.startswith("-NOPERM"), (r.stdout, r.stderr)
        # Over HTTP: the admin client runs client commands, nothing else; alice
        # nothing at all; a wrong token is 401.
        import httpx

        def post(token: str, args: list[str]) -> httpx.Response:
            return httpx.post(f"{http}/admin/run", json={"args": args}, headers={"Authorization": f"Bearer {token}"})

        ok = post(tokens["ops"], ["client", "usage"])
        assert ok.status_code == 200 and ok.json()["code"] == 0 and "alice records=0" in ok.json()["stdout"]
        assert post(tokens["ops"], ["info"]).status_code == 403
        assert post(tokens["alice"], ["client", "usage"]).status_code == 403
        assert post("wrong", ["client", "usage"]).status_code == 401
        # /metrics behind --metrics-token: that token or an admin client's.
        assert httpx.get(f"{http}/metrics", headers={"Authorization": f"Bearer {tokens['ops']}"}).status_code == 200
        assert httpx.get(f"{http}/metrics", headers={"Authorization": "Bearer m"}).status_code == 200
        assert httpx.get(f"{http}/metrics", headers={"Authorization": f"Bearer {tokens['alice']}"}).status_code == 401
    finally:
        assert stop(proc)[0] == 0
        shutil.rmtree(open_dir, ignore_errors=True)
