"""Records from stored rows: the field names both stores share, read in one place.

SQLite hands back JSON (times as ISO strings), PostgreSQL typed columns (datetimes); each store
passes its own ``when`` that turns a stored time into an aware datetime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from state.base import (
    Delivery,
    InstanceCursor,
    Mute,
    MutedAlert,
    StateError,
    Subscription,
    TaskRecord,
)

When = Callable[[Any], datetime | None]


@contextmanager
def _reading(what: str, row: Mapping[str, Any], key: str) -> Iterator[None]:
    """A stored row that lacks a field, or holds one of the wrong type, is a StateError that
    names it, never a KeyError deep in a poll cycle."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        ident = row.get(key, "?") if isinstance(row, Mapping) else "?"
        problem = (
            f"has no field {exc.args[0]!r}" if isinstance(exc, KeyError) else f"is bad ({exc})"
        )
        raise StateError(
            f"stored {what} {ident!s:.80} {problem}: the state was damaged or written by "
            "another program; fix or remove that record"
        ) from None


def grouped(records: Iterable[TaskRecord]) -> dict[str, dict[str, TaskRecord]]:
    """Task records by instance ID, then task ID."""
    out: dict[str, dict[str, TaskRecord]] = {}
    for record in records:
        out.setdefault(record.instance_id, {})[record.task_id] = record
    return out


def task_from(row: Mapping[str, Any], when: When, messages: Mapping[str, str] | None) -> TaskRecord:
    """A TaskRecord from its stored row and its Slack messages."""
    with _reading("task", row, "task_id"):
        return _task(row, when, messages)


def _task(row: Mapping[str, Any], when: When, messages: Mapping[str, str] | None) -> TaskRecord:
    first_seen = when(row["first_seen_at"])
    if first_seen is None:
        raise StateError(f"task {row['task_id']} has no first-seen time")
    return TaskRecord(
        instance_id=row["instance_id"],
        task_id=row["task_id"],
        name=row["name"],
        status=row["status"],
        created_at=when(row["created_at"]),
        updated_at=when(row["updated_at"]),
        first_seen_at=first_seen,
        finished_at=when(row["finished_at"]),
        task=row["task"],
        messages=dict(messages or {}),
    )


def cursor_from(row: Mapping[str, Any], when: When) -> InstanceCursor:
    """An InstanceCursor from its stored row."""
    with _reading("cursor", row, "instance_id"):
        return InstanceCursor(
            instance_id=row["instance_id"],
            name=row["name"],
            baselined=row["baselined"],
            last_polled_at=when(row["last_polled_at"]),
            last_error=row["last_error"],
            watermark=when(row.get("watermark")),  # absent in state written before watermarks
        )


def delivery_from(row: Mapping[str, Any], when: When) -> Delivery:
    """A Delivery from its stored row."""
    with _reading("delivery", row, "id"):
        return _delivery(row, when)


def _delivery(row: Mapping[str, Any], when: When) -> Delivery:
    created = when(row["created_at"])
    if created is None:
        raise StateError(f"delivery {row['id']} has no creation time")
    return Delivery(
        id=row["id"],
        kind=row["kind"],
        channel=row["channel"],
        text=row["text"],
        blocks=row["blocks"],
        instance_id=row["instance_id"],
        task_id=row["task_id"],
        reply_broadcast=row["reply_broadcast"],
        created_at=created,
        attempts=row["attempts"],
        next_try_at=when(row["next_try_at"]),
        last_error=row["last_error"],
    )


def subscription_from(row: Mapping[str, Any]) -> Subscription:
    """A Subscription from its stored row."""
    with _reading("subscription", row, "channel"):
        return Subscription(
            channel=row["channel"],
            instance=row["instance"],
            statuses=tuple(row["statuses"]),
            names=tuple(row["names"]),
            created_by=row["created_by"],
        )


def mute_from(row: Mapping[str, Any], when: When) -> Mute:
    """A Mute from its stored row."""
    with _reading("mute", row, "id"):
        starts, ends = when(row["starts_at"]), when(row["ends_at"])
        if starts is None or ends is None:
            raise StateError(f"mute {row['id']} has no start or end")
        return Mute(
            id=int(row["id"]),
            instance=row["instance"],
            starts_at=starts,
            ends_at=ends,
            names=tuple(row["names"]),
            reason=row["reason"],
            created_by=row["created_by"],
            channel=row["channel"],
            ended_by=row["ended_by"],
            summarized=bool(row["summarized"]),
        )


def muted_alert_from(row: Mapping[str, Any]) -> MutedAlert:
    """A MutedAlert from its stored row."""
    with _reading("muted alert", row, "task_id"):
        return MutedAlert(
            mute_id=int(row["mute_id"]),
            channel=row["channel"],
            instance_id=row["instance_id"],
            task_id=row["task_id"],
            name=row["name"],
            status=row["status"],
            instance_name=row["instance_name"],
        )
