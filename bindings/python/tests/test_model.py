"""A hypothesis state machine: a Bucket (and a cursor on it) must behave exactly
like a dict kept in UTF-8 byte order, including across close and reopen, and must
track which keys carry a TTL (an hour long, so none expires during the run)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import libstate

KEYS = st.text(alphabet="abcé/", min_size=1, max_size=4)
VALUES = st.binary(max_size=8)


def order(keys: object) -> list[str]:
    return sorted(keys, key=lambda k: k.encode())  # type: ignore[attr-defined]


BEFORE, AFTER = "<before-first>", "<after-last>"
HOUR = 3600.0


class BucketModel(RuleBasedStateMachine):
    engine = "sled"

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="libstate-model-"))
        self.store = libstate.open(self.dir / "s", self.engine)
        self.bucket = self.store.bucket("m")
        self.model: dict[str, bytes] = {}
        self.with_ttl: set[str] = set()
        self.cursor = self.bucket.cursor()
        self.pos = BEFORE  # the model cursor: BEFORE, AFTER, or a key

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- writes
    @rule(k=KEYS, v=VALUES)
    def setitem(self, k: str, v: bytes) -> None:
        self.bucket[k] = v
        self.model[k] = v
        self.with_ttl.discard(k)

    @rule(k=KEYS, v=VALUES)
    def set_bytearray(self, k: str, v: bytes) -> None:
        self.bucket.set(k, bytearray(v))
        self.model[k] = v
        self.with_ttl.discard(k)

    @rule(k=KEYS, v=VALUES)
    def set_with_ttl(self, k: str, v: bytes) -> None:
        self.bucket.set(k, v, ttl=HOUR)
        self.model[k] = v
        self.with_ttl.add(k)

    @rule(k=KEYS)
    def expire(self, k: str) -> None:
        assert self.bucket.expire(k, HOUR) is (k in self.model)
        if k in self.model:
            self.with_ttl.add(k)

    @rule(k=KEYS)
    def persist(self, k: str) -> None:
        assert self.bucket.persist(k) is (k in self.with_ttl)
        self.with_ttl.discard(k)

    @rule(k=KEYS)
    def ttl(self, k: str) -> None:
        if k not in self.model:
            with pytest.raises(KeyError):
                self.bucket.ttl(k)
        else:
            left = self.bucket.ttl(k)
            assert (left is not None) == (k in self.with_ttl)

    @rule(items=st.lists(st.tuples(KEYS, VALUES), max_size=6), ttl=st.booleans())
    def set_many(self, items: list[tuple[str, bytes]], ttl: bool) -> None:
        self.bucket.set_many(items, ttl=HOUR if ttl else None)
        self.model.update(items)
        for k, _ in items:
            (self.with_ttl.add if ttl else self.with_ttl.discard)(k)

    @rule(k=KEYS)
    def delete(self, k: str) -> None:
        assert self.bucket.delete(k) is (k in self.model)
        self.model.pop(k, None)
        self.with_ttl.discard(k)

    @rule(k=KEYS)
    def delitem(self, k: str) -> None:
        try:
            del self.bucket[k]
        except KeyError:
            assert k not in self.model
        else:
            del self.model[k]
            self.with_ttl.discard(k)

    @rule(k=KEYS)
    def pop(self, k: str) -> None:
        assert self.bucket.pop(k, None) == self.model.pop(k, None)
        self.with_ttl.discard(k)

    @precondition(lambda self: len(self.model) < 8)
    @rule()
    def clear(self) -> None:
        self.bucket.clear()
        self.model.clear()
        self.with_ttl.clear()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = libstate.open(self.dir / "s", self.engine)
        self.bucket = self.store.bucket("m")
        self.cursor = self.bucket.cursor()
        self.pos = BEFORE

    # ---- reads
    @rule(k=KEYS)
    def get(self, k: str) -> None:
        assert self.bucket.get(k) == self.model.get(k)
        assert (k in self.bucket) == (k in self.model)

    @rule(ks=st.lists(KEYS, max_size=5))
    def get_many(self, ks: list[str]) -> None:
        want = {k: self.model[k] for k in order(set(ks)) if k in self.model}
        got = self.bucket.get_many(ks)
        assert got == want and list(got) == list(want)

    @rule(lo=st.none() | KEYS, hi=st.none() | KEYS, rev=st.booleans())
    def range(self, lo: str | None, hi: str | None, rev: bool) -> None:
        want = [
            (k, self.model[k])
            for k in order(self.model)
            if (lo is None or k.encode() >= lo.encode()) and (hi is None or k.encode() < hi.encode())
        ]
        if rev:
            want.reverse()
        assert list(self.bucket.range(lo, hi, reverse=rev)) == want

    @rule(p=st.text(alphabet="abcé/", max_size=2))
    def prefix(self, p: str) -> None:
        want = [(k, self.model[k]) for k in order(self.model) if k.startswith(p)]
        assert list(self.bucket.prefix(p)) == want

    # ---- cursor (the model follows docs/guarantees.md, "Cursors")
    def _after(self, pos: str) -> str | None:
        ks = order(self.model)
        if pos == AFTER:
            return None
        for k in ks:
            if pos == BEFORE or k.encode() > pos.encode():
                return k
        return None

    def _before(self, pos: str) -> str | None:
        ks = order(self.model)
        if pos == BEFORE:
            return None
        for k in reversed(ks):
            if pos == AFTER or k.encode() < pos.encode():
                return k
        return None

    def _step(self, back: bool) -> tuple[str, bytes] | None:
        k = self._before(self.pos) if back else self._after(self.pos)
        if k is None:
            self.pos = BEFORE if back else AFTER
            return None
        self.pos = k
        return (k, self.model[k])

    @rule()
    def new_cursor(self) -> None:
        self.cursor = self.bucket.cursor()
        self.pos = BEFORE

    @rule()
    def cursor_next(self) -> None:
        assert self.cursor.next() == self._step(False)

    @rule()
    def cursor_prev(self) -> None:
        assert self.cursor.prev() == self._step(True)

    @rule()
    def cursor_first(self) -> None:
        self.pos = BEFORE
        assert self.cursor.first() == self._step(False)

    @rule()
    def cursor_last(self) -> None:
        self.pos = AFTER
        assert self.cursor.last() == self._step(True)

    @rule(k=KEYS)
    def cursor_seek(self, k: str) -> None:
        cands = [x for x in order(self.model) if x.encode() >= k.encode()]
        if cands:
            self.pos = cands[0]
            want: tuple[str, bytes] | None = (cands[0], self.model[cands[0]])
        else:
            self.pos = AFTER
            want = None
        assert self.cursor.seek(k) == want

    @rule(n=st.integers(min_value=0, max_value=5), back=st.booleans())
    def cursor_n(self, n: int, back: bool) -> None:
        want = []
        for _ in range(n):
            e = self._step(back)
            if e is None:
                break
            want.append(e)
        got = self.cursor.prev_n(n) if back else self.cursor.next_n(n)
        assert got == want

    @invariant()
    def cursor_key_matches(self) -> None:
        assert self.cursor.key == (None if self.pos in (BEFORE, AFTER) else self.pos)

    @invariant()
    def contents_match(self) -> None:
        assert len(self.bucket) == len(self.model)
        assert bool(self.bucket) == bool(self.model)
        assert list(self.bucket.items()) == [(k, self.model[k]) for k in order(self.model)]
        assert list(reversed(self.bucket)) == order(self.model)[::-1]


class MemfileBucketModel(BucketModel):
    engine = "memfile"


SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
BucketModel.TestCase.settings = SETTINGS
MemfileBucketModel.TestCase.settings = SETTINGS
test_sled_bucket_behaves_like_an_ordered_dict = BucketModel.TestCase
test_memfile_bucket_behaves_like_an_ordered_dict = MemfileBucketModel.TestCase
