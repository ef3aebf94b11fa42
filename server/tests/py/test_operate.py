"""Running `state serve` as operators do (issue 26): the config file and its
precedence, the socket's mode and group, log formats and colour, refusing a
mistyped store directory."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import stat
import subprocess
from pathlib import Path

import redis

from conftest import STATE_BIN


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
