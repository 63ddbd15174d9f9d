"""The Block Kit replies of ``/dcs-tasks``: one pure function per kind of answer.

Each returns a :class:`bot.slack.render.Message` (text fallback + blocks) inside Slack's limits
(at most 50 blocks, 3000 characters per section); every value from DCS or the user is escaped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from slack_bolt import Respond

from bot.dcs.errors import (
    DcsApiError,
    DcsAuthError,
    DcsBadResponseError,
    DcsError,
    DcsNotFoundError,
    DcsUnavailableError,
)
from bot.dcs.models import Instance, Task
from bot.dcs.query import QueryResult
from bot.slack.blocks import (
    MAX_BLOCKS,
    MAX_SECTION_TEXT,
    MAX_TEXT,
    context,
    date_fallback,
    date_token,
    field_sections,
    fit,
    section,
    units,
)
from bot.slack.blocks import esc as _escape
from bot.slack.channels import FailingChannel
from bot.slack.render import (
    Message,
    format_duration,
    instance_display,
    status_emoji,
    task_details,
    task_label,
)
from handlers.commands.parse import FULL_USAGE, ListTasks, ParseError, quote
from handlers.deps import TaskLookup
from state.base import InstanceCursor, Subscription

logger = logging.getLogger(__name__)

#: Most tasks one ``list`` reply shows; the rest are counted in "and N more".
MAX_LISTED = 50
_MAX_VALUE = 300

#: What routing does, said wherever subscriptions are explained.
ROUTING_RULE = (
    "Every alert goes to the alert channel (DCS_ALERT_CHANNEL); a subscription adds a channel, "
    "it never takes alerts away from the alert channel."
)

EXAMPLES = (
    ("/dcs-tasks list", "recent tasks of every watched instance (last 24h, 20 at most)"),
    ("/dcs-tasks cache-prod status:FAILED since:7d", "failed tasks of one instance this week"),
    ("/dcs-tasks list name:EXTEND limit:0", "every resize of the last 24h"),
    ("/dcs-tasks show TASK_ID", "one task with all its details"),
    ("/dcs-tasks instances", "the watched instances and their last poll"),
    ("/dcs-tasks status", "the bot's own health"),
    (
        "/dcs-tasks subscribe * status:FAILED",
        "also send failures of every instance to this channel",
    ),
    ("/dcs-tasks unsubscribe *", "stop that again"),
    ("/dcs-tasks subscriptions", "what this channel receives"),
    ("/dcs-tasks mute cache-prod for:2h resize", "hold back an instance's alerts for 2 hours"),
    ("/dcs-tasks unmute *", "end every mute now (a summary follows)"),
    ("/dcs-tasks report since:7d", "the week per task name: ran, failed, p50/p95"),
)


def send_ephemeral(
    respond: Respond, message: Message, *, replace_original: bool | None = None
) -> None:
    """Answer through the ``response_url``, visible to the asking user only."""
    # An announcement (mute, unmute) is for the whole channel.
    visible = getattr(message, "in_channel", False)
    response = respond(
        text=message.text,
        blocks=message.blocks,
        response_type="in_channel" if visible else "ephemeral",
        replace_original=replace_original,
    )
    if response.status_code != 200:
        logger.warning("Slack refused a reply: HTTP %s %s", response.status_code, response.body)


# --- small pieces ----------------------------------------------------------------------------


def esc(value: object) -> str:
    """A value for mrkdwn (see :func:`bot.slack.blocks.esc`), clipped shorter than in alerts."""
    return _escape(value, _MAX_VALUE)


def _message(text: str, blocks: list[dict[str, Any]]) -> Message:
    return Message(text=fit(text, MAX_TEXT), blocks=blocks[:MAX_BLOCKS])


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    return f"{format_duration((now - when).total_seconds())} ago"


def _span(since: timedelta) -> str:
    """``since`` as typed: ``24h``, ``7d``, ``90m``."""
    seconds = int(since.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and (unit != "d" or seconds > 86400):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _plain(mrkdwn: str) -> str:
    """Rough plain text of mrkdwn for the notification fallback (date tokens as their text)."""
    return date_fallback(mrkdwn).replace("*", "").replace("`", "")


# --- help and refusals -----------------------------------------------------------------------


def help_message() -> Message:
    """``help``: every subcommand with an example."""
    lines = [f"`{command}`  {what}" for command, what in EXAMPLES]
    blocks = [
        section("*/dcs-tasks* answers questions about DCS background tasks. Only you see it."),
        section("*Usage*\n```" + FULL_USAGE + "```"),
        section("*Examples*\n" + "\n".join(lines)),
        context(
            "INSTANCE is a watched instance's name or ID. Times: 90m, 24h, 7d. " + ROUTING_RULE
        ),
    ]
    return _message("/dcs-tasks usage:\n" + FULL_USAGE, blocks)


def usage_error(error: ParseError) -> Message:
    """Wrong input: the reason on one line, then the usage that applies."""
    blocks = [
        section(f":warning: {error.reason}"),
        section("```" + error.usage + "```"),
    ]
    return _message(f"{_plain(error.reason)}\nUsage: {error.usage}", blocks)


def notice(line: str) -> Message:
    """A one-line answer (a refusal, a confirmation, "not found")."""
    return _message(_plain(line), [section(line)])


def unknown_instance(wanted: str, watched: Sequence[Instance]) -> Message:
    """A named instance that is not watched, with the ones that are."""
    names = ", ".join(esc(i.label) for i in watched[:15]) + (", …" if len(watched) > 15 else "")
    return notice(
        f":mag: No watched instance is called {quote(wanted)}. "
        f"Watched: {names or 'none'}. See `/dcs-tasks help`."
    )


def dcs_problem(exc: DcsError) -> str:
    """A DCS failure as one short human sentence with the DCS error code, if there is one."""
    if isinstance(exc, DcsApiError):
        code = f"{esc(exc.error_code)}: " if exc.error_code else f"HTTP {exc.status_code}: "
        detail = code + esc(exc.error_msg or "no reason given")
        if isinstance(exc, DcsAuthError):
            return f"DCS refused the bot's credentials ({detail}); ask an admin to check them."
        if isinstance(exc, DcsNotFoundError):
            return f"DCS does not know that project or instance ({detail})."
        return f"DCS refused the request ({detail})."
    if isinstance(exc, DcsUnavailableError):
        status = f"HTTP {exc.status_code}" if exc.status_code else "no answer"
        if exc.error_code:
            status += f", {esc(exc.error_code)}"
        return f"DCS is not answering right now ({status}, after retries); try again in a minute."
    if isinstance(exc, DcsBadResponseError):
        return "DCS sent an answer the bot cannot read; try again in a minute."
    return f"DCS: {esc(exc)}"


def dcs_error(exc: DcsError) -> Message:
    """A DCS failure as a reply."""
    return notice(f":warning: {dcs_problem(exc)}")


def unexpected() -> Message:
    """Something broke inside the bot (the details are in its log)."""
    return notice(
        ":warning: Sorry, something went wrong on the bot's side; the details are in its log."
    )


# --- list ------------------------------------------------------------------------------------


def _task_line(task: Task, names: Mapping[str, str]) -> str:
    instance = esc(instance_display(task.instance_id, names.get(task.instance_id)))
    when = f" · {date_token(task.created_at)}" if task.created_at else ""
    return (
        f"{status_emoji(task.status)} *{esc(task_label(task.name))}* "
        f"{esc(task.status or 'UNKNOWN')} · {instance}{when} · `{esc(task.id)}`"
    )


def _describe(query: ListTasks, names: Mapping[str, str]) -> str:
    where = (
        f"*{esc(names.get(query.instance, query.instance))}*"
        if query.instance
        else "all watched instances"
    )
    parts = [f"on {where} in the last {_span(query.since)}"]
    if query.status:
        parts.append(f"status {esc(query.status)}")
    if query.name:
        parts.append(f"name {esc(query.name)}")
    return " · ".join(parts)


def task_list(result: QueryResult, query: ListTasks, names: Mapping[str, str]) -> Message:
    """``list``: one line per task, newest first, packed into sections; "and N more" when cut."""
    noun = "task" if result.total == 1 else "tasks"
    title = f"{result.total} DCS {noun} {_describe(query, names)}"
    blocks: list[dict[str, Any]] = [section(f":clipboard: {title}")]
    sections: list[str] = []
    shown = 0
    for task in result.tasks[:MAX_LISTED]:
        line = _task_line(task, names)
        if sections and units(sections[-1]) + 1 + units(line) <= MAX_SECTION_TEXT:
            sections[-1] += "\n" + line
        else:
            sections.append(line)
        shown += 1
    blocks += [section(text) for text in sections]
    for instance_id, problem in list(result.errors.items())[:5]:
        name = esc(names.get(instance_id, instance_id))
        blocks.append(context(f":warning: Could not read *{name}*: {esc(problem)}"))
    if shown == 0 and not result.errors:
        blocks.append(context("Nothing matched. Widen it with since: (e.g. since:7d)."))
    if result.total > shown:
        blocks.append(context(f"… and {result.total - shown} more — narrow it with since:/status:"))
    lines = [title] + [_plain(_task_line(t, names)) for t in result.tasks[:10]]
    return _message("\n".join(lines), blocks)


# --- show ------------------------------------------------------------------------------------


def task_not_found(task_id: str) -> Message:
    """``show`` of a task neither remembered nor listed by DCS."""
    return notice(
        f":mag: No task {quote(task_id)} in the watched instances (the bot remembers "
        "finished tasks for DCS_RETENTION and searches DCS over DCS_LOOKBACK)."
    )


def looked_up(found: TaskLookup, task_id: str, instance_name: str | None) -> Message:
    """``show`` and "Details": every detail of the task found, noting when it is not live."""
    if found.task is None:
        return dcs_error(found.problem) if found.problem else task_not_found(task_id)
    message = task_details(found.task, instance_name)
    if found.live:
        return message
    why = dcs_problem(found.problem) if found.problem else "DCS no longer lists it."
    return with_note(message, f"As the bot last saw it. {why}")


def with_note(message: Message, note: str) -> Message:
    """``message`` with a context line added at the end."""
    blocks = [*message.blocks[: MAX_BLOCKS - 1], context(note)]
    return Message(text=message.text, blocks=blocks)


# --- instances and status --------------------------------------------------------------------


def instance_list(
    instances: Sequence[Instance], cursors: Mapping[str, InstanceCursor], *, now: datetime
) -> Message:
    """``instances``: each watched instance with its DCS status and last poll."""
    noun = "instance" if len(instances) == 1 else "instances"
    blocks: list[dict[str, Any]] = [section(f":card_file_box: {len(instances)} watched {noun}")]
    lines = []
    for instance in instances[: MAX_BLOCKS - 2]:
        cursor = cursors.get(instance.instance_id)
        polled = _ago(cursor.last_polled_at if cursor else None, now)
        engine = f" · {esc(instance.engine)}" if instance.engine else ""
        text = (
            f"*{esc(instance.label)}* (`{esc(instance.instance_id)}`){engine} · "
            f"{esc(instance.status or 'status unknown')}\nLast poll: {polled}"
        )
        if cursor and cursor.last_error:
            text += f"\n:warning: {esc(cursor.last_error)}"
        blocks.append(section(text))
        lines.append(_plain(text.replace("\n", " · ")))
    if len(instances) > MAX_BLOCKS - 2:
        blocks.append(context(f"… and {len(instances) - (MAX_BLOCKS - 2)} more"))
    if not instances:
        blocks.append(context("No instance is watched: check DCS_INSTANCES."))
    return _message("\n".join([f"{len(instances)} watched {noun}", *lines]), blocks)


def _cycle_text(report: Mapping[str, Any]) -> str:
    seconds = report.get("last_cycle_seconds")
    if not isinstance(seconds, int | float):
        return "none yet"
    text = f"{seconds:.1f}s"
    if report.get("cycle_overran"):
        text += " :warning: longer than the poll interval: ticks are skipped until a cycle ends"
    return text


def bot_status(
    code: int,
    report: Mapping[str, Any],
    *,
    started_at: datetime,
    failing: Sequence[FailingChannel] = (),
) -> Message:
    """``status``: the same facts as ``/healthz``, in words, and the channels that fail."""
    state = report.get("status")
    if code == 200 and state == "starting":
        verdict = ":hourglass_flowing_sand: Starting: the first poll is still due."
    elif code == 200:
        verdict = ":white_check_mark: Healthy: polls are on time."
    elif state == "state_unavailable":
        verdict = ":x: The state store cannot be read."
    else:
        verdict = ":x: Polls are late."
    last_success = report.get("last_success_at")
    error = report.get("last_error")
    error_text = "none"
    if isinstance(error, Mapping) and error.get("message"):
        error_text = esc(error["message"])
        if error.get("at"):
            error_text += f" (at {esc(error['at'])})"
    facts = [
        ("Last successful poll", esc(last_success) if last_success else "none yet"),
        ("Last error", error_text),
        ("Pending deliveries", esc(report.get("pending_deliveries", "unknown"))),
        ("Last cycle", _cycle_text(report)),
        ("Poll interval", f"{esc(report.get('poll_interval'))}s"),
        ("Version", esc(report.get("version"))),
        ("Running since", date_token(started_at)),
    ]
    blocks = [section(verdict), *field_sections(facts)]
    text = " · ".join([_plain(verdict), *(f"{n}: {_plain(v)}" for n, v in facts[:-1])])
    if failing:
        lines = [
            f"• <#{esc(f.channel)}>: `{esc(f.error)}`"
            + (f" since {esc(f.since)}" if f.since else "")
            for f in failing[:20]
        ]
        head = f":warning: Deliveries failing: the bot cannot post to {len(failing)} channel(s)"
        blocks.append(section(head + "\n" + "\n".join(lines)))
        text += f" · {_plain(head)}"
    return _message(text, blocks)


# --- subscriptions ---------------------------------------------------------------------------


def _filters(subscription: Subscription) -> str:
    parts = []
    if subscription.statuses:
        parts.append("status " + ", ".join(esc(s) for s in subscription.statuses))
    if subscription.names:
        parts.append("name " + ", ".join(esc(n) for n in subscription.names))
    return "; ".join(parts) or "every task"


def _target(instance: str, names: Mapping[str, str]) -> str:
    if instance == "*":
        return "*every instance*"
    return f"*{esc(names.get(instance, instance))}*"


def subscribed(subscription: Subscription, names: Mapping[str, str]) -> Message:
    """The confirmation of ``subscribe``."""
    return notice(
        f":bell: This channel now gets alerts for {_target(subscription.instance, names)} "
        f"({_filters(subscription)})."
    )


def subscription_announcement(
    subscription: Subscription, names: Mapping[str, str], *, alert_channel: str | None
) -> Message:
    """The visible message ``subscribe`` posts in the channel: who subscribed it to what."""
    line = (
        f":bell: <@{esc(subscription.created_by or 'someone')}> subscribed this channel to DCS "
        f"task alerts for {_target(subscription.instance, names)} ({_filters(subscription)})."
    )
    blocks = [section(line)]
    if alert_channel and alert_channel != subscription.channel:
        blocks.append(context(f"Every alert also goes to <#{esc(alert_channel)}>. {ROUTING_RULE}"))
    return _message(_plain(line), blocks)


#: Why ``subscribe`` was refused and how to fix it, by Slack's error (or ``direct_message``).
_SUBSCRIBE_FIXES = {
    "direct_message": (
        "A direct message cannot receive alerts. Type the command in the channel that should "
        "get them, after inviting the bot there."
    ),
    "not_in_channel": (
        "The bot is not a member of this channel, so it cannot post alerts here. Invite it "
        "first (`/invite @` and the app's name), then subscribe again."
    ),
    "channel_not_found": (
        "The bot cannot see this channel (a private channel or conversation it was never added "
        "to). Add the app to the channel (channel details → Integrations), then subscribe again."
    ),
    "is_archived": "This channel is archived: it cannot receive alerts.",
}


def subscribe_refused(reason: str) -> Message:
    """``subscribe`` where the bot cannot post: why, how to fix it, and that nothing changed."""
    fix = _SUBSCRIBE_FIXES.get(
        reason,
        f"Slack did not let the bot post its confirmation here ({esc(reason)}); try again later.",
    )
    return notice(f":no_entry: Not subscribed. {fix} Nothing was stored.")


def subscription_not_saved() -> Message:
    """What replaces the channel's confirmation when the subscription could not be stored."""
    return notice(":warning: That subscription could not be saved; alerts are not routed here.")


def unsubscribed(instance: str, names: Mapping[str, str], *, removed: bool) -> Message:
    """The answer to ``unsubscribe``."""
    if removed:
        return notice(
            f":no_bell: This channel no longer gets alerts for {_target(instance, names)}."
        )
    return notice(
        f"This channel had no subscription for {_target(instance, names)}; "
        "see `/dcs-tasks subscriptions`."
    )


def subscription_list(
    subscriptions: Sequence[Subscription],
    names: Mapping[str, str],
    *,
    channel: str,
    alert_channel: str | None,
) -> Message:
    """``subscriptions``: what the current channel receives, and where every alert goes."""
    lines = [
        f"• {_target(s.instance, names)}: {_filters(s)}"
        + (f" (by <@{esc(s.created_by)}>)" if s.created_by else "")
        for s in subscriptions
    ]
    if lines:
        head = f":bell: This channel gets alerts for {len(lines)} subscription(s):"
    else:
        head = "This channel has no subscriptions. Add one with `/dcs-tasks subscribe INSTANCE|*`."
    blocks = [section(head)]
    for start in range(0, min(len(lines), 40 * 20), 20):
        blocks.append(section("\n".join(lines[start : start + 20])))
    if alert_channel:
        where = "this channel" if alert_channel == channel else f"<#{esc(alert_channel)}>"
        blocks.append(context(f"Every alert also goes to {where} (DCS_ALERT_CHANNEL)."))
    return _message("\n".join([_plain(head), *map(_plain, lines[:20])]), blocks)
