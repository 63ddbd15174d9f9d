"""Tests for bot.pipeline.detect: the alert decision table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.dcs.models import Task
from bot.pipeline.detect import Reason, decide
from state.base import TaskRecord

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def task(status: str, updated: datetime | None = T0, name: str = "EXTEND") -> Task:
    return Task(instance_id="i1", id="t1", name=name, status=status, updated_at=updated)


def record(status: str, updated: datetime | None = T0) -> TaskRecord:
    return TaskRecord(
        instance_id="i1",
        task_id="t1",
        name="EXTEND",
        status=status,
        created_at=T0,
        updated_at=updated,
        first_seen_at=T0,
    )


@pytest.mark.parametrize(
    ("previous", "current", "baselined", "expected"),
    [
        (None, task("EXECUTING"), True, Reason.NEW),
        (None, task("SUCCESS"), True, Reason.NEW),
        (None, task("EXECUTING"), False, Reason.NEW),
        (None, task("SUCCESS"), False, Reason.BASELINE),
        (None, task("FAILED"), False, Reason.BASELINE),
        (None, task("CANCELED"), False, Reason.BASELINE),
        (record("EXECUTING"), task("SUCCESS"), True, Reason.STATUS_CHANGED),
        (record("CREATED"), task("EXECUTING"), True, Reason.STATUS_CHANGED),
        (record("EXECUTING"), task("FAILED"), True, Reason.FAILED),
        (record("EXECUTING"), task("EXECUTING", T0 + timedelta(seconds=5)), True, Reason.TOUCHED),
        (record("EXECUTING"), task("EXECUTING", name="EXTEND_V2"), True, Reason.TOUCHED),
        (record("EXECUTING"), task("EXECUTING"), True, Reason.UNCHANGED),
        (record("SUCCESS"), task("SUCCESS"), False, Reason.UNCHANGED),
    ],
)
def test_decide_table(
    previous: TaskRecord | None, current: Task, baselined: bool, expected: Reason
) -> None:
    """Each combination of stored record, current task and baseline gives its documented reason."""
    assert decide(previous, current, baselined=baselined) is expected


@pytest.mark.parametrize(
    ("reason", "alerts", "records"),
    [
        (Reason.NEW, True, True),
        (Reason.BASELINE, False, True),
        (Reason.STATUS_CHANGED, True, True),
        (Reason.FAILED, True, True),
        (Reason.TOUCHED, False, True),
        (Reason.UNCHANGED, False, False),
    ],
)
def test_reason_flags(reason: Reason, alerts: bool, records: bool) -> None:
    """Only new tasks and status changes alert; everything but 'unchanged' is written."""
    assert (reason.alerts, reason.records) == (alerts, records)
