"""Store.check, Store.compact, Store.export and Store.import_."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest

import libstate

from conftest import OpenStore


def _seed(store: libstate.Store) -> None:
    b = store.bucket("user1")
    b["layout"] = b'{"cols":3}'
    b["bin"] = b"\x00\xff"
    b.set("session", b"tok", ttl=3600.0)
    store.bucket("device-7")["k"] = b"v"


def test_check_reports_counts_and_ok(store: libstate.Store) -> None:
    _seed(store)
    report = store.check()
    assert report.ok and report.problems == []
    assert [b.name for b in report.buckets] == ["device-7", "user1"]
    assert report.records == 4 and report.with_ttl == 1
    assert report.indexed_ttl == 1
    assert report.buckets[1] == libstate.BucketCheck("user1", 3, 1, 0, [])


def test_compact_keeps_every_record_and_ttl(store: libstate.Store) -> None:
    b = store.bucket("b")
    for round_ in range(3):
        b.set_many({f"k{i:04}": bytes([round_]) * 500 for i in range(500)})
    b.set("s", b"x", ttl=3600.0)
    report = store.compact()
    assert (report.records, report.buckets) == (501, 1)
    assert report.after_bytes > 0
    assert b["k0007"] == bytes([2]) * 500
    ttl = b.ttl("s")
    assert ttl is not None and 3500 < ttl <= 3600


def test_compact_refuses_over_a_leftover_copy(
    store: libstate.Store, store_path: Path
) -> None:
    _seed(store)
    (store_path.parent / ".store.compact").mkdir()
    with pytest.raises(libstate.StoreIOError, match="interrupted"):
        store.compact()
    assert store.bucket("user1")["layout"] == b'{"cols":3}'


def test_backup_of_a_store_being_written_is_point_in_time(
    store: libstate.Store, tmp_path: Path, open_store: OpenStore
) -> None:
    _seed(store)
    bulk = store.bucket("bulk")
    bulk.set_many({f"r{i:06}": b"x" * 64 for i in range(20_000)})
    pairs = store.bucket("pairs")
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        # Each batch sets both keys to the same number: a copy must never split one.
        while not stop.is_set():
            written[0] += 1
            n = str(written[0]).encode()
            pairs.set_many({"a": n, "b": n})

    t = threading.Thread(target=writer)
    t.start()
    try:
        while written[0] < 100:
            time.sleep(0.001)
        report = store.backup(tmp_path / "copy")
    finally:
        stop.set()
        t.join()
    assert report.path == str(tmp_path / "copy")
    assert report.buckets == 4 and report.write_pause < 0.05
    with pytest.raises(libstate.StoreIOError, match="already exists"):
        store.backup(tmp_path / "copy")
    with open_store(at=tmp_path / "copy") as copy:
        assert copy.check().ok
        assert len(copy.bucket("bulk")) == 20_000
        got = copy.bucket("pairs")
        assert got["a"] == got["b"]
        assert int(got["a"]) <= written[0]
        ttl = copy.bucket("user1").ttl("session")
        assert ttl is not None and 3500 < ttl <= 3600


def test_jsonl_export_and_import_round_trip_through_paths_with_ttls(
    store: libstate.Store, tmp_path: Path, open_store: OpenStore
) -> None:
    _seed(store)
    path = tmp_path / "dump.jsonl"
    written = store.export(path, "jsonl")
    assert (written.buckets, written.records, written.with_ttl) == (2, 4, 1)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["key"] for r in lines] == ["k", "bin", "layout", "session"]
    assert "expires_at_ms" in lines[3] and "expires_at_ms" not in lines[0]
    with open_store(at=tmp_path / "copy") as copy:
        loaded = copy.import_(path)  # the format comes from the extension
        assert (loaded.buckets, loaded.records, loaded.expired_skipped) == (2, 4, 0)
        ttl = copy.bucket("user1").ttl("session")
        assert ttl is not None and 3500 < ttl <= 3600
        again = tmp_path / "again.jsonl"
        copy.export(again, "jsonl")
        assert again.read_text() == path.read_text()


def test_json_export_to_a_file_object_matches_the_original_format(
    store: libstate.Store,
) -> None:
    store.bucket("device-7")["bin"] = b"\x00\xff\n\r"
    buf = io.BytesIO()
    report = store.export(buf, buckets=["device-7"])
    assert report.records == 1
    assert buf.getvalue() == b'{\n  "device-7": {\n    "bin": "AP8KDQ=="\n  }\n}\n'


def test_import_from_a_file_object_and_errors_name_the_line(
    store: libstate.Store,
) -> None:
    good = io.BytesIO(b'{"b": {"k": "dg=="}}')
    assert store.import_(good).records == 1
    assert store.bucket("b")["k"] == b"v"
    bad = io.BytesIO(
        b'{"bucket":"c","key":"a","value":"MQ=="}\n{"bucket":"c","key":"b"}\n'
    )
    with pytest.raises(libstate.InvalidArgument, match="line 2"):
        store.import_(bad, "jsonl")
    assert store.bucket("c")["a"] == b"1"
    with pytest.raises(libstate.InvalidArgument, match="format"):
        store.import_(io.BytesIO(b""), "xml")  # type: ignore[arg-type]


def test_an_exception_raised_by_the_file_object_propagates(
    store: libstate.Store,
) -> None:
    _seed(store)

    class Broken(io.RawIOBase):
        def write(self, b: object) -> int:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        store.export(Broken(), "jsonl")  # type: ignore[arg-type]


def test_import_of_a_missing_file_is_an_io_error(
    store: libstate.Store, tmp_path: Path
) -> None:
    with pytest.raises(libstate.StoreIOError):
        store.import_(tmp_path / "nope.json")
