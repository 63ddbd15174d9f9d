"""Usual durations in the poll cycle: the samples of tasks that finished this cycle, and the
kinds of task whose usual duration the cycle needs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.dcs.models import Instance
from bot.pipeline.changes import Change, to_record
from state.base import DurationSample, DurationStats, StateStore
from state.stats import record_seconds


def scope_of(instance: Instance, default: str) -> str:
    """The project a task's usual duration belongs to: its instance's, else ``default``."""
    return instance.project_id or default


def finished_samples(changes: Sequence[Change], scope: str, now: datetime) -> list[DurationSample]:
    """A duration sample for each change that finishes a task (first seen finished too), in
    its instance's project (``scope`` when the instance names none)."""
    samples = []
    for change in changes:
        if change.previous is not None and change.previous.finished_at is not None:
            continue
        record = to_record(change, now)
        seconds = record_seconds(record)
        if seconds is None or record.finished_at is None:
            continue
        samples.append(
            DurationSample(
                scope_of(change.instance, scope),
                record.name,
                record.task_id,
                seconds,
                record.finished_at,
            )
        )
    return samples


def finishing(changes: Sequence[Change]) -> list[tuple[Instance, str]]:
    """(instance, task name) of the tasks whose transition reply names a usual duration."""
    return [
        (c.instance, c.task.name)
        for c in changes
        if c.reason.alerts and c.previous and c.task.is_final
    ]


def usual_durations(
    store: StateStore, wanted: Sequence[tuple[Instance, str]], default: str
) -> dict[str, dict[str, DurationStats]]:
    """The usual durations of the wanted kinds, by instance ID then task name: one store read
    per project involved, none when nothing is wanted."""
    names: dict[str, set[str]] = {}
    for instance, name in wanted:
        names.setdefault(scope_of(instance, default), set()).add(name)
    by_scope = {scope: store.duration_stats(scope, kinds) for scope, kinds in names.items()}
    return {
        instance.instance_id: by_scope.get(scope_of(instance, default), {})
        for instance, _ in wanted
    }
