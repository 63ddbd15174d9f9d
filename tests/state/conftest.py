"""Fixtures for the state stores: real SQLite files, and a real PostgreSQL where each test gets
its own schema (``TEST_DATABASE_URL``; unreachable → skip loudly, or fail when ``CI=true``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from state.postgres import PostgresStore
from state.sqlite import SqliteStore

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
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


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A reachable PostgreSQL URL, or a loud skip (a failure in CI)."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_URL)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = f"PostgreSQL NOT REACHABLE at TEST_DATABASE_URL ({exc}): its tests cannot run"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@dataclass
class PgSchema:
    """A fresh schema name in the test database, dropped after the test."""

    url: str
    name: str = field(default_factory=lambda: f"test_{uuid.uuid4().hex[:12]}")

    def drop(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.name))
            )


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[PgSchema]:
    """This test's own PostgreSQL schema."""
    schema = PgSchema(pg_url)
    yield schema
    schema.drop()


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
