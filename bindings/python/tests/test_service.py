"""StateService: per-client buckets and the original JSON RPC messages."""

from __future__ import annotations

import base64
import json

import pytest

import libstate


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def test_service_from_store_and_constructor(store: libstate.Store) -> None:
    assert isinstance(store.service(), libstate.StateService)
    svc = libstate.StateService(store)
    assert svc.store is store


def test_client_bucket_is_the_clients_own(store: libstate.Store) -> None:
    svc = store.service()
    svc.client("alice")["k"] = b"a"
    svc.client("bob")["k"] = b"b"
    assert store.bucket("alice")["k"] == b"a"
    assert isinstance(svc.client("bob"), libstate.Bucket)
    with pytest.raises(libstate.InvalidArgument):
        svc.client("")


def test_handle_speaks_the_original_messages(store: libstate.Store) -> None:
    svc = store.service()
    assert json.loads(svc.handle("alice", "set", json.dumps({"key": "k", "value": b64(b"v1")}))) == {}
    got = json.loads(svc.handle("alice", "get", '{"key": "k"}'))
    assert got == {"key": "k", "found": True, "value": b64(b"v1")}
    missing = json.loads(svc.handle("alice", "get", '{"key": "nope"}'))
    assert missing == {"key": "nope", "found": False, "value": None}
    svc.handle("alice", "setMultiple", json.dumps({"kv": {"a": b64(b"1"), "b": b64(b"2")}}))
    many = json.loads(svc.handle("alice", "getMultiple", '{"keys": ["a", "b", "zz"]}'))
    assert many == {"kv": {"a": b64(b"1"), "b": b64(b"2")}}
    assert json.loads(svc.handle("alice", "delete", '{"key": "a"}'))["found"] is True
    # Bob cannot see Alice's state.
    assert json.loads(svc.handle("bob", "get", '{"key": "k"}'))["found"] is False
    assert store.bucket("alice")["k"] == b"v1"


@pytest.mark.parametrize(
    ("method", "args", "match"),
    [
        ("nope", "{}", "unknown method"),
        ("get", "not json", "malformed"),
        ("get", '{"key": 1}', "malformed"),
        ("get", '{"key": ""}', "empty"),
        ("set", '{"key": "k", "value": "%%%"}', "malformed"),
    ],
)
def test_bad_requests_are_invalid_arguments(store: libstate.Store, method: str, args: str, match: str) -> None:
    with pytest.raises(libstate.InvalidArgument, match=match):
        store.service().handle("alice", method, args)


def test_invalid_client_id_is_invalid_argument(store: libstate.Store) -> None:
    with pytest.raises(libstate.InvalidArgument):
        store.service().handle("", "get", '{"key": "k"}')
