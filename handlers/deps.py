"""What the Slack handlers are given, and the look-ups they share (instances, one task)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config import Settings
from bot.dcs.errors import DcsError
from bot.dcs.models import Instance, Task
from bot.dcs.projects import ProjectClients
from handlers.offload import Offload
from state.base import StateStore, TaskRecord


@dataclass(frozen=True)
class TaskLookup:
    """A task as found: ``live`` when DCS listed it just now, else the bot's last record of it;
    ``problem`` is the DCS failure met on the way, if any."""

    task: Task | None
    live: bool = False
    problem: DcsError | None = None


#: How far before a task's known creation time the DCS query window starts.
_WINDOW_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Deps:
    """The handlers' dependencies, built once by the wiring."""

    settings: Settings
    store: StateStore
    dcs: ProjectClients
    watched: Callable[[], list[Instance]]  # the instances the poller last resolved
    clock: Callable[[], datetime]
    version: str
    started_at: datetime
    # Where listeners run what may wait on DCS or the store (never Bolt's own threads).
    offload: Offload = field(default_factory=Offload)

    def find_instance(self, wanted: str) -> Instance | None:
        """The watched instance with this ID, or else this name or ``name (region)`` as shown
        with several projects (case-insensitively)."""
        instances = self.watched()
        for instance in instances:
            if instance.instance_id == wanted:
                return instance
        folded = wanted.casefold()
        for instance in instances:
            known = (instance.name, instance.instance_id, instance.label)
            if folded in (k.casefold() for k in known):
                return instance
        return None

    def find_place(self, wanted: str) -> str | None:
        """``region:R`` or a project ID as a watched instance's place (several projects), in
        the form subscriptions store; None when no watched instance is there."""
        folded = wanted.strip().casefold()
        for instance in self.watched():
            for place in instance.places:
                if place.casefold() == folded:
                    return place
        return None

    def instance_name(self, instance_id: str) -> str | None:
        """The name of an instance as last known (watched list, else the poller's cursor)."""
        try:
            for instance in self.watched():
                if instance.instance_id == instance_id:
                    return instance.label
        except DcsError:
            pass  # the poller's cursor may still know it
        cursor = self.store.cursors().get(instance_id)
        return cursor.name if cursor else None

    def fetch_task(
        self, instance_id: str, task_id: str, *, created_at: datetime | None = None
    ) -> Task | None:
        """The task as DCS lists it now, or None when DCS no longer lists it.

        The query window starts a little before ``created_at`` (when known), else
        ``DCS_LOOKBACK`` ago. Raises DcsError when DCS cannot be read.
        """
        now = self.clock()
        start = (
            created_at - _WINDOW_MARGIN if created_at is not None else now - self.settings.lookback
        )
        for task in self.dcs.list_tasks(instance_id, start=start, end=None):
            if task.id == task_id:
                return task
        return None

    def lookup_task(self, task_id: str, *, instance_id: str | None = None) -> TaskLookup:
        """A task by ID: from DCS when it still lists it, else as the bot last saw it.

        The instance comes from the bot's record of the task, else ``instance_id``; without
        either, every watched instance is searched (over ``DCS_LOOKBACK``).
        """
        record = self.store.find_task(task_id)
        if record is not None:
            return self._lookup_known(record)
        problem: DcsError | None = None
        candidates = [instance_id] if instance_id else [i.instance_id for i in self.watched()]
        for candidate in candidates:
            try:
                task = self.fetch_task(candidate, task_id)
            except DcsError as exc:
                problem = exc
                continue
            if task is not None:
                return TaskLookup(task, live=True, problem=problem)
        return TaskLookup(None, problem=problem)

    def _lookup_known(self, record: TaskRecord) -> TaskLookup:
        problem: DcsError | None = None
        try:
            task = self.fetch_task(record.instance_id, record.task_id, created_at=record.created_at)
        except DcsError as exc:
            task, problem = None, exc
        if task is not None:
            return TaskLookup(task, live=True)
        try:
            remembered = Task.from_json(record.instance_id, {"id": record.task_id, **record.task})
        except DcsError:
            return TaskLookup(None, problem=problem)
        return TaskLookup(remembered, live=False, problem=problem)
