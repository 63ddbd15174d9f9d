"""The bot's memory: tasks seen, Slack messages posted, the outbox, subscriptions.

``open_store`` picks the backend: PostgreSQL when a database URL is set, else an SQLite file.
"""

from __future__ import annotations

from pathlib import Path

from state.base import (
    CycleCommit,
    Delivery,
    DeliveryKind,
    InstanceCursor,
    LeaseLostError,
    NewDelivery,
    PollerLockedError,
    StateError,
    StateStore,
    Subscription,
    TaskRecord,
)
from state.postgres import PostgresStore
from state.sqlite import SqliteStore

__all__ = [
    "CycleCommit",
    "Delivery",
    "DeliveryKind",
    "InstanceCursor",
    "LeaseLostError",
    "NewDelivery",
    "PollerLockedError",
    "PostgresStore",
    "SqliteStore",
    "StateError",
    "StateStore",
    "Subscription",
    "TaskRecord",
    "open_store",
]


def open_store(
    *,
    state_path: Path,
    database_url: str | None,
    lease_seconds: float = 120,
    claim_seconds: float = 60,
) -> StateStore:
    """PostgreSQL at ``database_url`` when it is set, else the SQLite file at ``state_path``.

    ``lease_seconds`` is how long the PostgreSQL poller lease lasts without renewal (the
    SQLite poller lock is a file lock held until release); ``claim_seconds`` how long a claimed
    delivery stays hidden from other processes. Raises ``StateError``.
    """
    if database_url:
        return PostgresStore(database_url, lease_seconds=lease_seconds, claim_seconds=claim_seconds)
    return SqliteStore(state_path, claim_seconds=claim_seconds)
