"""The task query shared by the ``tasks`` command and the ``/dcs-tasks list`` slash command."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.dcs.errors import DcsError
from bot.dcs.models import Instance, Task

#: How many instances are fetched at the same time.
MAX_WORKERS = 4


class TaskLister(Protocol):
    """What the query needs of a DCS client (one project's, or ProjectClients)."""

    def list_tasks(
        self, instance_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Task]:
        """Every task of an instance created in [start, end]."""
        ...


@dataclass(frozen=True)
class TaskQuery:
    """Which tasks to show: created within ``since`` of now, optionally one status and one
    name (both case-insensitive), at most ``limit`` of them (0 = all)."""

    since: timedelta = timedelta(hours=24)
    status: str | None = None
    name: str | None = None
    limit: int = 20

    def __post_init__(self) -> None:
        if self.since <= timedelta(0):
            raise ValueError("since must be a positive duration")
        if self.limit < 0:
            raise ValueError("limit must be 0 (all) or more")

    def matches(self, task: Task) -> bool:
        """True when ``task`` passes the status and name filters."""
        if self.status and task.status.casefold() != self.status.strip().casefold():
            return False
        return not (self.name and task.name.casefold() != self.name.strip().casefold())


@dataclass(frozen=True)
class QueryResult:
    """The answer: ``tasks`` newest first (at most the limit), ``total`` matching tasks before
    the limit, and ``errors`` by instance ID for instances that could not be read."""

    tasks: list[Task]
    total: int
    errors: dict[str, str] = field(default_factory=dict)


def _newest_first(task: Task) -> tuple[float, str, str]:
    created = task.created_at.timestamp() if task.created_at else float("-inf")
    return (-created, task.instance_id, task.id)


def run_query(
    client: TaskLister, instances: Sequence[Instance], query: TaskQuery, *, now: datetime
) -> QueryResult:
    """Fetch the tasks of ``instances`` created in ``now - since``..``now`` (concurrently) and
    apply ``query``; an instance that fails is reported in ``errors``, the others still count."""
    start = now - query.since
    errors: dict[str, str] = {}
    matching: list[Task] = []
    unique = list({i.instance_id: i for i in instances}.values())
    if not unique:
        return QueryResult(tasks=[], total=0, errors={})

    def fetch(instance: Instance) -> list[Task]:
        return client.list_tasks(instance.instance_id, start=start, end=now)

    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(unique))) as pool:
        futures = [(i, pool.submit(fetch, i)) for i in unique]
        for instance, future in futures:
            try:
                tasks = future.result()
            except DcsError as exc:
                errors[instance.instance_id] = str(exc)
                continue
            matching.extend(
                t
                for t in tasks
                if query.matches(t) and (t.created_at is None or t.created_at >= start)
            )
    matching.sort(key=_newest_first)
    shown = matching if query.limit == 0 else matching[: query.limit]
    return QueryResult(tasks=shown, total=len(matching), errors=errors)
