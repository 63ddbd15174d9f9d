"""The planning step of the poll cycle: which channels each alerting change goes to (routing),
which channels get one digest instead of many new-task posts (digest), and the outbox items
that result (rendering). Three pure steps; ``plan_deliveries`` chains them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.pipeline.changes import Change
from bot.pipeline.detect import Reason
from bot.pipeline.routing import route
from bot.slack import render
from bot.slack.summaries import usually
from state.base import DurationStats, NewDelivery, Subscription


@dataclass(frozen=True, slots=True)
class Routed:
    """One alerting change bound for one channel."""

    channel: str
    change: Change


def route_changes(
    changes: Sequence[Change], *, alert_channel: str | None, subscriptions: Sequence[Subscription]
) -> list[Routed]:
    """Each alerting change once per channel it goes to, in the order of ``changes``."""
    return [
        Routed(channel, change)
        for change in changes
        if change.reason.alerts
        for channel in route(
            change.task,
            change.instance.name,
            alert_channel,
            subscriptions,
            places=change.instance.places,
        )
    ]


def digest_channels(routed: Sequence[Routed], *, threshold: int) -> dict[str, list[Change]]:
    """The channels with more than ``threshold`` new tasks this cycle, with those tasks."""
    new: dict[str, list[Change]] = {}
    for item in routed:
        if item.change.reason is Reason.NEW:
            new.setdefault(item.channel, []).append(item.change)
    return {channel: items for channel, items in new.items() if len(items) > threshold}


def render_deliveries(
    routed: Sequence[Routed],
    digests: dict[str, list[Change]],
    *,
    now: datetime,
    usual: Mapping[str, Mapping[str, DurationStats]] | None = None,
    dcs_now: Mapping[str, datetime] | None = None,
) -> list[NewDelivery]:
    """The outbox items: one digest per digest channel, then for each routed change a post
    (a new task, unless digested) or an edit of its message and a thread reply (a transition;
    broadcast when it failed), naming the usual duration of a finished task's kind when
    ``usual`` (instance ID → task name → stats) knows it. How long an unfinished task has run
    is counted to ``dcs_now`` of its instance (``now`` on DCS's clock) when given, else ``now``."""
    deliveries: list[NewDelivery] = []
    for channel, changes in digests.items():
        message = render.digest([(c.task, c.instance.label) for c in changes], now=now)
        deliveries.append(NewDelivery("digest", channel, message.text, message.blocks))
    clocks = dcs_now or {}
    for item in routed:
        if item.change.reason is Reason.NEW and item.channel in digests:
            continue
        task_now = clocks.get(item.change.task.instance_id, now)
        deliveries += _task_deliveries(item, task_now, usual or {})
    return deliveries


def _task_deliveries(
    item: Routed, now: datetime, usual: Mapping[str, Mapping[str, DurationStats]]
) -> list[NewDelivery]:
    """The outbox items of one change in one channel."""
    channel, change = item.channel, item.change
    task, name = change.task, change.instance.label
    alert = render.task_alert(task, name, now=now)
    if change.reason is Reason.NEW:
        return [NewDelivery("post", channel, alert.text, alert.blocks, task.instance_id, task.id)]
    assert change.previous is not None  # only a known task changes status
    note = usually(usual.get(task.instance_id, {}).get(task.name)) if task.is_final else ""
    reply = render.transition_reply(task, change.previous.status, now=now, usual=note)
    return [
        NewDelivery("update", channel, alert.text, alert.blocks, task.instance_id, task.id),
        NewDelivery(
            "reply",
            channel,
            reply.text,
            reply.blocks,
            task.instance_id,
            task.id,
            reply_broadcast=change.reason is Reason.FAILED,
        ),
    ]


def plan_deliveries(
    changes: Sequence[Change],
    *,
    alert_channel: str | None,
    subscriptions: Sequence[Subscription],
    digest_threshold: int,
    now: datetime,
) -> list[NewDelivery]:
    """Route, digest and render the alerting changes into outbox items.

    A channel with more than ``digest_threshold`` new tasks this cycle gets one digest instead.
    """
    routed = route_changes(changes, alert_channel=alert_channel, subscriptions=subscriptions)
    digests = digest_channels(routed, threshold=digest_threshold)
    return render_deliveries(routed, digests, now=now)
