"""The poll cycle, as a pipeline: fetch → diff → render → commit. Delivery is a separate stage
(``bot.slack.deliver``) that drains what the commit enqueued.

One failing instance never stops the others; nothing is written for an instance whose fetch
failed, so a DCS fault can never produce a false alert.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.dcs.errors import DcsError
from bot.dcs.models import Instance, Task
from bot.pipeline.detect import Reason, decide
from bot.pipeline.routing import route
from bot.pipeline.watch import WatchedInstances
from bot.slack import render
from state.base import (
    CycleCommit,
    InstanceCursor,
    NewDelivery,
    StateStore,
    Subscription,
    TaskRecord,
)

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


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


@dataclass(frozen=True, slots=True)
class Change:
    """A task that needs writing, with the reason and what was stored before."""

    reason: Reason
    task: Task
    instance: Instance
    previous: TaskRecord | None


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What one cycle saw and decided."""

    instances: int
    changes: list[Change]
    commit: CycleCommit
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every watched instance was read."""
        return not self.errors

    @property
    def alerts(self) -> int:
        """How many changes send something to Slack."""
        return sum(1 for c in self.changes if c.reason.alerts)


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
    """The record to store for a change; ``params`` is never stored."""
    task, before = change.task, change.previous
    stored = {k: v for k, v in task.to_json().items() if k != "params"}
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
        task=stored,
        messages=dict(before.messages) if before else {},
    )


def plan_deliveries(
    changes: Sequence[Change],
    *,
    alert_channel: str | None,
    subscriptions: Sequence[Subscription],
    digest_threshold: int,
    now: datetime,
) -> list[NewDelivery]:
    """Render and route the alerting changes into outbox items.

    A channel with more than ``digest_threshold`` new tasks this cycle gets one digest instead.
    """
    new_by_channel: dict[str, list[Change]] = defaultdict(list)
    planned: list[tuple[str, Change]] = []
    for change in changes:
        if not change.reason.alerts:
            continue
        for channel in route(change.task, change.instance.name, alert_channel, subscriptions):
            planned.append((channel, change))
            if change.reason is Reason.NEW:
                new_by_channel[channel].append(change)
    digested = {ch for ch, items in new_by_channel.items() if len(items) > digest_threshold}

    deliveries: list[NewDelivery] = []
    for channel in digested:
        items = [(c.task, c.instance.name) for c in new_by_channel[channel]]
        message = render.digest(items, now=now)
        deliveries.append(NewDelivery("digest", channel, message.text, message.blocks))
    for channel, change in planned:
        task, name = change.task, change.instance.name
        ids: dict[str, Any] = {"instance_id": task.instance_id, "task_id": task.id}
        if change.reason is Reason.NEW:
            if channel in digested:
                continue
            message = render.task_alert(task, name, now=now)
            deliveries.append(NewDelivery("post", channel, message.text, message.blocks, **ids))
            continue
        assert change.previous is not None
        alert = render.task_alert(task, name, now=now)
        deliveries.append(NewDelivery("update", channel, alert.text, alert.blocks, **ids))
        reply = render.transition_reply(task, change.previous.status, now=now)
        broadcast = change.reason is Reason.FAILED
        deliveries.append(
            NewDelivery(
                "reply", channel, reply.text, reply.blocks, reply_broadcast=broadcast, **ids
            )
        )
    return deliveries


class Poller:
    """Runs poll cycles: fetch every watched instance, detect changes, commit them with the
    deliveries they cause in one transaction."""

    def __init__(
        self,
        dcs: TaskSource,
        store: StateStore,
        watched: WatchedInstances,
        *,
        alert_channel: str | None,
        lookback: timedelta,
        digest_threshold: int = 10,
        retention: timedelta = timedelta(days=30),
        max_in_flight: int = 32,
        prune_every: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._dcs = dcs
        self._store = store
        self._watched = watched
        self._alert_channel = alert_channel
        self._lookback = lookback
        self._digest_threshold = digest_threshold
        self._retention = retention
        self._max_in_flight = max(1, max_in_flight)
        self._prune_every = prune_every
        self._clock = clock
        self._last_prune: datetime | None = None

    def _fetch(self, instances: Sequence[Instance], now: datetime) -> list[Fetched]:
        """Read each instance's tasks, at most ``max_in_flight`` requests at a time, and what is
        stored for them: only unfinished and just-fetched tasks, never an instance's history,
        each in one batched read for the whole cycle."""
        unfinished = self._store.open_tasks([i.instance_id for i in instances])

        def one(instance: Instance) -> tuple[Instance, list[Task] | None, str | None]:
            start = window_start(unfinished.get(instance.instance_id, {}), now, self._lookback)
            try:
                return instance, self._dcs.list_tasks(instance.instance_id, start=start), None
            except DcsError as exc:
                log.warning("polling %s failed: %s", instance.name, exc)
                return instance, None, str(exc)

        workers = min(self._max_in_flight, max(1, len(instances)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:
            answers = list(pool.map(one, instances))
        stored = self._store.tasks_by_id(
            {
                i.instance_id: [
                    t.id for t in tasks if t.id not in unfinished.get(i.instance_id, {})
                ]
                for i, tasks, _ in answers
                if tasks
            }
        )
        return [
            Fetched(
                instance,
                tasks,
                {
                    **unfinished.get(instance.instance_id, {}),
                    **stored.get(instance.instance_id, {}),
                },
                error,
            )
            for instance, tasks, error in answers
        ]

    def run_cycle(self, *, commit: bool = True) -> CycleResult:
        """One cycle. With ``commit=False`` (dry run) nothing is written."""
        started = time.monotonic()
        now = self._clock()
        try:
            instances = self._watched.get()
        except DcsError as exc:
            log.error("cannot list the watched instances: %s", exc)
            error = {"at": now.isoformat(), "message": f"instance list: {exc}"}
            failed = CycleCommit(meta={"last_error": error})
            if commit:
                self._store.commit_cycle(failed)
            return CycleResult(0, [], failed, {"*": str(exc)}, time.monotonic() - started)

        cursors = self._store.cursors()
        fetched = self._fetch(instances, now)

        changes: list[Change] = []
        new_cursors: list[InstanceCursor] = []
        errors: dict[str, str] = {}
        for answer in fetched:
            iid = answer.instance.instance_id
            cursor = cursors.get(iid) or InstanceCursor(iid, answer.instance.name, baselined=False)
            if answer.tasks is None:
                errors[iid] = answer.error or "unknown error"
                new_cursors.append(
                    replace(cursor, name=answer.instance.name, last_error=answer.error)
                )
                continue
            changes += diff(
                answer.instance, answer.previous, answer.tasks, baselined=cursor.baselined
            )
            new_cursors.append(
                InstanceCursor(iid, answer.instance.name, True, last_polled_at=now, last_error=None)
            )

        deliveries = plan_deliveries(
            changes,
            alert_channel=self._alert_channel,
            subscriptions=self._store.subscriptions(),
            digest_threshold=self._digest_threshold,
            now=now,
        )
        meta: dict[str, Any] = {}
        if errors:
            names = {i.instance_id: i.name for i in instances}
            summary = "; ".join(f"{names.get(k, k)}: {v}" for k, v in sorted(errors.items()))
            meta["last_error"] = {"at": now.isoformat(), "message": summary[:500]}
        else:
            meta["last_success_at"] = now.isoformat()
        cycle = CycleCommit(
            tasks=[to_record(c, now) for c in changes],
            cursors=new_cursors,
            deliveries=deliveries,
            meta=meta,
        )
        if commit:
            self._store.commit_cycle(cycle)
            self._maybe_prune(now)
        result = CycleResult(len(instances), changes, cycle, errors, time.monotonic() - started)
        log.info(
            "cycle: %d instances, %d changes, %d deliveries, %d failed, %.2fs",
            result.instances,
            len(changes),
            len(deliveries),
            len(errors),
            result.seconds,
        )
        return result

    def _maybe_prune(self, now: datetime) -> None:
        if self._last_prune is not None and now - self._last_prune < self._prune_every:
            return
        self._last_prune = now
        pruned = self._store.prune(now - self._retention)
        if pruned:
            log.info("forgot %d tasks finished more than %s ago", pruned, self._retention)
