"""Store: opening, options, buckets, flush, info, close, reopen, locking."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import libstate

from conftest import OpenStore


def test_open_creates_directory_and_reports_path_and_engine(
    store_path: Path, open_store: OpenStore, engine: str
) -> None:
    with open_store() as store:
        assert store_path.is_dir()
        assert store.path == str(store_path.resolve())
        assert store.engine == engine
        assert engine in repr(store)


def test_open_accepts_str_and_pathlike(tmp_path: Path, open_store: OpenStore) -> None:
    with open_store(at=str(tmp_path / "a")) as a, open_store(at=tmp_path / "b") as b:
        assert a.path.endswith("a") and b.path.endswith("b")


def test_store_directory_is_private(store_path: Path, open_store: OpenStore) -> None:
    with open_store():
        assert (store_path.stat().st_mode & 0o777) == 0o700


def test_open_with_every_option(store_path: Path, open_store: OpenStore) -> None:
    with open_store(
        sync=True,
        flush_interval=0.05,
        cache_size=1 << 20,
        max_value_size=10,
        max_batch_size=100,
    ) as store:
        b = store.bucket("b")
        b["k"] = b"0123456789"
        with pytest.raises(libstate.InvalidArgument, match="limit of 10"):
            b["k"] = b"0123456789x"
        assert b["k"] == b"0123456789"


def test_module_constants_are_the_core_defaults() -> None:
    assert libstate.DEFAULT_FLUSH_INTERVAL == 0.5
    assert isinstance(libstate.DEFAULT_CACHE_SIZE, int) and libstate.DEFAULT_CACHE_SIZE > 0
    assert libstate.DEFAULT_MAX_VALUE_SIZE == 16 << 20
    assert libstate.DEFAULT_MAX_BATCH_SIZE == 256 << 20
    assert libstate.MAX_KEY_LEN == 1024
    assert libstate.MAX_BUCKET_NAME_LEN == 255
    assert isinstance(libstate.__version__, str) and libstate.__version__


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("flush_interval", 0.0, "flush_interval"),
        ("flush_interval", -1.0, "flush_interval"),
        ("flush_interval", float("nan"), "flush_interval"),
        ("cache_size", 0, "cache_size"),
        ("cache_size", -5, "cache_size"),
        ("max_value_size", 0, "max_value_size"),
        ("max_batch_size", -1, "max_batch_size"),
    ],
)
def test_out_of_range_options_are_invalid(store_path: Path, option: str, value: float, message: str, open_store: OpenStore) -> None:
    with pytest.raises(libstate.InvalidArgument, match=message):
        open_store(**{option: value})


def test_unknown_engine_is_invalid(store_path: Path) -> None:
    with pytest.raises(libstate.InvalidArgument, match="unknown engine"):
        libstate.open(store_path, engine="nope")


def test_path_that_is_a_file_is_invalid(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(libstate.InvalidArgument, match="not a directory"):
        libstate.open(f)


def test_empty_path_is_invalid() -> None:
    with pytest.raises(libstate.InvalidArgument, match="empty"):
        libstate.open("")


def test_uncreatable_directory_is_an_io_error_with_errno() -> None:
    with pytest.raises(libstate.StoreIOError) as ei:
        libstate.open("/proc/self/no-such-dir/store")
    assert isinstance(ei.value, OSError)
    assert ei.value.errno == 2
    assert "/proc/self/no-such-dir/store" in str(ei.value)


def test_damaged_store_is_corrupt_and_left_untouched(store_path: Path, open_store: OpenStore) -> None:
    with open_store() as store:
        store.bucket("a")["k"] = b"v"
    files = [p for p in store_path.iterdir() if p.is_file()]
    for p in files:
        p.write_bytes(b"\xff" * 64)
    with pytest.raises(libstate.CorruptStore, match="left untouched"):
        open_store()
    assert all(p.read_bytes() == b"\xff" * 64 for p in files)


def test_bucket_names_lists_non_empty_buckets_in_order(store: libstate.Store) -> None:
    assert store.bucket_names() == []
    store.bucket("zeta")["k"] = b"1"
    store.bucket("alpha")["k"] = b"1"
    store.bucket("empty")
    assert store.bucket_names() == ["alpha", "zeta"]


@pytest.mark.parametrize("name", ["", "a\x00b", "tab\there", "x" * 256])
def test_invalid_bucket_names_are_refused(store: libstate.Store, name: str) -> None:
    with pytest.raises(libstate.InvalidArgument, match="bucket name"):
        store.bucket(name)
    with pytest.raises(libstate.InvalidArgument):
        store.remove_bucket(name)


def test_bucket_name_at_the_limit_is_accepted(store: libstate.Store) -> None:
    b = store.bucket("é" * 127)  # 254 bytes
    b["k"] = b"v"
    assert b.name == "é" * 127


def test_remove_bucket_reports_whether_it_held_records(store: libstate.Store) -> None:
    b = store.bucket("b")
    b.set_many({"a": b"1", "b": b"2"})
    other = store.bucket("other")
    other["a"] = b"1"
    assert store.remove_bucket("b") is True
    assert len(b) == 0 and b.get("a") is None
    assert store.remove_bucket("b") is False
    assert other["a"] == b"1"


def test_flush_and_info(store: libstate.Store) -> None:
    store.bucket("a").set_many({"x": b"1", "y": b"2"})
    store.bucket("b")["z"] = b"3"
    store.bucket("b").set("t", b"4", ttl=3600)
    store.flush()
    info = store.info()
    assert isinstance(info, libstate.StoreInfo)
    assert info.path == store.path
    assert info.engine == store.engine
    assert (info.buckets, info.records, info.expiring) == (2, 4, 1)
    assert info.disk_bytes > 0
    assert info.engine_details is None
    # The fields of the core's StoreInfo, in its order.
    assert libstate.StoreInfo._fields == (
        "path", "engine", "buckets", "records", "expiring", "disk_bytes", "engine_details"
    )


def test_context_manager_closes_and_propagates_exceptions(store_path: Path, open_store: OpenStore) -> None:
    with pytest.raises(RuntimeError):
        with open_store() as store:
            b = store.bucket("a")
            raise RuntimeError("boom")
    with pytest.raises(libstate.StoreClosed):
        b.get("k")


def test_close_is_idempotent(store_path: Path, open_store: OpenStore) -> None:
    store = open_store()
    store.close()
    store.close()


def test_everything_raises_store_closed_after_close(store_path: Path, open_store: OpenStore) -> None:
    store = open_store()
    b = store.bucket("b")
    b.set_many({"a": b"1", "b": b"2"})
    cur = b.cursor()
    it = iter(b)
    store.close()
    calls = [
        lambda: store.bucket("b"),
        store.bucket_names,
        lambda: store.remove_bucket("b"),
        store.flush,
        store.info,
        lambda: b["a"],
        lambda: b.get("a"),
        lambda: b.set("a", b"1"),
        lambda: b.__setitem__("a", b"1"),
        lambda: b.__delitem__("a"),
        lambda: b.delete("a"),
        lambda: "a" in b,
        lambda: len(b),
        lambda: bool(b),
        lambda: list(b),
        lambda: b.get_many(["a"]),
        lambda: b.set_many({"a": b"1"}),
        lambda: b.get_json("a"),
        lambda: b.set_json("a", 1),
        lambda: list(b.range()),
        lambda: list(b.prefix("a")),
        b.clear,
        b.cursor,
        cur.first,
        cur.next,
        lambda: cur.next_n(2),
        lambda: next(it),
        lambda: libstate.StateService(store).handle("b", "get", '{"key":"a"}'),
    ]
    for call in calls:
        with pytest.raises(libstate.StoreClosed):
            call()


def test_data_survives_reopen(store_path: Path, open_store: OpenStore) -> None:
    with open_store() as store:
        b = store.bucket("b")
        b.set_many({f"k{i:03}": bytes([i]) for i in range(100)})
        del b["k050"]
    with open_store() as store:
        b = store.bucket("b")
        assert len(b) == 99
        assert b["k007"] == bytes([7])
        assert "k050" not in b


def test_data_written_by_another_process_is_read_after_it_exits(store_path: Path, open_store: OpenStore, engine: str) -> None:
    code = textwrap.dedent(
        f"""
        import libstate
        with libstate.open({str(store_path)!r}, {engine!r}, sync=True) as s:
            s.bucket("child").set_many({{"a": b"1", "b": b"2"}})
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with open_store() as store:
        assert dict(store.bucket("child")) == {"a": b"1", "b": b"2"}


def test_second_process_gets_store_locked_naming_the_directory(store_path: Path, open_store: OpenStore, engine: str) -> None:
    code = textwrap.dedent(
        f"""
        import libstate, sys
        try:
            libstate.open({str(store_path)!r}, {engine!r})
        except libstate.StoreLocked as e:
            print(e)
            sys.exit(3)
        """
    )
    with open_store():
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 3, p.stderr
    assert str(store_path.resolve()) in p.stdout
    assert "locked" in p.stdout


def test_second_open_in_process_shares_the_store(store_path: Path, open_store: OpenStore) -> None:
    a = open_store()
    b = open_store()
    a.bucket("x")["k"] = b"1"
    assert b.bucket("x")["k"] == b"1"
    a.close()
    # The store stays open while another handle is open.
    assert b.bucket("x")["k"] == b"1"
    with pytest.raises(libstate.StoreClosed):
        a.bucket("x")
    b.close()


def test_second_open_with_another_engine_is_invalid(store_path: Path, open_store: OpenStore, engine: str) -> None:
    other = "memfile" if engine == "sled" else "sled"
    with open_store():
        with pytest.raises(libstate.InvalidArgument, match="already open"):
            libstate.open(store_path, other)


def test_public_classes_extend_the_native_ones() -> None:
    assert issubclass(libstate.Store, libstate._native.Store)
    assert issubclass(libstate.Bucket, libstate._native.Bucket)
    assert issubclass(libstate.StateService, libstate._native.StateService)


def test_every_public_item_has_a_docstring() -> None:
    for name in libstate.__all__:
        obj = getattr(libstate, name)
        if isinstance(obj, (int, float, str)):
            continue
        assert obj.__doc__, name
        if not isinstance(obj, type):
            continue
        for cls in obj.__mro__:
            if not cls.__module__.startswith("libstate"):
                continue
            for attr, member in vars(cls).items():
                public = not attr.startswith("_") or attr in ("__getitem__", "__iter__", "__next__")
                if public and (callable(member) or isinstance(member, property)):
                    assert getattr(member, "__doc__", None), f"{cls.__name__}.{attr}"


def test_fd_is_released_after_close(store_path: Path, open_store: OpenStore) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with open_store() as s:
            s.bucket("a")["k"] = b"v"
    assert len(os.listdir("/proc/self/fd")) <= before + 1
