"""The HTTP API: the original's stateapi messages at POST /v1/{method}, cursors,
errors with status codes, /healthz, /metrics and CORS; with httpx and curl."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import StateServer, start_state, state


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def api(s: StateServer, method: str, body: object, client: str = "alice") -> httpx.Response:
    return httpx.post(f"{s.http}/v1/{method}", json=body, headers={"Authorization": f"Bearer {s.tokens[client]}"}, timeout=30)


def test_the_stateapi_methods(server: StateServer) -> None:
    assert api(server, "set", {"key": "layout", "value": b64(b'{"cols":3}')}).json() == {}
    assert api(server, "get", {"key": "layout"}).json() == {"key": "layout", "found": True, "value": b64(b'{"cols":3}')}
    assert api(server, "get", {"key": "nope"}).json() == {"key": "nope", "found": False, "value": None}
    assert api(server, "setMultiple", {"kv": {"a": b64(b"1"), "b": b64(b"\x00\xff")}}).json() == {}
    assert api(server, "getMultiple", {"keys": ["a", "b", "missing"]}).json() == {"kv": {"a": b64(b"1"), "b": b64(b"\x00\xff")}}
    assert api(server, "delete", {"key": "a"}).json() == {"key": "a", "found": True}
    assert api(server, "delete", {"key": "a"}).json() == {"key": "a", "found": False}
    assert api(server, "set", {"key": "s", "value": b64(b"x"), "ttlMs": 1_000_000}).json() == {}
    ttl = api(server, "ttl", {"key": "s"}).json()
    assert ttl["found"] and 990_000 < ttl["ttlMs"] <= 1_000_000
    assert api(server, "persist", {"key": "s"}).json() == {"key": "s", "found": True}
    assert api(server, "ttl", {"key": "s"}).json() == {"key": "s", "found": True, "ttlMs": None}
    assert api(server, "expire", {"key": "s", "ttlMs": 5000}).json() == {"key": "s", "found": True}
    assert api(server, "expire", {"key": "gone", "ttlMs": 5000}).json() == {"key": "gone", "found": False}
    # The same data over the Redis protocol: one store, one client, two front ends.
    assert server.client().get("layout") == b'{"cols":3}'


def test_cursors_over_http_are_the_originals_todo(server: StateServer) -> None:
    api(server, "setMultiple", {"kv": {f"k{i}": b64(str(i).encode()) for i in range(5)}})
    key = api(server, "getCursor", {}).json()["cursorKey"]
    assert api(server, "cursorFirst", {"cursorKey": key}).json() == {"key": "k0", "value": b64(b"0"), "valid": True}
    page = api(server, "cursorNextN", {"cursorKey": key, "limit": 3}).json()
    assert [v["key"] for v in page["values"]] == ["k1", "k2", "k3"] and page["itemsRemaining"] is True
    page = api(server, "cursorNextN", {"cursorKey": key, "limit": 3}).json()
    assert [v["key"] for v in page["values"]] == ["k4"] and page["itemsRemaining"] is False
    assert api(server, "cursorSeek", {"cursorKey": key, "key": "k2"}).json()["key"] == "k2"
    assert api(server, "cursorPrevN", {"cursorKey": key, "limit": 5}).json()["values"][0]["key"] == "k1"
    # Bob cannot use alice's cursor.
    r = api(server, "cursorNext", {"cursorKey": key}, client="bob")
    assert r.status_code == 400 and "no cursor" in r.json()["error"]
    assert api(server, "cursorRelease", {"cursorKey": key}).json() == {"found": True}
    assert api(server, "cursorNext", {"cursorKey": key}).status_code == 400


def test_errors_have_kinds_and_status_codes(server: StateServer) -> None:
    u = f"{server.http}/v1/get"
    r = httpx.post(u, json={"key": "k"})
    assert r.status_code == 401 and r.json()["kind"] == "unauthorized"
    r = httpx.post(u, json={"key": "k"}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert api(server, "noSuchMethod", {}).status_code == 404
    r = api(server, "get", {"wrong": "field"})
    assert r.status_code == 400 and r.json()["kind"] == "invalid argument"
    r = api(server, "get", {"key": ""})
    assert r.status_code == 400 and "key" in r.json()["error"]
    r = httpx.post(u, content=b"{not json", headers={"Authorization": f"Bearer {server.tokens['alice']}"})
    assert r.status_code == 400


def test_a_body_over_the_limit_is_413_and_quota_is_507(tmp_path: Path) -> None:
    store = tmp_path / "s"
    tok = state(store, "client", "add", "small", "--max-records", "1").strip()
    s = start_state(store, clients=())
    s.tokens["small"] = tok
    try:
        assert api(s, "set", {"key": "a", "value": b64(b"1")}, client="small").status_code == 200
        r = api(s, "set", {"key": "b", "value": b64(b"1")}, client="small")
        assert r.status_code == 507 and r.json()["kind"] == "quota exceeded"
        big = "A" * (30 << 20)  # over the body limit for the default 16 MiB values
        r = httpx.post(f"{s.http}/v1/set", content=f'{{"key":"x","value":"{big}"}}', headers={"Authorization": f"Bearer {tok}"}, timeout=60)
        assert r.status_code == 413
        metrics = httpx.get(f"{s.http}/metrics").text
        assert "libstate_quota_refusals_total 1" in metrics
    finally:
        assert s.stop() == 0


def test_isolation_over_http(server: StateServer) -> None:
    api(server, "set", {"key": "secret", "value": b64(b"alice")})
    assert api(server, "get", {"key": "secret"}, client="bob").json()["found"] is False
    assert api(server, "getMultiple", {"keys": ["secret"]}, client="bob").json() == {"kv": {}}
    assert api(server, "delete", {"key": "secret"}, client="bob").json()["found"] is False
    assert api(server, "get", {"key": "secret"}).json()["found"] is True


def test_healthz_metrics_and_cors(tmp_path: Path) -> None:
    s = start_state(tmp_path / "s", "--cors", "http://app.example")
    try:
        assert httpx.get(f"{s.http}/healthz").text == "ok\n"
        s.client().set("k", "v")
        m = httpx.get(f"{s.http}/metrics").text
        assert 'libstate_commands_total{command="set"} 1' in m, m
        assert "libstate_connections_total" in m and "libstate_request_duration_seconds_bucket" in m
        # The counts are kept as writes commit: the write shows at once.
        assert "libstate_records 1\n" in m and "libstate_buckets 1\n" in m, m
        assert "count_age" not in m
        pre = httpx.options(f"{s.http}/v1/get", headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
        assert pre.headers.get("access-control-allow-origin") == "http://app.example"
        other = httpx.options(f"{s.http}/v1/get", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in other.headers
    finally:
        assert s.stop() == 0


def test_no_cors_headers_without_cors_flag(server: StateServer) -> None:
    r = api(server, "get", {"key": "k"})
    assert "access-control-allow-origin" not in r.headers


def test_curl(server: StateServer) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is missing")
    out = subprocess.run(
        [curl, "-sf", "-H", f"Authorization: Bearer {server.tokens['alice']}", "-d", '{"key":"k","value":"dg=="}', f"{server.http}/v1/set"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    assert out.stdout == "{}"


def test_a_non_loopback_address_needs_tls_or_insecure(tmp_path: Path) -> None:
    from conftest import STATE_BIN

    r = subprocess.run(
        [str(STATE_BIN), "--store", str(tmp_path / "s"), "serve", "--create", "--resp", "0.0.0.0:0", "--http", "off", "--unix", "off"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 2 and "not a loopback address" in r.stderr
