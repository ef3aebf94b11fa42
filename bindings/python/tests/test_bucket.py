"""Bucket: the mapping protocol, bytes-like values, batches, JSON, ranges."""

from __future__ import annotations

import collections
import collections.abc as abc
import gc
from array import array

import pytest

import libstate

from conftest import OpenStore


def test_bucket_is_a_mutable_mapping(bucket: libstate.Bucket) -> None:
    assert isinstance(bucket, abc.MutableMapping)
    assert isinstance(bucket, abc.Mapping)
    assert bucket.name == "user1"
    assert "user1" in repr(bucket)


def test_set_get_delete_roundtrip(bucket: libstate.Bucket) -> None:
    bucket["k"] = b"v"
    assert bucket["k"] == b"v"
    assert isinstance(bucket["k"], bytes)
    bucket.set("k", b"w")
    assert bucket.get("k") == b"w"
    del bucket["k"]
    assert bucket.get("k") is None


def test_getitem_of_missing_key_raises_key_error_with_the_key(bucket: libstate.Bucket) -> None:
    with pytest.raises(KeyError) as ei:
        bucket["nope"]
    assert ei.value.args == ("nope",)


def test_delitem_of_missing_key_raises_key_error(bucket: libstate.Bucket) -> None:
    with pytest.raises(KeyError):
        del bucket["nope"]


def test_get_returns_default_for_missing_key(bucket: libstate.Bucket) -> None:
    assert bucket.get("nope") is None
    assert bucket.get("nope", b"d") == b"d"
    sentinel = object()
    assert bucket.get("nope", sentinel) is sentinel


def test_delete_reports_whether_the_key_existed(bucket: libstate.Bucket) -> None:
    bucket["k"] = b"v"
    assert bucket.delete("k") is True
    assert bucket.delete("k") is False


def test_contains(bucket: libstate.Bucket) -> None:
    bucket["k"] = b"v"
    assert "k" in bucket
    assert "x" not in bucket
    assert 5 not in bucket
    assert b"k" not in bucket


def test_empty_value_is_stored(bucket: libstate.Bucket) -> None:
    bucket["k"] = b""
    assert bucket["k"] == b"" and "k" in bucket


@pytest.mark.parametrize(
    "value",
    [b"abc", bytearray(b"abc"), memoryview(b"abc"), memoryview(b"xabcx")[1:4], array("B", b"abc")],
)
def test_bytes_like_values_are_accepted_and_returned_as_bytes(bucket: libstate.Bucket, value: object) -> None:
    bucket.set("k", value)  # type: ignore[arg-type]
    assert bucket["k"] == b"abc" and type(bucket["k"]) is bytes


def test_str_value_is_a_type_error_pointing_at_encode_and_set_json(bucket: libstate.Bucket) -> None:
    for write in (lambda: bucket.__setitem__("k", "text"), lambda: bucket.set("k", "text"),
                  lambda: bucket.set_many({"k": "text"})):
        with pytest.raises(TypeError) as ei:
            write()
        assert ".encode()" in str(ei.value) and "set_json" in str(ei.value)
    assert "k" not in bucket


@pytest.mark.parametrize("value", [5, None, 1.5, ["a"], array("i", [1, 2])])
def test_non_bytes_values_are_type_errors(bucket: libstate.Bucket, value: object) -> None:
    with pytest.raises(TypeError, match="bytes-like"):
        bucket.set("k", value)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [5, b"k", None])
def test_non_str_keys_are_type_errors(bucket: libstate.Bucket, key: object) -> None:
    with pytest.raises(TypeError, match="keys are str"):
        bucket.set(key, b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keys are str"):
        bucket[key]  # type: ignore[index]


@pytest.mark.parametrize("key", ["", "x" * 1025, "é" * 513])
def test_invalid_keys_are_invalid_arguments(bucket: libstate.Bucket, key: str) -> None:
    for call in (lambda: bucket.set(key, b"v"), lambda: bucket[key], lambda: bucket.get(key),
                 lambda: bucket.delete(key), lambda: key in bucket, lambda: bucket.get_many([key]),
                 lambda: bucket.set_many({key: b"v"})):
        with pytest.raises(libstate.InvalidArgument) as ei:
            call()
        assert isinstance(ei.value, ValueError)
    assert len(bucket) == 0


def test_key_at_the_length_limit_is_accepted(bucket: libstate.Bucket) -> None:
    key = "k" * 1024
    bucket[key] = b"v"
    assert bucket[key] == b"v"


def test_value_over_the_limit_is_refused_and_nothing_written(store_path: object, open_store: OpenStore) -> None:
    with open_store(max_value_size=4) as store:
        b = store.bucket("b")
        with pytest.raises(libstate.InvalidArgument, match="limit of 4"):
            b["k"] = b"12345"
        assert "k" not in b


def test_len_bool_and_iteration_order(bucket: libstate.Bucket) -> None:
    assert len(bucket) == 0 and not bucket
    for k in ["b", "a", "é", "Z", "aa"]:
        bucket[k] = k.encode()
    assert len(bucket) == 5 and bucket
    # UTF-8 byte order.
    assert list(bucket) == ["Z", "a", "aa", "b", "é"]
    assert list(reversed(bucket)) == ["é", "b", "aa", "a", "Z"]


def test_views(bucket: libstate.Bucket) -> None:
    bucket.set_many({"b": b"2", "a": b"1", "c": b"3"})
    keys, values, items = bucket.keys(), bucket.values(), bucket.items()
    assert isinstance(keys, abc.KeysView) and isinstance(values, abc.ValuesView)
    assert isinstance(items, abc.ItemsView)
    assert list(keys) == ["a", "b", "c"]
    assert list(values) == [b"1", b"2", b"3"]
    assert list(items) == [("a", b"1"), ("b", b"2"), ("c", b"3")]
    assert list(reversed(keys)) == ["c", "b", "a"]
    assert list(reversed(values)) == [b"3", b"2", b"1"]
    assert list(reversed(items)) == [("c", b"3"), ("b", b"2"), ("a", b"1")]
    assert len(keys) == len(values) == len(items) == 3
    assert "a" in keys and ("a", b"1") in items and ("a", b"2") not in items and b"2" in values
    bucket["d"] = b"4"  # views are live
    assert list(keys) == ["a", "b", "c", "d"]
    assert keys & {"a", "z"} == {"a"}


def test_mutable_mapping_mixins(bucket: libstate.Bucket) -> None:
    bucket.update({"a": b"1"}, b=b"2")
    bucket.update([("c", b"3")])
    assert dict(bucket) == {"a": b"1", "b": b"2", "c": b"3"}
    assert bucket.pop("a") == b"1"
    assert bucket.pop("a", None) is None
    with pytest.raises(KeyError):
        bucket.pop("a")
    assert bucket.setdefault("b", b"x") == b"2"
    assert bucket.setdefault("z", b"x") == b"x"
    k, v = bucket.popitem()
    assert (k, v) == ("b", b"2")  # the first key
    assert bucket == {"c": b"3", "z": b"x"}
    assert bucket != {"c": b"3"}
    bucket.clear()
    assert len(bucket) == 0
    with pytest.raises(KeyError):
        bucket.popitem()


def test_clear_leaves_other_buckets(store: libstate.Store) -> None:
    a, b = store.bucket("a"), store.bucket("b")
    a["k"] = b"1"
    b["k"] = b"2"
    a.clear()
    assert "k" not in a and b["k"] == b"2"


def test_get_many_returns_present_keys_in_order(bucket: libstate.Bucket) -> None:
    bucket.set_many({"a": b"1", "b": b"2", "c": b"3"})
    got = bucket.get_many(["c", "missing", "a", "a"])
    assert got == {"a": b"1", "c": b"3"}
    assert list(got) == ["a", "c"]
    assert bucket.get_many([]) == {}
    assert bucket.get_many(iter(["b"])) == {"b": b"2"}
    assert bucket.get_many(k for k in ["b"]) == {"b": b"2"}


def test_get_many_orders_keys_past_their_first_eight_bytes(bucket: libstate.Bucket) -> None:
    keys = ["abcdefgh2", "abcdefgh10", "abcdefgh", "abc", "ab", "é", "abcdefgi", "abcdefgh1"]
    bucket.set_many({k: k.encode() for k in keys})
    got = bucket.get_many(list(reversed(keys)) + keys)
    assert list(got) == sorted(keys, key=str.encode)
    assert all(got[k] == k.encode() for k in keys)


def test_get_many_returns_plain_str_keys_for_str_subclasses(bucket: libstate.Bucket) -> None:
    class Name(str):
        def __hash__(self) -> int:
            return 7

        def __eq__(self, other: object) -> bool:
            return isinstance(other, str) and str.__eq__(self.upper(), other.upper())

    bucket["a"] = b"1"
    got = bucket.get_many([Name("a"), "a"])
    assert got == {"a": b"1"}
    assert [type(k) for k in got] == [str]


def test_get_many_refuses_a_single_str_and_non_str_keys(bucket: libstate.Bucket) -> None:
    with pytest.raises(TypeError, match="single str"):
        bucket.get_many("abc")
    with pytest.raises(TypeError, match="keys are str"):
        bucket.get_many([1])  # type: ignore[list-item]


def test_set_many_takes_mappings_and_pairs_last_value_wins(bucket: libstate.Bucket) -> None:
    bucket.set_many({"a": b"1"})
    bucket.set_many([("b", b"2"), ("b", bytearray(b"3"))])
    bucket.set_many((("c", memoryview(b"4")),))
    bucket.set_many(dict(d=b"5").items())
    bucket.set_many([])
    assert dict(bucket) == {"a": b"1", "b": b"3", "c": b"4", "d": b"5"}


def test_set_many_takes_lists_of_pairs(bucket: libstate.Bucket) -> None:
    # Lists of 2-tuples (subclasses too) take a faster path than other iterables.
    Pair = collections.namedtuple("Pair", "key value")
    many = [(f"k{i:03}", bytes([i % 256]) * 3) for i in range(100)]
    bucket.set_many(many)
    bucket.set_many([Pair("x", b"1"), ("y", b"2")])
    assert dict(bucket) == dict(many) | {"x": b"1", "y": b"2"}
    with pytest.raises(TypeError, match="keys are str"):
        bucket.set_many([("ok", b"1"), (5, b"2")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="pairs"):
        bucket.set_many([("ok", b"1"), ("a", b"2", b"3")])  # type: ignore[list-item]
    assert "ok" not in bucket


def test_set_many_with_a_bad_item_writes_nothing(bucket: libstate.Bucket) -> None:
    with pytest.raises(libstate.InvalidArgument):
        bucket.set_many([("a", b"1"), ("", b"2")])
    with pytest.raises(TypeError):
        bucket.set_many([("a", b"1"), ("b", 2)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="pairs"):
        bucket.set_many([("a", b"1", b"x")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        bucket.set_many(5)  # type: ignore[arg-type]
    assert len(bucket) == 0


def test_set_many_over_the_batch_limit_is_too_large_and_writes_nothing(store_path: object, open_store: OpenStore) -> None:
    with open_store(max_batch_size=100) as store:
        b = store.bucket("b")
        with pytest.raises(libstate.TooLarge, match="max_batch_size"):
            b.set_many({f"k{i}": b"x" * 20 for i in range(10)})
        assert len(b) == 0
        b.set_many({"k": b"x" * 20})
        assert len(b) == 1


def test_json_roundtrip_and_default(bucket: libstate.Bucket) -> None:
    cfg = {"cols": 3, "name": "héllo", "tiles": [1, 2, None], "on": True}
    bucket.set_json("cfg", cfg)
    assert bucket.get_json("cfg") == cfg
    assert bucket["cfg"] == '{"cols":3,"name":"héllo","tiles":[1,2,null],"on":true}'.encode()
    assert bucket.get_json("nope") is None
    assert bucket.get_json("nope", {"d": 1}) == {"d": 1}


def test_get_json_of_non_json_is_invalid_argument(bucket: libstate.Bucket) -> None:
    bucket["raw"] = b"\xff not json"
    with pytest.raises(libstate.InvalidArgument, match="raw"):
        bucket.get_json("raw")


def test_set_json_of_unserializable_is_invalid_argument(bucket: libstate.Bucket) -> None:
    with pytest.raises(libstate.InvalidArgument, match="JSON") as ei:
        bucket.set_json("k", {"x": object()})
    assert isinstance(ei.value.__cause__, TypeError)
    with pytest.raises(libstate.InvalidArgument):
        bucket.set_json("k", float("nan"))
    assert "k" not in bucket


def test_range_is_half_open_and_reversible(bucket: libstate.Bucket) -> None:
    bucket.set_many({k: k.encode() for k in ["a", "b", "c", "d", "e"]})
    assert [k for k, _ in bucket.range("b", "d")] == ["b", "c"]
    assert [k for k, _ in bucket.range("bb")] == ["c", "d", "e"]
    assert [k for k, _ in bucket.range(end="c")] == ["a", "b"]
    assert [k for k, _ in bucket.range()] == ["a", "b", "c", "d", "e"]
    assert [k for k, _ in bucket.range("b", "e", reverse=True)] == ["d", "c", "b"]
    assert list(bucket.range("x", "y")) == []
    assert list(bucket.range("a", "b")) == [("a", b"a")]


def test_prefix(bucket: libstate.Bucket) -> None:
    bucket.set_many({k: b"" for k in ["w/a", "w/b", "w0", "w", "x/a", "v"]})
    assert [k for k, _ in bucket.prefix("w/")] == ["w/a", "w/b"]
    assert [k for k, _ in bucket.prefix("w/", reverse=True)] == ["w/b", "w/a"]
    assert [k for k, _ in bucket.prefix("w")] == ["w", "w/a", "w/b", "w0"]
    assert list(bucket.prefix("q")) == []
    assert len(list(bucket.prefix(""))) == 6


def test_iteration_over_many_records_crosses_batches(bucket: libstate.Bucket) -> None:
    n = 3000
    bucket.set_many({f"k{i:05}": i.to_bytes(4, "big") for i in range(n)})
    keys = list(bucket)
    assert keys == [f"k{i:05}" for i in range(n)]
    assert [int.from_bytes(v, "big") for v in bucket.values()] == list(range(n))
    assert list(reversed(bucket))[:2] == [f"k{n-1:05}", f"k{n-2:05}"]
    it = iter(bucket)
    assert iter(it) is it


def test_range_and_prefix_items_cross_batches_both_ways(bucket: libstate.Bucket) -> None:
    n = 1000
    bucket.set_many({f"p/{i:05}": i.to_bytes(4, "big") for i in range(n)})
    bucket.set_many({"a": b"", "q": b""})
    items = list(bucket.prefix("p/"))
    assert items == [(f"p/{i:05}", i.to_bytes(4, "big")) for i in range(n)]
    assert list(bucket.prefix("p/", reverse=True)) == items[::-1]
    assert list(bucket.range("p/00100", "p/00900", reverse=True)) == items[100:900][::-1]
    with bucket.cursor() as c:
        c.seek("p/")
        got = c.next_n(n + 5)
    assert got == items[1:] + [("q", b"")]


def test_iterator_reentered_from_a_finalizer_neither_deadlocks_nor_repeats(bucket: libstate.Bucket) -> None:
    # Making the yielded tuples can run the garbage collector, and with it any
    # __del__; one that advances the same iterator must not find it locked.
    bucket.set_many({f"k{i:03}": b"v" for i in range(600)})
    it = bucket.range()
    from_finalizers: list[tuple[str, bytes]] = []

    class Hook:
        me: object

        def __del__(self) -> None:
            item = next(it, None)
            if item is not None:
                from_finalizers.append(item)

    threshold = gc.get_threshold()
    gc.set_threshold(1)
    try:
        got = []
        for _ in range(100):
            h = Hook()
            h.me = h  # a cycle: only the collector frees it
            del h
            for _ in range(3):  # tuples made here count towards the next collection
                item = next(it, None)
                if item is not None:
                    got.append(item)
    finally:
        gc.set_threshold(*threshold)
        gc.collect()
    keys = [k for k, _ in got + from_finalizers]
    assert len(keys) == len(set(keys)), "no entry twice"
    assert sorted(keys) == [f"k{i:03}" for i in range(len(keys))], "in order, no gaps"
    assert len(from_finalizers) > 0, "the finalizers did run during the iteration"


def test_iterator_sees_writes_ahead_of_it(bucket: libstate.Bucket) -> None:
    bucket.set_many({"a": b"", "m": b""})
    it = iter(bucket)
    assert next(it) == "a"
    # Not yet fetched beyond the first batch? Either way the final list must be sorted
    # and contain no duplicates.
    bucket["z"] = b""
    rest = list(it)
    assert rest in (["m"], ["m", "z"])


def test_iterator_yields_what_it_read_then_raises_store_closed(store_path: object, open_store: OpenStore) -> None:
    store = open_store()
    b = store.bucket("b")
    b.set_many({f"k{i:05}": b"" for i in range(3000)})
    it = iter(b)
    got = [next(it)]
    store.close()
    with pytest.raises(libstate.StoreClosed):
        for k in it:
            got.append(k)
    assert 1 < len(got) < 3000
    assert got == [f"k{i:05}" for i in range(len(got))]
