"""Tests for state.rows: stored rows become records, and a damaged row is a StateError that
names the record, never a KeyError deep in a poll cycle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from state.base import StateError, TaskRecord
from state.rows import cursor_from, delivery_from, grouped, subscription_from, task_from

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def when(value: Any) -> datetime | None:
    """Stored times as SQLite keeps them: ISO strings or None."""
    return datetime.fromisoformat(value) if value else None


TASK_ROW: dict[str, Any] = {
    "instance_id": "i1",
    "task_id": "t1",
    "name": "EXTEND",
    "status": "SUCCESS",
    "created_at": T0.isoformat(),
    "updated_at": None,
    "first_seen_at": T0.isoformat(),
    "finished_at": T0.isoformat(),
    "task": {"id": "t1"},
}


def test_a_task_row_becomes_a_record_with_its_messages() -> None:
    """Every field is read, times through the store's own reader."""
    record = task_from(TASK_ROW, when, {"C1": "1.0"})

    assert record == TaskRecord(
        "i1", "t1", "EXTEND", "SUCCESS", T0, None, T0, T0, {"id": "t1"}, {"C1": "1.0"}
    )


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({k: v for k, v in TASK_ROW.items() if k != "status"}, "task t1 has no field 'status'"),
        ({**TASK_ROW, "first_seen_at": None}, "task t1 has no first-seen time"),
        ({**TASK_ROW, "created_at": "yesterday"}, "task t1 is bad"),
    ],
)
def test_a_damaged_task_row_is_a_state_error_naming_it(row: dict[str, Any], words: str) -> None:
    """A missing field, a missing first-seen time or an unreadable time names the task."""
    with pytest.raises(StateError, match=words):
        task_from(row, when, None)


@pytest.mark.parametrize(
    ("read", "row", "words"),
    [
        (lambda r: cursor_from(r, when), {"instance_id": "i9"}, "cursor i9 has no field 'name'"),
        (lambda r: delivery_from(r, when), {"id": 7, "kind": "post"}, "delivery 7 has no field"),
        (subscription_from, {"channel": "C1", "instance": "*"}, "subscription C1 has no field"),
    ],
)
def test_other_damaged_rows_name_their_record(read: Any, row: dict[str, Any], words: str) -> None:
    """Cursors, deliveries and subscriptions fail the same readable way."""
    with pytest.raises(StateError, match=words):
        read(row)


def test_grouped_indexes_records_by_instance_then_task() -> None:
    """Records group by instance ID, each keyed by task ID."""
    a = task_from(TASK_ROW, when, None)
    b = task_from({**TASK_ROW, "task_id": "t2"}, when, None)
    c = task_from({**TASK_ROW, "instance_id": "i2"}, when, None)

    assert grouped([a, b, c]) == {"i1": {"t1": a, "t2": b}, "i2": {"t1": c}}
