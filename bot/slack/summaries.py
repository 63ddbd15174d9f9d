"""Messages about mutes, stuck tasks and usual durations. Pure functions: every value from DCS
or a user is escaped; each message stays inside Slack's limits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from bot.slack.blocks import (
    MAX_SECTION_TEXT,
    MAX_TEXT,
    context,
    date_token,
    esc,
    fit,
    section,
    units,
)
from bot.slack.render import Message, format_duration, status_emoji, task_label
from state.base import DurationStats, Mute, MutedAlert

#: Samples a kind of task needs before its usual duration is named.
MIN_SAMPLES = 5
#: Sections of FAILED tasks a mute summary names (about 25 tasks each); the rest are counted.
MAX_FAILED_SECTIONS = 8


def mute_target(mute: Mute, names: Mapping[str, str]) -> str:
    """What a mute covers, as mrkdwn: ``*cache-prod* (EXTEND, BindEip)``."""
    if mute.instance == "*":
        where = "*every instance*"
    elif mute.instance.startswith("region:"):
        where = f"*every instance in {esc(mute.instance.removeprefix('region:'))}*"
    else:
        where = f"*{esc(names.get(mute.instance, mute.instance))}*"
    if mute.names:
        where += " (" + ", ".join(esc(n) for n in mute.names) + ")"
    return where


def _who_why(mute: Mute) -> str:
    who = f"<@{esc(mute.created_by)}>" if mute.created_by else "someone"
    return f"Muted by {who}" + (f": {esc(mute.reason)}" if mute.reason else "")


def mute_summary(
    mute: Mute, held: Sequence[MutedAlert], names: Mapping[str, str], *, now: datetime
) -> Message:
    """The summary of what a mute held back from one channel: the count by status, every
    FAILED task named with its instance, who muted and why."""
    del now  # part of the signature so all renderers agree; the end time is the mute's
    how = f"ended by <@{esc(mute.ended_by)}>" if mute.ended_by else "expired"
    head = f":bell: Mute {mute.id} of {mute_target(mute, names)} {how} {date_token(mute.ends_at)}."
    if not held:
        blocks = [section(head + " No alert was held back."), context(_who_why(mute))]
        return Message(fit(f"Mute {mute.id} {how}: no alert was held back", MAX_TEXT), blocks)
    statuses = Counter(alert.status.upper() or "UNKNOWN" for alert in held)
    counts = ", ".join(f"{n} {esc(status)}" for status, n in statuses.most_common())
    noun = "alert" if len(held) == 1 else "alerts"
    blocks = [
        section(f"{head}\nIt held back {len(held)} {noun}: {counts}."),
        context(_who_why(mute)),
    ]
    failed = [a for a in held if a.status.upper() == "FAILED"]
    sections: list[str] = []
    listed = 0
    for alert in failed:
        instance = esc(alert.instance_name or alert.instance_id)
        label = esc(task_label(alert.name))
        line = f"{status_emoji('FAILED')} *{label}* FAILED on *{instance}* · `{esc(alert.task_id)}`"
        if sections and units(sections[-1]) + 1 + units(line) <= MAX_SECTION_TEXT:
            sections[-1] += "\n" + line
        elif len(sections) < MAX_FAILED_SECTIONS:
            sections.append(line)
        else:
            break
        listed += 1
    blocks[1:1] = [section(text) for text in sections]
    if listed < len(failed):
        blocks.append(context(f"… and {len(failed) - listed} more FAILED"))
    text = f"Mute {mute.id} {how}: held back {len(held)} {noun} ({counts})"
    if failed:
        text += "; FAILED: " + ", ".join(
            f"{task_label(a.name)} on {a.instance_name or a.instance_id}" for a in failed[:10]
        )
    return Message(fit(text, MAX_TEXT), blocks)


def usually(stats: DurationStats | None) -> str:
    """`` (usually 4m)`` when at least MIN_SAMPLES are known (the median), else nothing."""
    if stats is None or stats.count < MIN_SAMPLES:
        return ""
    return f" (usually {format_duration(stats.p50)})"


def stuck_warning(
    name: str, status: str, running_seconds: float, stats: DurationStats | None
) -> Message:
    """The thread reply about a task that runs far longer than it should: ``still EXECUTING
    after 47m, usually 4m (p95 of 23)``."""
    line = f"still {esc(status.upper() or 'UNKNOWN')} after {format_duration(running_seconds)}"
    if stats is not None and stats.count >= MIN_SAMPLES:
        line += f", usually {format_duration(stats.p95)} (p95 of {stats.count})"
    label = esc(task_label(name))
    return Message(
        fit(f":hourglass: {label} {line}", MAX_TEXT),
        [section(f":hourglass: *{label}* {line}")],
    )
