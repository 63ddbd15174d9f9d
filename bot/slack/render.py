"""Slack messages for DCS tasks: Block Kit blocks plus the plain ``text`` notification fallback.

Pure functions. Every value that comes from DCS is mrkdwn-escaped and clipped so that each
message stays inside Slack's limits. A Task never holds ``params`` (``bot.dcs.models``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.dcs.models import Task, TaskDetails
from bot.slack.blocks import (
    MAX_BLOCKS,
    MAX_BUTTON_VALUE,
    MAX_SECTION_TEXT,
    MAX_TEXT,
    MAX_VALUE,
    context,
    date_fallback,
    date_token,
    esc,
    field_sections,
    fit,
    header,
    packed_sections,
    section,
)

TASK_LABELS: dict[str, str] = {
    "EXTEND": "Modifying specifications",
    "BindEip": "Enabling public access",
    "UnBindEip": "Disabling public access",
    "AddReplica": "Adding replicas",
    "DelReplica": "Deleting replicas",
    "AddWhitelist": "Configuring an IP whitelist",
    "UpdatePort": "Changing the port",
    "RemoveIpFromDns": "Removing IP addresses",
    "masterStandbySwapJob": "Master/standby switchover",
    "modify": "Changing the password",
}

_STATUS_EMOJI: dict[str, str] = {
    "CREATED": ":hourglass_flowing_sand:",
    "WAITING": ":hourglass_flowing_sand:",
    "EXECUTING": ":arrows_counterclockwise:",
    "SUCCESS": ":white_check_mark:",
    "FAILED": ":x:",
    "CANCELLED": ":white_circle:",
    "CANCELED": ":white_circle:",
    "DELETED": ":white_circle:",
}
_UNKNOWN_STATUS_EMOJI = ":grey_question:"

# (label, old field, new field, unit) of the DetailsBody "before → after" pairs.
_PAIRS: tuple[tuple[str, str, str, str], ...] = (
    ("Capacity", "old_capacity", "new_capacity", "GB"),
    ("Specification", "old_resource_spec_code", "new_resource_spec_code", ""),
    ("Cache mode", "old_cache_mode", "new_cache_mode", ""),
    ("Cache type", "old_cache_type", "new_cache_type", ""),
    ("Replicas", "old_replica_num", "new_replica_num", ""),
    ("Port", "old_port", "new_port", ""),
)
# (label, field) of the plain DetailsBody facts, in the order they are shown.
_FACTS: tuple[tuple[str, str], ...] = (
    ("Public access", "enable_public_ip"),
    ("Public IP", "public_ip_address"),
    ("Public IP ID", "public_ip_id"),
    ("SSL", "enable_ssl"),
    ("Whitelist group", "group_name"),
    ("Replica IP", "replica_ip"),
    ("Replica AZ", "replica_az"),
    ("Node", "node_name"),
    ("Source IP", "source_ip"),
    ("Target IP", "target_ip"),
    ("Account", "account_name"),
    ("Renamed commands", "rename_commands"),
    ("Updated configuration length", "updated_config_length"),
    ("Billing mode change only", "is_only_adjust_charging"),
)
_ON_OFF = {"enable_public_ip", "enable_ssl"}


@dataclass(frozen=True)
class Message:
    """A Slack message: ``text`` is the notification fallback, ``blocks`` the Block Kit layout."""

    text: str
    blocks: list[dict[str, Any]]


def task_label(name: str) -> str:
    """The task name in words ("Modifying specifications" for EXTEND); unknown names as they are."""
    return TASK_LABELS.get(name, name) or "Unnamed task"


def status_emoji(status: str) -> str:
    """A Slack emoji code for a task status; a neutral one for statuses not known here."""
    return _STATUS_EMOJI.get(status.upper(), _UNKNOWN_STATUS_EMOJI)


def instance_display(instance_id: str, name: str | None) -> str:
    """The instance's name where known, else its ID (raw: escape it before putting it in mrkdwn)."""
    return name or instance_id


def format_duration(seconds: float) -> str:
    """A short human duration: ``4s``, ``3m 4s``, ``2h 5m``, ``1d 3h`` (negative counts as 0)."""
    total = int(seconds) if math.isfinite(seconds) and seconds > 0 else 0
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return _two(minutes, "m", secs, "s")
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return _two(hours, "h", minutes, "m")
    days, hours = divmod(hours, 24)
    return _two(days, "d", hours, "h")


def _two(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit} {small}{small_unit}" if small else f"{big}{big_unit}"


def task_alert(task: Task, instance_name: str | None, *, now: datetime) -> Message:
    """The alert posted (and later updated in place) for one task."""
    emoji, label, status, instance = _heading(task, instance_name)
    blocks: list[dict[str, Any]] = [
        header(f"{emoji} {task_label(task.name)}"),
        section(_summary(task, instance_name)),
    ]
    blocks += _fields(_detail_facts(task.details))
    lines = []
    who = task.user_name or task.user_id
    if who:
        lines.append(f"Started by *{esc(who)}*")
    if task.created_at is not None:
        started = date_token(task.created_at)
        lines.append(started if who else f"Started {started}")
    if (elapsed := _elapsed(task, now)) is not None:
        verb = "Took" if task.is_final else "Running for"
        lines.append(f"{verb} {format_duration(elapsed)}")
    lines.append(f"Task `{esc(task.id)}`")
    blocks.append(context(*lines))
    if actions := _actions(task):
        blocks.append(actions)
    return Message(text=fit(f"{emoji} {label} {status} on {instance}", MAX_TEXT), blocks=blocks)


def transition_reply(task: Task, old_status: str, *, now: datetime, usual: str = "") -> Message:
    """The thread reply recording a status change, e.g. ``EXECUTING → SUCCESS after 3m 4s``;
    ``usual`` (plain text such as `` (usually 4m)``) follows the duration."""
    emoji = status_emoji(task.status)
    old, new = _status(old_status), _status(task.status)
    elapsed = _elapsed(task, now)
    after = f" after {format_duration(elapsed)}" if elapsed is not None else ""
    after += usual
    label = esc(task_label(task.name))
    line = f"{emoji} *{label}*: {old} → *{new}*{after}"
    return Message(
        text=fit(f"{emoji} {label}: {old} → {new}{after}", MAX_TEXT),
        blocks=[section(line)],
    )


def gone_reply(task: Task, *, missing_for: timedelta) -> Message:
    """The thread reply settling a task DCS no longer lists: its last known status, and that
    its outcome is unknown."""
    label = esc(task_label(task.name))
    last = _status(task.status)
    gone = format_duration(missing_for.total_seconds())
    line = (
        f":grey_question: *{label}*: {last} → *no longer listed by DCS* (missing for {gone}); "
        "its outcome is unknown, check the instance in the console"
    )
    text = f"{label}: {last} → no longer listed by DCS (missing for {gone}); outcome unknown"
    return Message(text=fit(text, MAX_TEXT), blocks=[section(line)])


def digest(tasks: Sequence[tuple[Task, str | None]], *, now: datetime) -> Message:
    """One message listing many new tasks (task, instance name), ending "and N more" when full."""
    del now  # part of the signature so all renderers agree; a digest shows absolute times
    count = len(tasks)
    noun = "task" if count == 1 else "tasks"
    statuses = Counter(_status(task.status) for task, _ in tasks)
    summary = ", ".join(f"{n} {status}" for status, n in statuses.most_common())
    blocks: list[dict[str, Any]] = [header(f":bell: {count} new DCS {noun}")]
    sections, listed = packed_sections(
        (fit(_digest_line(task, name), MAX_SECTION_TEXT // 3) for task, name in tasks),
        budget=MAX_BLOCKS - 2,  # the header, and the "and N more" line
    )
    blocks += [section(text) for text in sections]
    if listed < count:
        blocks.append(context(f"… and {count - listed} more"))
    text = f"{count} new DCS {noun}" + (f" ({summary})" if summary else "")
    return Message(text=fit(text, MAX_TEXT), blocks=blocks)


def task_details(task: Task, instance_name: str | None) -> Message:
    """Every field of a task that has a value, labelled in words ("Details" button, ``show``)."""
    emoji, label, status, instance = _heading(task, instance_name)
    facts: list[tuple[str, str]] = [("Task ID", f"`{esc(task.id)}`")]
    if task.name:
        facts.append(("Task name", f"`{esc(task.name)}`"))
    facts += [("Status", f"{emoji} {status}"), ("Instance", _instance_with_id(task, instance_name))]
    if task.user_name:
        facts.append(("Started by", esc(task.user_name)))
    if task.user_id:
        facts.append(("User ID", esc(task.user_id)))
    if task.created_at is not None:
        facts.append(("Started", date_token(task.created_at)))
    if task.updated_at is not None:
        facts.append(("Ended" if task.is_final else "Last updated", date_token(task.updated_at)))
    if task.is_final and task.created_at is not None and task.updated_at is not None:
        seconds = (task.updated_at - task.created_at).total_seconds()
        facts.append(("Duration", format_duration(seconds)))
    facts += _detail_facts(task.details)
    blocks = [header(f"{emoji} {task_label(task.name)}"), section(_summary(task, instance_name))]
    blocks += _fields(facts)
    lines = [f"{emoji} {label} {status} on {instance}"]
    lines += [f"{name}: {date_fallback(value)}" for name, value in facts]
    return Message(text=fit("\n".join(lines), MAX_TEXT), blocks=blocks)


# --- building blocks -------------------------------------------------------------------------


def _heading(task: Task, instance_name: str | None) -> tuple[str, str, str, str]:
    """Emoji, escaped label, status and escaped instance display for one task."""
    instance = esc(instance_display(task.instance_id, instance_name))
    return status_emoji(task.status), esc(task_label(task.name)), _status(task.status), instance


def _status(status: str) -> str:
    return esc(status.upper()) or "UNKNOWN"


def _summary(task: Task, instance_name: str | None) -> str:
    return f"*{_status(task.status)}* on {_instance_with_id(task, instance_name)}"


def _instance_with_id(task: Task, instance_name: str | None) -> str:
    if instance_name and instance_name != task.instance_id:
        return f"*{esc(instance_name)}* (`{esc(task.instance_id)}`)"
    return f"`{esc(task.instance_id)}`"


def _digest_line(task: Task, instance_name: str | None) -> str:
    emoji, label, status, instance = _heading(task, instance_name)
    when = f" · {date_token(task.created_at)}" if task.created_at is not None else ""
    return f"{emoji} *{label}* {status} on *{instance}*{when} · `{esc(task.id)}`"


def _elapsed(task: Task, now: datetime) -> float | None:
    """Seconds from start to end (finished) or to ``now`` (still running); None when unknown."""
    if task.created_at is None:
        return None
    end = task.updated_at if task.is_final else now
    if end is None:
        return None
    return max(0.0, (end - task.created_at).total_seconds())


def _detail_facts(details: TaskDetails) -> list[tuple[str, str]]:
    """(label, escaped value) for every DetailsBody field that has a value."""
    present = details.present()
    facts: list[tuple[str, str]] = []
    for label, old_field, new_field, unit in _PAIRS:
        old, new = present.get(old_field), present.get(new_field)
        parts = [str(v) for v in (old, new) if v is not None]
        if not parts:
            continue
        value = parts[0] if len(parts) == 1 or parts[0] == parts[1] else f"{parts[0]} → {parts[1]}"
        if unit and all(_is_number(p) for p in parts):
            value = f"{value} {unit}"
        facts.append((label, esc(value)))
    for label, name in _FACTS:
        if name not in present:
            continue
        raw = present[name]
        if isinstance(raw, bool):
            text = (
                ("enabled" if raw else "disabled") if name in _ON_OFF else ("yes" if raw else "no")
            )
        elif isinstance(raw, tuple):
            text = ", ".join(raw)
        else:
            text = str(raw)
        facts.append((label, esc(text)))
    return facts


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _fields(facts: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Facts as section fields, each value clipped to ``MAX_VALUE``."""
    return field_sections((label, fit(value, MAX_VALUE)) for label, value in facts)


def _actions(task: Task) -> dict[str, Any] | None:
    """The Refresh / Details buttons, or None when the task's IDs cannot fit in a button value."""
    value = json.dumps({"instance_id": task.instance_id, "task_id": task.id})
    if len(value) > MAX_BUTTON_VALUE:
        return None
    buttons = [("task_refresh", "Refresh"), ("task_details", "Details")]
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": action_id,
                "text": {"type": "plain_text", "text": text},
                "value": value,
            }
            for action_id, text in buttons
        ],
    }


def channel_failing(channel: str, error: str) -> Message:
    """The one notice to the alert channel when another channel can no longer be posted to."""
    where = f"<#{esc(channel)}>"
    line = (
        f":warning: The bot can no longer post alerts to {where} (Slack says `{esc(error)}`). "
        "Every alert still comes here. Invite the bot there again, or type "
        "`/dcs-tasks unsubscribe *` in that channel to stop routing alerts to it."
    )
    return Message(
        text=fit(f"The bot can no longer post alerts to {where} ({error})", MAX_TEXT),
        blocks=[section(line)],
    )
