"""Tasks DCS stopped listing: an unfinished task that an instance's answer no longer holds
(DCS dropped it) would pin that instance's query window at its creation forever. After
``GONE_AFTER`` of absence from every successful answer it is settled: recorded as finished with
status ``GONE``, and one thread reply says so in each channel the task routes to.

When each task went missing is kept in the meta value ``MISSING_KEY`` ({instance: {task: ISO
time}}), written with the cycle, so a task that shows up again in between is simply forgotten
there (a paging glitch settles nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.dcs.models import Task, parse_time
from bot.pipeline.fetch import Fetched
from bot.pipeline.routing import route
from bot.slack.render import gone_reply
from state.base import NewDelivery, Subscription, TaskRecord

MISSING_KEY = "missing_since"
GONE_STATUS = "GONE"
#: How long an unfinished task may be missing from DCS's answers before it is settled as gone.
GONE_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Settled:
    """What a batch settles: the records to write, their replies, the updated missing map."""

    records: list[TaskRecord]
    deliveries: list[NewDelivery]
    missing: dict[str, dict[str, str]]


def missing_since(value: Any) -> dict[str, dict[str, str]]:
    """The stored missing map, whatever shape a damaged meta value has."""
    if not isinstance(value, dict):
        return {}
    return {
        str(iid): {str(t): str(at) for t, at in tasks.items()}
        for iid, tasks in value.items()
        if isinstance(tasks, dict)
    }


def settle(
    fetched: Sequence[Fetched],
    missing: Mapping[str, Mapping[str, str]],
    *,
    now: datetime,
    alert_channel: str | None,
    subscriptions: Sequence[Subscription],
    gone_after: timedelta = GONE_AFTER,
) -> Settled:
    """Track the unfinished tasks each successfully read instance no longer lists; settle those
    missing for ``gone_after``. An instance that could not be read keeps its entries."""
    updated = {iid: dict(tasks) for iid, tasks in missing.items()}
    records: list[TaskRecord] = []
    deliveries: list[NewDelivery] = []
    for answer in fetched:
        if answer.tasks is None:
            continue
        iid = answer.instance.instance_id
        listed = {t.id for t in answer.tasks} | answer.malformed_ids  # still listed, unreadable
        absent = {
            tid: record
            for tid, record in answer.previous.items()
            if record.finished_at is None and tid not in listed
        }
        before = updated.pop(iid, {})
        still: dict[str, str] = {}
        for tid, record in absent.items():
            since = parse_time(before.get(tid)) or now
            if now - since < gone_after:
                still[tid] = since.isoformat()
                continue
            records.append(replace(record, status=GONE_STATUS, finished_at=now))
            stored = {**record.task, "id": tid, "name": record.name, "status": record.status}
            task = Task.from_json(iid, stored)
            message = gone_reply(task, missing_for=now - since)
            for channel in route(task, answer.instance.label, alert_channel, subscriptions):
                deliveries.append(
                    NewDelivery(
                        "reply",
                        channel,
                        message.text,
                        message.blocks,
                        instance_id=iid,
                        task_id=tid,
                    )
                )
        if still:
            updated[iid] = still
    return Settled(records, deliveries, updated)
