"""Usual durations in the poll cycle: the samples of tasks that finished this cycle, and the
kinds of task whose usual duration the cycle needs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.pipeline.changes import Change, to_record
from state.base import DurationSample
from state.stats import record_seconds


def finished_samples(changes: Sequence[Change], scope: str, now: datetime) -> list[DurationSample]:
    """A duration sample for each change that finishes a task (first seen finished too)."""
    samples = []
    for change in changes:
        if change.previous is not None and change.previous.finished_at is not None:
            continue
        record = to_record(change, now)
        seconds = record_seconds(record)
        if seconds is None or record.finished_at is None:
            continue
        samples.append(
            DurationSample(scope, record.name, record.task_id, seconds, record.finished_at)
        )
    return samples


def finishing_names(changes: Sequence[Change]) -> set[str]:
    """Names of the tasks whose transition reply this cycle names a usual duration."""
    return {c.task.name for c in changes if c.reason.alerts and c.previous and c.task.is_final}
