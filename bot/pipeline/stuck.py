"""Stuck tasks: unfinished longer than DCS_STUCK_AFTER, and than 3x the p95 of their kind when
enough of it finished before. Pure: the poll cycle asks the store which were warned already."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.dcs.models import Instance, Task
from bot.pipeline.fetch import Fetched
from bot.slack.summaries import MIN_SAMPLES
from state.base import DurationStats

#: How many times its usual p95 a task must run before it counts as stuck.
P95_FACTOR = 3


@dataclass(frozen=True, slots=True)
class Running:
    """An unfinished task and how long it has run."""

    task: Task
    instance: Instance
    seconds: float


def running_longer(
    fetched: Sequence[Fetched], stuck_after: timedelta, now: datetime
) -> list[Running]:
    """Unfinished tasks read this cycle that have run at least ``stuck_after``: since DCS's
    ``created_at`` by DCS's clock (``now`` moved by the offset measured from its answer, so a
    skewed bot clock warns neither early nor late), else since the bot first saw them by the
    bot's clock."""
    found = []
    for answer in fetched:
        dcs_now = answer.dcs_now(now)
        for task in answer.tasks or ():
            if task.is_final:
                continue
            before = answer.previous.get(task.id)
            if task.created_at is not None:
                seconds = (dcs_now - task.created_at).total_seconds()
            elif before is not None:
                seconds = (now - before.first_seen_at).total_seconds()
            else:
                continue
            if seconds >= stuck_after.total_seconds():
                found.append(Running(task, answer.instance, seconds))
    return found


def is_stuck(running: Running, stats: DurationStats | None, stuck_after: timedelta) -> bool:
    """True when the task has also run more than ``P95_FACTOR`` x its kind's p95 (when at least
    MIN_SAMPLES are known)."""
    limit = stuck_after.total_seconds()
    if stats is not None and stats.count >= MIN_SAMPLES:
        limit = max(limit, P95_FACTOR * stats.p95)
    return running.seconds >= limit
