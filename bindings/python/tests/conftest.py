"""Shared fixtures: every test gets its own store directory (sled allows one open
instance per directory per process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

import libstate


ENGINES = ["sled", "memfile"]


class OpenStore(Protocol):
    """Opens a store with the test's engine: at `store_path`, or at `at`."""

    def __call__(self, at: Path | str | None = None, **opts: Any) -> libstate.Store: ...


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Every test that uses a store runs once per engine."""
    return str(request.param)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def open_store(store_path: Path, engine: str) -> OpenStore:
    def open_(at: Path | str | None = None, **opts: Any) -> libstate.Store:
        return libstate.open(store_path if at is None else at, engine, **opts)

    return open_


@pytest.fixture
def store(open_store: OpenStore) -> Iterator[libstate.Store]:
    s = open_store()
    yield s
    s.close()


@pytest.fixture
def bucket(store: libstate.Store) -> libstate.Bucket:
    return store.bucket("user1")
