"""Where an alert goes: ``DCS_ALERT_CHANNEL`` always, plus each channel whose subscription
matches, each channel once (INTERFACE.md "Routing": subscriptions add channels, they never take
alerts away from the alert channel)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bot.dcs.models import Task
from state.base import Subscription


def route(
    task: Task,
    instance_name: str | None,
    alert_channel: str | None,
    subscriptions: Sequence[Subscription],
    *,
    places: Collection[str] = (),
) -> list[str]:
    """The channels that receive ``task``'s alert: ``alert_channel`` (when set) first, then the
    channel of each matching subscription in order, each channel once."""
    channels: list[str] = [alert_channel] if alert_channel else []
    for subscription in subscriptions:
        if subscription.channel not in channels and matches(
            subscription, task, instance_name, places=places
        ):
            channels.append(subscription.channel)
    return channels


def matches(
    subscription: Subscription,
    task: Task,
    instance_name: str | None,
    *,
    places: Collection[str] = (),
) -> bool:
    """True when ``subscription`` covers ``task``: its instance is ``*``, the task's instance ID
    or name, or one of the instance's ``places`` (``region:R``, its project ID), all compared
    case-insensitively, and its status and name filters (when any) contain the task's."""
    wanted = subscription.instance.strip().casefold()
    known = {task.instance_id.casefold()} | ({instance_name.casefold()} if instance_name else set())
    known |= {place.casefold() for place in places}
    if wanted != "*" and wanted not in known:
        return False
    statuses = {status.strip().casefold() for status in subscription.statuses}
    if statuses and task.status.casefold() not in statuses:
        return False
    names = {name.strip().casefold() for name in subscription.names}
    return not names or task.name.casefold() in names
