"""Copying an SQLite state into PostgreSQL (``migrate-state``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from state.base import (
    CycleCommit,
    DurationSample,
    InstanceCursor,
    Mute,
    MutedAlert,
    PollerLockedError,
    StateError,
    Subscription,
)
from state.migrate import migrate_state
from state.postgres import PostgresStore
from state.sqlite import SqliteStore
from tests.state.conftest import T0, StoreFactory
from tests.state.test_contract import INSTANCE, OTHER, post, record

pytestmark = pytest.mark.postgres


def filled_sqlite(store: SqliteStore) -> None:
    """A state as a running bot leaves it: tasks with messages, cursors, subscriptions, meta,
    and two deliveries still waiting (one of them after a failed attempt)."""
    tasks = [record(f"t{i}") for i in range(5)] + [record("x1", instance_id=OTHER)]
    store.commit_cycle(
        CycleCommit(
            tasks=tasks,
            cursors=[
                InstanceCursor(INSTANCE, "cache-prod", baselined=True, last_polled_at=T0),
                InstanceCursor(OTHER, None, baselined=False, last_error="DCS 500"),
            ],
            deliveries=[post("t0"), post("t1"), post("t2"), post("t3", channel="C2")],
            meta={"last_poll": T0.isoformat()},
        )
    )
    first, second, third, fourth = store.pending_deliveries(T0)
    store.delivery_done(first.id, ts="100.1")
    store.delivery_done(second.id, ts="100.2")
    store.delivery_failed(fourth.id, "ratelimited", T0 + timedelta(seconds=30))
    store.add_subscription(Subscription("C2", "*", statuses=("FAILED",), created_by="U1"))
    store.set_meta("last_error", None)
    assert third.id  # stays pending, as does fourth
    muted = store.add_mute(Mute(0, "*", T0, T0 + timedelta(hours=1), reason="window"))
    store.commit_cycle(
        CycleCommit(
            muted=[MutedAlert(muted.id, "C1", INSTANCE, "t4", "EXTEND", "FAILED")],
            durations=[DurationSample("P", "EXTEND", "t0", 60.0, T0)],
            stuck=[(INSTANCE, "t1")],
        )
    )
    store.enqueue_once("report:2024-05-06T08:00", [])


EXPECTED = {
    "tasks": 6,
    "cursors": 2,
    "subscriptions": 1,
    "meta": 2,
    "deliveries": 2,
    "mutes": 1,
}


def test_migration_copies_everything_with_messages(
    sqlite_factory: StoreFactory, postgres_factory: StoreFactory
) -> None:
    """Every record arrives; tasks keep their Slack messages so threads continue."""
    source: SqliteStore = sqlite_factory()
    filled_sqlite(source)
    target: PostgresStore = postgres_factory()

    assert migrate_state(source, target, batch=2) == EXPECTED

    for instance in (INSTANCE, OTHER):
        assert target.tasks_of(instance) == source.tasks_of(instance)
    assert target.tasks_of(INSTANCE)["t0"].messages == {"C1": "100.1"}
    assert target.cursors() == source.cursors()
    assert target.subscriptions() == source.subscriptions()
    marker = f"migrated:{source.store_id}"  # how a second run knows what it copied
    assert target.all_meta() == {**source.all_meta(), marker: 4}
    copied = target.all_deliveries()
    original = source.all_deliveries()
    assert [replace(d, id=0) for d in copied] == [replace(d, id=0) for d in original]
    assert copied[1].attempts == 1
    assert target.export_extras() == source.export_extras()
    assert target.add_mute(target.mutes()[0]).id == 2  # new mutes get new IDs


def test_migration_is_idempotent(
    sqlite_factory: StoreFactory, postgres_factory: StoreFactory
) -> None:
    """Running the migration again adds nothing, even after a copied delivery was sent."""
    source: SqliteStore = sqlite_factory()
    filled_sqlite(source)
    target: PostgresStore = postgres_factory()
    migrate_state(source, target)
    [sent, _] = target.pending_deliveries(T0 + timedelta(minutes=5))
    target.delivery_done(sent.id, ts="200.1")

    assert migrate_state(source, target) == dict.fromkeys(EXPECTED, 0)
    assert target.count_pending() == 1
    assert len(target.tasks_of(INSTANCE)) == 5
    assert target.tasks_of(INSTANCE)["t2"].messages == {"C1": "200.1"}


def test_migration_keeps_newer_target_state_and_merges_messages(
    sqlite_factory: StoreFactory, postgres_factory: StoreFactory
) -> None:
    """A task already in the target keeps its status and messages and gains the others."""
    source: SqliteStore = sqlite_factory()
    source.commit_cycle(CycleCommit(tasks=[record()], deliveries=[post(), post(channel="C2")]))
    for delivery, ts in zip(source.pending_deliveries(T0), ("old.1", "old.2"), strict=True):
        source.delivery_done(delivery.id, ts=ts)
    target: PostgresStore = postgres_factory()
    target.commit_cycle(
        CycleCommit(tasks=[record(status="SUCCESS", finished_at=T0)], deliveries=[post()])
    )
    [delivery] = target.pending_deliveries(T0)
    target.delivery_done(delivery.id, ts="new.1")

    assert migrate_state(source, target)["tasks"] == 0
    kept = target.tasks_of(INSTANCE)["t1"]
    assert kept.status == "SUCCESS"
    assert kept.messages == {"C1": "new.1", "C2": "old.2"}


def test_migration_from_a_path_locks_and_releases_the_file(
    tmp_path: Path, postgres_factory: StoreFactory
) -> None:
    """Given a path, the SQLite file is opened under the poller lock and released after."""
    path = tmp_path / "state.sqlite"
    source = SqliteStore(path)
    filled_sqlite(source)
    assert source.acquire_poller("still-running") is True
    target: PostgresStore = postgres_factory()
    with pytest.raises(PollerLockedError, match="stop it"):
        migrate_state(path, target)
    source.close()

    assert migrate_state(path, target) == EXPECTED
    again = SqliteStore(path)
    assert again.acquire_poller("next") is True
    again.close()


def test_migration_from_a_missing_file_is_refused(
    tmp_path: Path, postgres_factory: StoreFactory
) -> None:
    """A path with no state file is an error, and no file is created there."""
    path = tmp_path / "missing.sqlite"
    with pytest.raises(StateError, match="no SQLite state"):
        migrate_state(path, postgres_factory())
    assert not path.exists()


def test_migration_into_itself_is_refused(postgres_factory: StoreFactory) -> None:
    """Copying a store onto itself is refused rather than silently doing nothing."""
    store = postgres_factory()
    with pytest.raises(StateError, match="same store"):
        migrate_state(store, postgres_factory())
