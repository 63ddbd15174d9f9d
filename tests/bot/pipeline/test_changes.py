"""Tests for bot.pipeline.changes: the diff step and the record each change becomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.dcs.models import Instance, Task
from bot.pipeline.changes import Change, diff, to_record
from bot.pipeline.detect import Reason
from state.base import TaskRecord

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
PROD = Instance("i1", "cache-prod")


def task(task_id: str, status: str, updated: datetime = T0, **raw: object) -> Task:
    body = {"id": task_id, "name": "EXTEND", "status": status, **raw}
    return Task("i1", task_id, "EXTEND", status, created_at=T0, updated_at=updated, raw=body)


def record(task_id: str, status: str, **kw: object) -> TaskRecord:
    fields: dict[str, object] = {
        "instance_id": "i1",
        "task_id": task_id,
        "name": "EXTEND",
        "status": status,
        "created_at": T0,
        "updated_at": T0,
        "first_seen_at": T0,
    }
    fields.update(kw)
    return TaskRecord(**fields)  # type: ignore[arg-type]


def test_diff_keeps_only_what_needs_writing_with_its_reason_and_previous_record() -> None:
    """Unchanged tasks drop out; new, changed and touched ones carry their reason and record."""
    previous = {
        "same": record("same", "EXECUTING"),
        "done": record("done", "EXECUTING"),
        "moved": record("moved", "EXECUTING"),
    }
    tasks = [
        task("same", "EXECUTING"),
        task("done", "SUCCESS"),
        task("moved", "EXECUTING", updated=T0 + timedelta(seconds=3)),
        task("fresh", "EXECUTING"),
    ]

    changes = diff(PROD, previous, tasks, baselined=True)

    assert [(c.task.id, c.reason) for c in changes] == [
        ("done", Reason.STATUS_CHANGED),
        ("moved", Reason.TOUCHED),
        ("fresh", Reason.NEW),
    ]
    assert changes[0].previous is previous["done"]
    assert changes[2].previous is None
    assert all(c.instance is PROD for c in changes)


def test_diff_before_the_baseline_records_finished_tasks_silently() -> None:
    """On an instance's first cycle a finished unknown task is BASELINE, a running one NEW."""
    changes = diff(PROD, {}, [task("a", "SUCCESS"), task("b", "EXECUTING")], baselined=False)

    assert [c.reason for c in changes] == [Reason.BASELINE, Reason.NEW]


def test_a_new_running_task_is_first_seen_now_and_not_finished() -> None:
    """A first sighting stamps first_seen_at with now and stores the DCS object."""
    stored = to_record(Change(Reason.NEW, task("a", "EXECUTING"), PROD, None), NOW)

    assert stored.first_seen_at == NOW
    assert stored.finished_at is None
    assert stored.messages == {}
    assert stored.task["id"] == "a"
    assert stored.task["instance_id"] == "i1"


def test_a_finishing_task_keeps_first_seen_and_messages_and_is_finished_now() -> None:
    """A status change to SUCCESS carries the earlier record's times and Slack messages over."""
    before = record("a", "EXECUTING", messages={"C1": "1.0"})
    change = Change(Reason.STATUS_CHANGED, task("a", "SUCCESS"), PROD, before)

    stored = to_record(change, NOW)

    assert stored.first_seen_at == T0
    assert stored.finished_at == NOW
    assert stored.messages == {"C1": "1.0"}
    assert stored.status == "SUCCESS"


def test_a_finished_task_keeps_the_time_it_was_first_seen_finished() -> None:
    """A finished task touched again keeps its original finished_at."""
    before = record("a", "SUCCESS", finished_at=T0)
    change = Change(Reason.TOUCHED, task("a", "SUCCESS", updated=NOW), PROD, before)

    assert to_record(change, NOW).finished_at == T0


def test_a_task_that_runs_again_is_no_longer_finished() -> None:
    """A status going back from final to running clears finished_at."""
    before = record("a", "FAILED", finished_at=T0)
    change = Change(Reason.STATUS_CHANGED, task("a", "EXECUTING"), PROD, before)

    assert to_record(change, NOW).finished_at is None
