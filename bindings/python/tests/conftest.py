"""Shared fixtures: every test gets its own store directory (sled allows one open
instance per directory per process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import libstate


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_path: Path) -> Iterator[libstate.Store]:
    s = libstate.open(store_path)
    yield s
    s.close()


@pytest.fixture
def bucket(store: libstate.Store) -> libstate.Bucket:
    return store.bucket("user1")
