"""Change detection: does a task need an alert, and why. A pure function over state and DCS."""

from __future__ import annotations

from enum import Enum

from bot.dcs.models import Task
from state.base import TaskRecord


class Reason(Enum):
    """Why (or why not) a task seen in this cycle leads to an alert."""

    NEW = "new"  # first seen: post a message
    BASELINE = "baseline"  # first cycle for the instance, already finished: record silently
    STATUS_CHANGED = "status_changed"  # edit the message, reply in its thread
    FAILED = "failed"  # as STATUS_CHANGED, and broadcast the reply to the channel
    TOUCHED = "touched"  # only updated_at (or another field) moved: record, no alert
    UNCHANGED = "unchanged"  # nothing to do

    @property
    def alerts(self) -> bool:
        """True when this reason sends something to Slack."""
        return self in (Reason.NEW, Reason.STATUS_CHANGED, Reason.FAILED)

    @property
    def records(self) -> bool:
        """True when the stored record must be written."""
        return self is not Reason.UNCHANGED


def decide(previous: TaskRecord | None, task: Task, *, baselined: bool) -> Reason:
    """Classify ``task`` against what was stored for it.

    ``baselined`` is False on the first cycle for an instance with no state: tasks that have
    already finished are then recorded silently, while unfinished ones are announced.
    """
    if previous is None:
        if not baselined and task.is_final:
            return Reason.BASELINE
        return Reason.NEW
    if previous.status != task.status:
        return Reason.FAILED if task.status == "FAILED" else Reason.STATUS_CHANGED
    if previous.updated_at != task.updated_at or previous.name != task.name:
        return Reason.TOUCHED
    return Reason.UNCHANGED
