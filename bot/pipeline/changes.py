"""The diff step of the poll cycle: which fetched tasks need writing and why, and the record
each one becomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.dcs.models import Instance, Task
from bot.pipeline.detect import Reason, decide
from state.base import TaskRecord


@dataclass(frozen=True, slots=True)
class Change:
    """A task that needs writing, with the reason and what was stored before."""

    reason: Reason
    task: Task
    instance: Instance
    previous: TaskRecord | None


def diff(
    instance: Instance,
    previous: Mapping[str, TaskRecord],
    tasks: Sequence[Task],
    *,
    baselined: bool,
) -> list[Change]:
    """The tasks that need writing, each with its reason."""
    changes = []
    for task in tasks:
        before = previous.get(task.id)
        reason = decide(before, task, baselined=baselined)
        if reason.records:
            changes.append(Change(reason, task, instance, before))
    return changes


def to_record(change: Change, now: datetime) -> TaskRecord:
    """The record to store for a change: first seen and finished times carry over from the
    previous record, so do the Slack messages."""
    task, before = change.task, change.previous
    finished_at = before.finished_at if before else None
    if task.is_final and finished_at is None:
        finished_at = now
    if not task.is_final:
        finished_at = None
    return TaskRecord(
        instance_id=task.instance_id,
        task_id=task.id,
        name=task.name,
        status=task.status,
        created_at=task.created_at,
        updated_at=task.updated_at,
        first_seen_at=before.first_seen_at if before else now,
        finished_at=finished_at,
        task=task.to_json(),
        messages=dict(before.messages) if before else {},
    )
