"""Fixtures for the state stores: real SQLite files, and a real PostgreSQL where each test gets
its own schema (``TEST_DATABASE_URL``; unreachable → skip loudly, or fail when ``CI=true``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from state.postgres import PostgresStore
from state.sqlite import SqliteStore
from tests.postgres import PgSchema

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

StoreFactory = Callable[..., Any]
#: Either store: the StateStore contract plus the listing methods both offer.
AnyStore = SqliteStore | PostgresStore


@dataclass
class FakeClock:
    """A settable clock for stores that stamp times themselves."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    """A clock standing at T0 until advanced."""
    return FakeClock()


@pytest.fixture
def postgres_factory(pg_schema: PgSchema, clock: FakeClock) -> Iterator[StoreFactory]:
    """Open PostgresStores on this test's schema; all are closed after the test."""
    opened: list[PostgresStore] = []

    def make(**kwargs: Any) -> PostgresStore:
        kwargs.setdefault("clock", clock)
        store = PostgresStore(pg_schema.url, schema=pg_schema.name, **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def sqlite_factory(tmp_path: Path, clock: FakeClock) -> Iterator[StoreFactory]:
    """Open SqliteStores on this test's file; all are closed after the test."""
    opened: list[SqliteStore] = []

    def make(**kwargs: Any) -> SqliteStore:
        kwargs.setdefault("clock", clock)
        store = SqliteStore(tmp_path / "state.sqlite", **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    """A factory of stores sharing one backing (same file / same schema), per backend."""
    factory: StoreFactory = request.getfixturevalue(f"{request.param}_factory")
    return factory


@pytest.fixture
def store(make_store: StoreFactory) -> AnyStore:
    """One open store of the backend under test."""
    opened: AnyStore = make_store()
    return opened
