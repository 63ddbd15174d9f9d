"""The state store's one small interface and the records it keeps.

Both implementations (``state.sqlite``, ``state.postgres``) pass the same contract tests.
Times are timezone-aware UTC datetimes; JSON is the only serialisation (never pickle).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

DeliveryKind = Literal["post", "update", "reply", "digest"]


class StateError(Exception):
    """The state store cannot be opened or used (corrupt file, unreachable database...)."""


class PollerLockedError(StateError):
    """Another poller already holds this state (SQLite file lock)."""


class LeaseLostError(StateError):
    """This store's poller lease was taken by another process: the write was refused.

    The fencing token: ``acquire_poller`` records the lease's epoch, and ``commit_cycle`` and
    ``pending_deliveries`` check it in their own transaction, so a poller that lost its lease
    without noticing (a long pause, a network split) cannot write over its successor.
    """


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """What the bot remembers of one task.

    ``task`` is the DCS task object as last seen (``Task.raw``, which never holds ``params``);
    ``messages`` maps a Slack channel to the ``ts`` of the task's alert there and is changed only by
    ``StateStore.delivery_done`` (never by ``commit_cycle``).
    """

    instance_id: str
    task_id: str
    name: str
    status: str
    created_at: datetime | None
    updated_at: datetime | None
    first_seen_at: datetime
    finished_at: datetime | None = None
    task: Mapping[str, Any] = field(default_factory=dict)
    messages: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InstanceCursor:
    """Per-instance poll bookkeeping. ``baselined`` is False until the first cycle recorded it;
    ``watermark`` is the newest ``created_at`` DCS has shown for the instance (DCS's clock, not
    ours): later cycles ask only for tasks created since shortly before it."""

    instance_id: str
    name: str | None
    baselined: bool
    last_polled_at: datetime | None = None
    last_error: str | None = None
    watermark: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A Slack call to make, as the poll cycle enqueues it.

    ``post``/``digest``: chat.postMessage; ``update``: chat.update of the task's message in
    ``channel``; ``reply``: a thread reply under that message (``reply_broadcast`` for FAILED).
    """

    kind: DeliveryKind
    channel: str
    text: str
    blocks: Sequence[Mapping[str, Any]] = ()
    instance_id: str | None = None
    task_id: str | None = None
    reply_broadcast: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """A pending delivery in the outbox."""

    id: int
    kind: DeliveryKind
    channel: str
    text: str
    blocks: Sequence[Mapping[str, Any]]
    instance_id: str | None
    task_id: str | None
    reply_broadcast: bool
    created_at: datetime
    attempts: int = 0
    next_try_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """Route alerts matching ``instance`` (an ID, a name, or ``*``) and filters to ``channel``.

    Empty ``statuses``/``names`` match everything.
    """

    channel: str
    instance: str
    statuses: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class Mute:
    """Silence alerts of ``instance`` (an ID or ``*``) whose task name is in ``names`` (empty:
    every name) from ``starts_at`` until ``ends_at``. ``unmute`` moves ``ends_at`` to its time
    and sets ``ended_by``; ``summarized`` once the poller enqueued the end-of-mute summaries.
    ``id`` is given by the store (``add_mute``)."""

    id: int
    instance: str
    starts_at: datetime
    ends_at: datetime
    names: tuple[str, ...] = ()
    reason: str = ""
    created_by: str | None = None
    channel: str | None = None
    ended_by: str | None = None
    summarized: bool = False

    def active(self, now: datetime) -> bool:
        """True while the mute silences alerts."""
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class MutedAlert:
    """An alert a mute held back from ``channel``: the task's latest status under the mute."""

    mute_id: int
    channel: str
    instance_id: str
    task_id: str
    name: str
    status: str
    instance_name: str | None = None


@dataclass(frozen=True, slots=True)
class DurationSample:
    """How long one finished task took, in seconds, kept for its kind's usual duration."""

    scope: str  # the project the task belongs to
    name: str
    task_id: str
    seconds: float
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class DurationStats:
    """The usual duration of one kind of task: sample count, p50 and p95 in seconds."""

    count: int
    p50: float
    p95: float


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One task name in a report: how many ran, succeeded, failed; durations of the finished."""

    name: str
    count: int
    succeeded: int
    failed: int
    p50: float | None = None
    p95: float | None = None


@dataclass(frozen=True, slots=True)
class TaskReport:
    """Tasks started since a time, per name, and the instances with the most failures."""

    rows: tuple[ReportRow, ...] = ()
    failures: tuple[tuple[str, int], ...] = ()  # (instance ID, failed tasks), most first

    @property
    def total(self) -> int:
        """How many tasks the report covers."""
        return sum(row.count for row in self.rows)


@dataclass(frozen=True, slots=True)
class Extras:
    """The records of mutes, durations, stuck warnings and once-keys (for migration)."""

    mutes: Sequence[Mute] = ()
    muted: Sequence[MutedAlert] = ()
    durations: Sequence[DurationSample] = ()
    stuck: Sequence[tuple[str, str]] = ()
    once: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class CycleCommit:
    """Everything one poll cycle changes, committed atomically by ``StateStore.commit_cycle``.

    ``muted``: alerts held back by a mute (latest status per mute, channel and task);
    ``mutes_summarized``: mutes whose summaries are among ``deliveries``; ``durations``: samples
    of tasks that finished; ``stuck``: (instance ID, task ID) warned as stuck.
    """

    tasks: Sequence[TaskRecord] = ()
    cursors: Sequence[InstanceCursor] = ()
    deliveries: Sequence[NewDelivery] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    muted: Sequence[MutedAlert] = ()
    mutes_summarized: Sequence[int] = ()
    durations: Sequence[DurationSample] = ()
    stuck: Sequence[tuple[str, str]] = ()


class StateStore(Protocol):
    """What the poller, delivery and the Slack handlers need to remember."""

    def tasks_of(self, instance_id: str) -> dict[str, TaskRecord]:
        """Every remembered task of an instance, by task ID."""
        ...

    def tasks_by_id(
        self, wanted: Mapping[str, Collection[str]]
    ) -> dict[str, dict[str, TaskRecord]]:
        """The remembered tasks among ``wanted`` (instance ID → task IDs), by instance then task
        ID; unknown ones are absent. Batched: a poll cycle reads once, not once per instance."""
        ...

    def open_tasks(self, instance_ids: Collection[str]) -> dict[str, dict[str, TaskRecord]]:
        """The remembered unfinished tasks of these instances, by instance then task ID."""
        ...

    def find_task(self, task_id: str) -> TaskRecord | None:
        """One remembered task by ID, whatever its instance."""
        ...

    def cursors(self) -> dict[str, InstanceCursor]:
        """Every instance cursor, by instance ID."""
        ...

    def commit_cycle(self, commit: CycleCommit) -> None:
        """Upsert tasks (keeping their stored ``messages``), cursors and meta, and append the
        deliveries, in one transaction."""
        ...

    def pending_deliveries(self, now: datetime, limit: int = 100) -> list[Delivery]:
        """Deliveries due at ``now`` (``next_try_at`` unset or past), oldest first. A delivery
        waits while an earlier one to its channel is not due or is claimed, so each channel
        keeps its order across restarts. On a shared database each is handed to one caller
        only until it is done, failed or its claim ends."""
        ...

    def count_pending(self) -> int:
        """How many deliveries are still waiting (due or not)."""
        ...

    def delivery_done(self, delivery_id: int, ts: str | None = None) -> None:
        """Remove a delivered item; when ``ts`` is given and the item has a task, remember ``ts``
        as the task's message in that channel, in the same transaction (a post, or an update or
        reply that had to be posted as a new message)."""
        ...

    def delivery_failed(self, delivery_id: int, error: str, next_try_at: datetime | None) -> None:
        """Record a failed attempt: retry at ``next_try_at``, or drop it when that is None
        (a final failure, kept only in the log)."""
        ...

    def prune(self, finished_before: datetime) -> int:
        """Forget tasks that finished before the given time; return how many."""
        ...

    def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        """Every subscription, or those of one channel."""
        ...

    def add_subscription(self, subscription: Subscription) -> None:
        """Add or replace the subscription of (channel, instance)."""
        ...

    def remove_subscription(self, channel: str, instance: str) -> bool:
        """Remove the subscription of (channel, instance); False when there was none."""
        ...

    def get_meta(self, key: str) -> Any:
        """A JSON value stored under ``key`` (None when absent): last poll, last error..."""
        ...

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``."""
        ...

    def add_mute(self, mute: Mute) -> Mute:
        """Store a new mute (its ``id`` is ignored) and return it with the ID given."""
        ...

    def mutes(self, *, include_summarized: bool = False) -> list[Mute]:
        """The mutes not yet summarized (active, or ended and awaiting their summary), by ID;
        every one still kept with ``include_summarized``."""
        ...

    def end_mute(self, mute_id: int, at: datetime, by: str | None) -> Mute | None:
        """End a mute that is still running at ``at``; None when there is none such."""
        ...

    def muted_alerts(self, mute_id: int) -> list[MutedAlert]:
        """The alerts a mute held back, by channel then task."""
        ...

    def duration_stats(self, scope: str, names: Collection[str]) -> dict[str, DurationStats]:
        """The usual duration of each of these task names in ``scope`` that has samples."""
        ...

    def stuck_marked(self, keys: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (instance ID, task ID) were already warned about as stuck."""
        ...

    def task_report(self, since: datetime, instance_id: str | None = None) -> TaskReport:
        """The report of the remembered tasks started since ``since`` (of one instance)."""
        ...

    def enqueue_once(self, key: str, deliveries: Sequence[NewDelivery]) -> bool:
        """Append ``deliveries`` unless ``key`` was used before, recording it in the same
        transaction; True when they were appended. Several processes: one wins."""
        ...

    def acquire_poller(self, owner: str) -> bool:
        """Try to become the one poller of this state; True when this process now is (or
        already was) the poller. Must be called again each cycle to keep a lease alive."""
        ...

    def release_poller(self, owner: str) -> None:
        """Give up being the poller (on shutdown)."""
        ...

    def ping(self, timeout: float = 1.0) -> None:
        """Raise StateError unless the store answers a trivial read within ``timeout`` seconds
        (for ``/readyz`` and ``check``); never waits longer, even when the database hangs."""
        ...

    def close(self) -> None:
        """Release files, connections and locks."""
        ...
