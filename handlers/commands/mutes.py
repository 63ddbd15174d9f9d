"""``mute``, ``unmute``, ``mutes`` and ``report``: what they do with the store."""

from __future__ import annotations

import contextlib
import re

from bot.dcs.errors import DcsError
from bot.slack.render import Message
from bot.slack.report import report_message
from handlers.commands import mute_replies, replies
from handlers.commands.parse import MuteAlerts, Report, Unmute
from handlers.deps import Deps
from state.base import Mute

_MUTE_ID = re.compile(r"#?([0-9]{1,12})")


def names_of(deps: Deps) -> dict[str, str]:
    """Instance names by ID: the poller's cursors, then the watched list where it answers."""
    names = {iid: c.name for iid, c in deps.store.cursors().items() if c.name}
    with contextlib.suppress(DcsError):  # DCS down: the cursors' names do
        names.update({i.instance_id: i.label for i in deps.watched()})
    return names


def active_mutes(deps: Deps) -> list[Mute]:
    """The mutes silencing alerts now."""
    now = deps.clock()
    return [m for m in deps.store.mutes() if m.active(now)]


def mute(deps: Deps, command: MuteAlerts, *, user_id: str, channel_id: str) -> Message:
    """Store a mute of a watched instance (its ID, stable across renames), of a region or
    project (several projects watched), or of ``*``."""
    target = command.instance
    place = deps.find_place(target) if target != "*" else None
    if place is not None:
        target = place
    elif target != "*":
        instance = deps.find_instance(target)
        if instance is None:
            return replies.unknown_instance(target, deps.watched())
        target = instance.instance_id
    now = deps.clock()
    stored = deps.store.add_mute(
        Mute(
            id=0,
            instance=target,
            starts_at=now,
            ends_at=now + command.duration,
            names=command.names,
            reason=command.reason,
            created_by=user_id,
            channel=channel_id,
        )
    )
    return mute_replies.muted(stored, names_of(deps))


def unmute(deps: Deps, command: Unmute, *, user_id: str) -> Message:
    """End one mute by ID, every mute (``*``), or those of one instance; the poller posts the
    summaries in its next cycle."""
    running = active_mutes(deps)
    target = command.target
    chosen: list[Mute]
    by_id = _MUTE_ID.fullmatch(target)
    if target == "*":
        chosen = running
    elif by_id and any(m.id == int(by_id.group(1)) for m in running):
        chosen = [m for m in running if m.id == int(by_id.group(1))]
    else:
        instance = deps.find_instance(target)
        place = deps.find_place(target)
        wanted = {target.casefold()} | ({place.casefold()} if place else set())
        if instance is not None:
            wanted |= {instance.instance_id.casefold(), instance.name.casefold()}
        chosen = [m for m in running if m.instance.casefold() in wanted]
    now = deps.clock()
    ended = [m for m in (deps.store.end_mute(m.id, now, user_id) for m in chosen) if m]
    if not ended:
        return mute_replies.nothing_to_unmute(target)
    return mute_replies.unmuted(ended, names_of(deps), user_id)


def list_mutes(deps: Deps) -> Message:
    """The mutes in force."""
    return mute_replies.mute_list(active_mutes(deps), names_of(deps))


def report(deps: Deps, command: Report) -> Message:
    """The task report of every watched instance or one."""
    instance_id: str | None = None
    display: str | None = None
    if command.instance is not None:
        instance = deps.find_instance(command.instance)
        if instance is None:
            return replies.unknown_instance(command.instance, deps.watched())
        instance_id, display = instance.instance_id, instance.label
    result = deps.store.task_report(deps.clock() - command.since, instance_id)
    return report_message(result, names_of(deps), since=command.since, instance=display)
