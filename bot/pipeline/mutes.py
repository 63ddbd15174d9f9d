"""Mutes in the poll cycle: hold back the alerts an active mute covers (recording them), and
summarize each mute once it has ended. Pure functions over the mutes the store lists."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from bot.dcs.models import Task
from bot.pipeline.plan import Routed
from bot.slack import summaries
from state.base import Mute, MutedAlert, NewDelivery


def covers(mute: Mute, task: Task, instance_name: str | None, places: Collection[str] = ()) -> bool:
    """True when ``mute`` is about ``task``: its instance is ``*``, the task's instance ID or
    name, or one of the instance's ``places`` (``region:R``, its project ID), all compared
    case-insensitively; and its names (when any) contain the task's."""
    wanted = mute.instance.strip().casefold()
    known = {task.instance_id.casefold()} | ({instance_name.casefold()} if instance_name else set())
    known |= {place.casefold() for place in places}
    if wanted != "*" and wanted not in known:
        return False
    names = {name.strip().casefold() for name in mute.names}
    return not names or task.name.casefold() in names


def muting(
    mutes: Sequence[Mute],
    task: Task,
    instance_name: str | None,
    now: datetime,
    places: Collection[str] = (),
) -> Mute | None:
    """The first mute active at ``now`` that covers ``task``, or None."""
    for mute in mutes:
        if mute.active(now) and covers(mute, task, instance_name, places):
            return mute
    return None


def hold_muted(
    routed: Sequence[Routed], mutes: Sequence[Mute], now: datetime
) -> tuple[list[Routed], list[MutedAlert]]:
    """Split the routed alerts into those to send and those an active mute holds back, each
    held one recorded in the channel it would have gone to."""
    kept: list[Routed] = []
    held: list[MutedAlert] = []
    for item in routed:
        task, name = item.change.task, item.change.instance.name
        mute = muting(mutes, task, name, now, item.change.instance.places)
        if mute is None:
            kept.append(item)
            continue
        held.append(
            MutedAlert(
                mute.id, item.channel, task.instance_id, task.id, task.name, task.status, name
            )
        )
    return kept, held


def ended(mutes: Sequence[Mute], now: datetime) -> list[Mute]:
    """The mutes over at ``now`` whose summaries are still due."""
    return [m for m in mutes if not m.summarized and m.ends_at <= now]


def summary_deliveries(
    mute: Mute, held: Sequence[MutedAlert], names: Mapping[str, str], *, now: datetime
) -> list[NewDelivery]:
    """One summary per channel that would have received the mute's alerts; without any, one
    note in the channel the mute was set in."""
    by_channel: dict[str, list[MutedAlert]] = defaultdict(list)
    for alert in held:
        by_channel[alert.channel].append(alert)
    if not by_channel and mute.channel:
        by_channel[mute.channel] = []
    deliveries = []
    for channel, alerts in by_channel.items():
        message = summaries.mute_summary(mute, alerts, names, now=now)
        deliveries.append(NewDelivery("post", channel, message.text, message.blocks))
    return deliveries
