"""What only the PostgreSQL store does: schema migration, shared claims, the poller lease,
and error messages that never show the URL's password."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from state.base import CycleCommit, StateError
from state.postgres import MIGRATIONS, PostgresStore
from tests.postgres import PgSchema
from tests.state.conftest import T0, FakeClock, StoreFactory
from tests.state.test_contract import INSTANCE, post

pytestmark = pytest.mark.postgres

PASSWORD = "s3cr3t-Pa55"


def with_url_parts(url: str, *, password: str | None = None, path: str | None = None) -> str:
    """``url`` with its password and/or database path replaced."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if password is not None:
        user = (parts.username or "postgres") + f":{password}"
        host = parts.hostname or "127.0.0.1"
        netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc, path=path if path is not None else parts.path))


def versions(schema: PgSchema) -> list[int]:
    """The versions recorded in the schema's schema_version table."""
    with psycopg.connect(schema.url) as conn:
        table = sql.Identifier(schema.name, "schema_version")
        rows = conn.execute(sql.SQL("SELECT version FROM {} ORDER BY 1").format(table))
        return [row[0] for row in rows]


def test_schema_is_created_once_and_versioned(
    postgres_factory: StoreFactory, pg_schema: PgSchema
) -> None:
    """Opening creates the schema at the latest version; opening again migrates nothing."""
    first = postgres_factory()
    second = postgres_factory()
    assert versions(pg_schema) == list(range(1, len(MIGRATIONS) + 1))
    assert first.store_id == second.store_id


def test_stores_starting_at_once_both_migrate(pg_schema: PgSchema) -> None:
    """Several processes starting together on an empty schema all open it, migrated once."""
    barrier = threading.Barrier(4)
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            opened.append(PostgresStore(pg_schema.url, schema=pg_schema.name))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert versions(pg_schema) == list(range(1, len(MIGRATIONS) + 1))
        assert len({store.store_id for store in opened}) == 1
    finally:
        for store in opened:
            store.close()


def test_newer_schema_version_is_refused(
    postgres_factory: StoreFactory, pg_schema: PgSchema
) -> None:
    """A schema migrated by a newer program version is not used."""
    postgres_factory().close()
    with psycopg.connect(pg_schema.url) as conn:
        table = sql.Identifier(pg_schema.name, "schema_version")
        conn.execute(sql.SQL("INSERT INTO {} (version) VALUES (999)").format(table))
    with pytest.raises(StateError, match="newer"):
        postgres_factory()


def test_lease_expires_and_another_store_takes_over(
    postgres_factory: StoreFactory, clock: FakeClock
) -> None:
    """A lease not renewed within lease_seconds passes to the next store that asks."""
    a = postgres_factory(lease_seconds=120)
    b = postgres_factory(lease_seconds=120)
    assert a.acquire_poller("host-a") is True
    clock.advance(119)
    assert b.acquire_poller("host-b") is False
    assert a.acquire_poller("host-a") is True  # renewed until T0 + 239 s
    clock.advance(119)
    assert b.acquire_poller("host-b") is False
    clock.advance(2)
    assert b.acquire_poller("host-b") is True
    assert a.acquire_poller("host-a") is False
    a.release_poller("host-a")  # not a's lease any more: b keeps it
    assert a.acquire_poller("host-a") is False


def test_claims_are_shared_between_stores(postgres_factory: StoreFactory) -> None:
    """A delivery claimed by one process is not handed to another until released."""
    a, b = postgres_factory(), postgres_factory()
    a.commit_cycle(CycleCommit(deliveries=[post(), post(channel="C2")]))
    claimed = a.pending_deliveries(T0, limit=1)
    assert [d.channel for d in b.pending_deliveries(T0)] == ["C2"]
    assert b.pending_deliveries(T0) == []
    a.delivery_failed(claimed[0].id, "timeout", T0)
    assert [d.id for d in b.pending_deliveries(T0)] == [claimed[0].id]


def test_concurrent_claims_never_return_the_same_delivery(postgres_factory: StoreFactory) -> None:
    """Two processes draining the outbox at once each get different deliveries, all of them."""
    stores = [postgres_factory(), postgres_factory()]
    stores[0].commit_cycle(CycleCommit(deliveries=[post(channel=f"C{i}") for i in range(300)]))
    barrier = threading.Barrier(2)
    got: list[list[int]] = [[], []]

    def drain(n: int) -> None:
        store = stores[n]
        barrier.wait()
        while batch := store.pending_deliveries(T0, limit=7):
            for delivery in batch:
                got[n].append(delivery.id)
                store.delivery_done(delivery.id, ts=None)

    threads = [threading.Thread(target=drain, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = got[0] + got[1]
    assert len(every) == 300
    assert len(set(every)) == 300
    assert stores[0].count_pending() == 0


def test_error_messages_redact_the_password(pg_url: str) -> None:
    """A failure whose text would contain the password shows *** instead."""
    url = with_url_parts(pg_url, password=PASSWORD, path=f"/{PASSWORD}")
    with pytest.raises(StateError) as caught:
        PostgresStore(url, connect_timeout=3)
    message = str(caught.value)
    assert PASSWORD not in message
    assert "***" in message
    assert caught.value.__suppress_context__ is True


def test_malformed_url_is_refused_without_echoing_it() -> None:
    """A URL libpq cannot parse is refused without quoting it (it may hold the password)."""
    with pytest.raises(StateError, match="not valid") as caught:
        PostgresStore(f"postgres//postgres:{PASSWORD}@127.0.0.1/test")
    assert PASSWORD not in str(caught.value)


def test_unreachable_server_is_a_state_error(pg_url: str) -> None:
    """A server that does not answer gives StateError naming the host, not the password."""
    parts = urlsplit(with_url_parts(pg_url, password=PASSWORD))
    url = urlunsplit(parts._replace(netloc=f"postgres:{PASSWORD}@127.0.0.1:1"))
    with pytest.raises(StateError, match=re.escape("127.0.0.1:1")) as caught:
        PostgresStore(url, connect_timeout=3)
    assert PASSWORD not in str(caught.value)


def test_repr_and_url_hide_the_password(pg_url: str, pg_schema: PgSchema) -> None:
    """The store's repr and url name user, host and database but never the password."""
    store = PostgresStore(with_url_parts(pg_url, password=PASSWORD), schema=pg_schema.name)
    try:
        assert PASSWORD not in repr(store)
        assert store.url.startswith("postgresql://")
        assert PASSWORD not in store.url
    finally:
        store.close()


@pytest.mark.parametrize(
    ("query", "works"), [("sslmode=disable", True), ("sslmode=require", False)]
)
def test_url_parameters_pass_through(
    pg_url: str, pg_schema: PgSchema, query: str, works: bool
) -> None:
    """A Heroku-style postgres:// URL works, and its sslmode reaches libpq (the test server
    has no TLS, so requiring it fails)."""
    heroku = "postgres://" + pg_url.split("://", 1)[1] + ("&" if "?" in pg_url else "?") + query
    if works:
        PostgresStore(heroku, schema=pg_schema.name).close()
    else:
        with pytest.raises(StateError, match="SSL"):
            PostgresStore(heroku, schema=pg_schema.name, connect_timeout=3)


def test_closed_store_raises_state_error(postgres_factory: StoreFactory) -> None:
    """Using a closed store is a StateError; closing twice is fine."""
    store = postgres_factory()
    store.close()
    with pytest.raises(StateError):
        store.tasks_of(INSTANCE)
    store.close()


def test_close_releases_claims_for_others(postgres_factory: StoreFactory) -> None:
    """Deliveries a closing store had claimed are handed out again at once."""
    a, b = postgres_factory(), postgres_factory()
    a.commit_cycle(CycleCommit(deliveries=[post()]))
    [claimed] = a.pending_deliveries(T0)
    assert b.pending_deliveries(T0) == []
    a.close()
    assert [d.id for d in b.pending_deliveries(T0 + timedelta(seconds=1))] == [claimed.id]


def test_a_new_poller_frees_the_claims_of_the_previous_one(
    postgres_factory: StoreFactory, clock: FakeClock
) -> None:
    """When the lease passes to another process (its holder died), the deliveries the old
    holder had claimed are handed out at once, not only when their claim ends."""
    a, b = postgres_factory(lease_seconds=10, claim_seconds=60), postgres_factory()
    assert a.acquire_poller("host-a") is True
    a.commit_cycle(CycleCommit(deliveries=[post(), post(kind="update")]))
    claimed = a.pending_deliveries(clock.now)
    clock.advance(11)  # a's lease has run out; its claims have not

    assert b.pending_deliveries(clock.now) == []
    assert b.acquire_poller("host-b") is True
    assert [d.id for d in b.pending_deliveries(clock.now)] == [d.id for d in claimed]
