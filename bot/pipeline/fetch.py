"""The fetch step of the poll cycle: every watched instance's tasks, read concurrently, and what
the store remembers of them."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.dcs.errors import DcsError
from bot.dcs.models import Instance, Task
from state.base import StateStore, TaskRecord

log = logging.getLogger(__name__)


class TaskSource(Protocol):
    """What the poller needs of the DCS client."""

    def list_tasks(
        self, instance_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Task]:
        """Every task of an instance created in [start, end]."""
        ...


@dataclass(frozen=True, slots=True)
class Fetched:
    """One instance's answer in this cycle: its tasks, or why they could not be read."""

    instance: Instance
    tasks: list[Task] | None
    previous: Mapping[str, TaskRecord] = field(default_factory=dict)
    error: str | None = None


def window_start(
    previous: Mapping[str, TaskRecord], now: datetime, lookback: timedelta
) -> datetime:
    """The earlier of ``now - lookback`` and the creation of the oldest unfinished stored task,
    so the end of a long task is never missed."""
    start = now - lookback
    for record in previous.values():
        if record.finished_at is None and record.created_at is not None:
            start = min(start, record.created_at)
    return start


def fetch(
    dcs: TaskSource,
    store: StateStore,
    instances: Sequence[Instance],
    *,
    now: datetime,
    lookback: timedelta,
    max_in_flight: int,
) -> list[Fetched]:
    """Read each instance's tasks, at most ``max_in_flight`` requests at a time, and what is
    stored for them: only unfinished and just-fetched tasks, never an instance's history,
    each in one batched read for the whole cycle."""
    unfinished = store.open_tasks([i.instance_id for i in instances])

    def one(instance: Instance) -> Fetched:
        start = window_start(unfinished.get(instance.instance_id, {}), now, lookback)
        try:
            return Fetched(instance, dcs.list_tasks(instance.instance_id, start=start))
        except DcsError as exc:
            log.warning("polling %s failed: %s", instance.name, exc)
            return Fetched(instance, None, error=str(exc))

    workers = min(max(1, max_in_flight), max(1, len(instances)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:
        answers = list(pool.map(one, instances))
    stored = store.tasks_by_id(
        {
            a.instance.instance_id: [
                t.id for t in a.tasks if t.id not in unfinished.get(a.instance.instance_id, {})
            ]
            for a in answers
            if a.tasks
        }
    )
    return [
        Fetched(
            a.instance,
            a.tasks,
            {
                **unfinished.get(a.instance.instance_id, {}),
                **stored.get(a.instance.instance_id, {}),
            },
            a.error,
        )
        for a in answers
    ]
