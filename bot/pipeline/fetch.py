"""The fetch step of the poll cycle: every watched instance's tasks, read concurrently, and what
the store remembers of them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.dcs.client import TaskListing
from bot.dcs.errors import DcsError
from bot.dcs.models import Instance, Task
from state.base import InstanceCursor, StateStore, TaskRecord

log = logging.getLogger(__name__)


class TaskSource(Protocol):
    """What the poller needs of the DCS client."""

    def read_tasks(
        self, instance_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> TaskListing:
        """Every task of an instance created in [start, end], and the malformed ones skipped."""
        ...


#: A measured difference between DCS's clock and the bot's below this is noise (``Date`` has
#: whole seconds, the answer took its time to arrive), not skew: the bot's clock is used.
CLOCK_NOISE = timedelta(seconds=5)
#: A difference beyond this is a broken ``Date`` header (a proxy's, a 1970 one), not a clock.
CLOCK_IMPLAUSIBLE = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Fetched:
    """One instance's answer in this cycle: its tasks, or why they could not be read;
    ``malformed`` says why task records were skipped, ``malformed_ids`` which (a task that
    turned malformed has not vanished); ``clock_offset`` is DCS's clock minus the bot's as
    the answer came (None: unknown, or too small or too large to trust)."""

    instance: Instance
    tasks: list[Task] | None
    previous: Mapping[str, TaskRecord] = field(default_factory=dict)
    error: str | None = None
    malformed: tuple[str, ...] = ()
    malformed_ids: frozenset[str] = frozenset()
    clock_offset: timedelta | None = None

    def dcs_now(self, now: datetime) -> datetime:
        """The bot's ``now`` on DCS's clock: what DCS's ``created_at`` values compare with."""
        return now + self.clock_offset if self.clock_offset is not None else now


def clock_offset(dcs_time: datetime | None, bot_time: datetime) -> timedelta | None:
    """DCS's clock minus the bot's, when DCS said its time and the difference is past noise
    and plausible; else None (the bot's clock is used as it is)."""
    if dcs_time is None:
        return None
    offset = dcs_time - bot_time
    return offset if CLOCK_NOISE <= abs(offset) <= CLOCK_IMPLAUSIBLE else None


#: How far before an instance's watermark an incremental window starts: a task DCS lists a
#: little after a newer one (created_at set before it shows up) is still asked for.
WATERMARK_OVERLAP = timedelta(minutes=5)


def window_start(
    previous: Mapping[str, TaskRecord],
    now: datetime,
    lookback: timedelta,
    *,
    watermark: datetime | None = None,
    overlap: timedelta = WATERMARK_OVERLAP,
) -> datetime:
    """Where an instance's query window starts: ``watermark - overlap`` once DCS has shown a
    task of it (DCS's own clock, so a skewed local clock loses nothing), else ``now -
    lookback``; earlier still when a stored task is unfinished (from its creation), so the end
    of a long task is never missed."""
    start = watermark - overlap if watermark is not None else now - lookback
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
    cursors: Mapping[str, InstanceCursor] | None = None,
    overlap: timedelta = WATERMARK_OVERLAP,
    clock: Callable[[], datetime] | None = None,
) -> list[Fetched]:
    """Read each instance's tasks, at most ``max_in_flight`` requests at a time, and what is
    stored for them: only unfinished and just-fetched tasks, never an instance's history,
    each in one batched read for the whole cycle. An instance with a watermark in its cursor
    is asked only for what was created since (see :func:`window_start`). ``clock`` (the
    bot's; default: ``now`` throughout) is read, in the worker threads, as each answer that
    says DCS's time arrives, to measure how far DCS's clock is from it."""
    unfinished = store.open_tasks([i.instance_id for i in instances])
    cursors = cursors or {}

    def measured(dcs_time: datetime | None) -> timedelta | None:
        if dcs_time is None:  # nothing to compare: the clock is not read
            return None
        return clock_offset(dcs_time, clock() if clock is not None else now)

    def one(instance: Instance) -> Fetched:
        cursor = cursors.get(instance.instance_id)
        start = window_start(
            unfinished.get(instance.instance_id, {}),
            now,
            lookback,
            watermark=cursor.watermark if cursor else None,
            overlap=overlap,
        )
        try:
            listing = dcs.read_tasks(instance.instance_id, start=start)
        except DcsError as exc:
            log.warning("polling %s failed: %s", instance.name, exc)
            return Fetched(instance, None, error=str(exc))
        return Fetched(
            instance,
            listing.tasks,
            malformed=listing.malformed,
            malformed_ids=listing.malformed_ids,
            clock_offset=measured(listing.dcs_time),
        )

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
            a.malformed,
            a.malformed_ids,
            a.clock_offset,
        )
        for a in answers
    ]
