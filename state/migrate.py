"""Copy a whole state (SQLite, usually) into PostgreSQL: ``dcs-tasks-bot migrate-state``.

Tasks keep their Slack ``messages`` so that threads continue after the move. Copying is
idempotent: records already in the target are kept as they are, and a pending delivery is
copied once only, even when it was delivered from the target since.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from state.base import (
    Delivery,
    Extras,
    InstanceCursor,
    PollerLockedError,
    StateError,
    StateStore,
    Subscription,
    TaskRecord,
)
from state.postgres import PostgresStore
from state.sqlite import SqliteStore

T = TypeVar("T")

KINDS = ("tasks", "cursors", "subscriptions", "meta", "deliveries", "mutes")


@runtime_checkable
class MigrationSource(Protocol):
    """A store that can list everything it holds (both stores of this package can)."""

    store_id: str

    def all_tasks(self) -> Iterator[TaskRecord]: ...

    def cursors(self) -> dict[str, InstanceCursor]: ...

    def subscriptions(self, channel: str | None = None) -> list[Subscription]: ...

    def all_meta(self) -> dict[str, Any]: ...

    def all_deliveries(self) -> list[Delivery]: ...

    def export_extras(self) -> Extras: ...


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def migrate_state(
    source: StateStore | Path, target: PostgresStore, *, batch: int = 1000
) -> dict[str, int]:
    """Copy tasks (with their messages), cursors, subscriptions, meta, pending deliveries and
    mutes (with held alerts, duration samples, stuck marks and report bookkeeping) from
    ``source`` into ``target``; return how many of each were added (0 on a second run).

    A ``Path`` names an SQLite state file: it must exist, and no poller may be using it.
    Raises ``StateError`` (``PollerLockedError`` when a poller holds the file).
    """
    if isinstance(source, Path):
        if not source.is_file():
            raise StateError(f"no SQLite state file at {source}")
        store = SqliteStore(source)
        try:
            if not store.acquire_poller("migrate-state"):
                raise PollerLockedError(
                    f"a poller is still using {source}; stop it before migrating its state"
                )
            return _copy(store, target, batch)
        finally:
            store.close()
    if not isinstance(source, MigrationSource):
        raise StateError(f"cannot list everything in {source!r} to migrate it")
    return _copy(source, target, batch)


def _copy(source: MigrationSource, target: PostgresStore, batch: int) -> dict[str, int]:
    if source.store_id == target.store_id:
        raise StateError("the source and the target of the migration are the same store")
    counts = dict.fromkeys(KINDS, 0)

    def add(added: dict[str, int]) -> None:
        for kind in KINDS:
            counts[kind] += added.get(kind, 0)

    for chunk in _chunks(source.all_tasks(), batch):
        add(target.import_state(source.store_id, tasks=chunk))
    add(
        target.import_state(
            source.store_id,
            cursors=source.cursors().values(),
            subscriptions=source.subscriptions(),
            meta=source.all_meta(),
            deliveries=source.all_deliveries(),
            extras=source.export_extras(),
        )
    )
    return counts
