"""The ``/dcs-tasks`` listener: ack at once, then check access, parse, and answer ephemerally."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.dcs.errors import DcsError
from bot.dcs.query import TaskQuery, run_query
from bot.pipeline.health import health_report
from bot.slack import render
from bot.slack.channels import clear_failing, failing_channels
from bot.slack.outcome import classify
from handlers.access import admin_refusal, query_refusal
from handlers.commands import mute_replies, mutes, replies
from handlers.commands.parse import (
    BotStatus,
    Command,
    Help,
    ListInstances,
    ListMutes,
    ListSubscriptions,
    ListTasks,
    MuteAlerts,
    ParseError,
    Report,
    ShowTask,
    Subscribe,
    Unmute,
    Unsubscribe,
    parse,
)
from handlers.deps import Deps
from handlers.offload import BUSY
from state.base import StateError, Subscription

logger = logging.getLogger(__name__)


def make_dcs_tasks(deps: Deps) -> Callable[..., None]:
    """The Bolt listener of ``/dcs-tasks``, bound to ``deps``: ``help`` and usage errors are
    answered at once, everything that may wait on DCS or the store in ``deps.offload``."""

    def dcs_tasks(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        text = _unescape(str(command.get("text") or ""))
        user_id = str(command.get("user_id") or "")
        channel_id = str(command.get("channel_id") or "")

        def reply() -> None:
            message = answer(deps, text, user_id=user_id, channel_id=channel_id, slack=client)
            replies.send_ephemeral(respond, message)

        if isinstance(parse(text), Help | ParseError):
            reply()
        elif not deps.offload.submit(reply):
            replies.send_ephemeral(respond, replies.notice(BUSY))

    return dcs_tasks


def _unescape(text: str) -> str:
    """Slack sends ``&``, ``<`` and ``>`` of the typed text as entities."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def answer(
    deps: Deps, text: str, *, user_id: str, channel_id: str, slack: WebClient | None = None
) -> render.Message:
    """The reply to ``/dcs-tasks text`` from ``user_id`` in ``channel_id``; never raises.

    ``slack`` posts the visible confirmation of ``subscribe`` (without it, nothing is stored).
    """
    refusal = query_refusal(deps.settings, user_id=user_id, channel_id=channel_id)
    if refusal:
        return replies.notice(refusal)
    command = parse(text)
    if isinstance(command, ParseError):
        return replies.usage_error(command)
    try:
        return _run(deps, command, user_id=user_id, channel_id=channel_id, slack=slack)
    except DcsError as exc:
        logger.warning("/dcs-tasks %s: DCS failed: %s", type(command).__name__, exc)
        return replies.dcs_error(exc)
    except StateError as exc:
        logger.warning("/dcs-tasks %s: state store failed: %s", type(command).__name__, exc)
        return replies.notice(
            ":warning: The bot cannot read its state store right now; try again in a minute."
        )
    except Exception:
        logger.exception("/dcs-tasks %s failed", type(command).__name__)
        return replies.unexpected()


def _run(
    deps: Deps, command: Command, *, user_id: str, channel_id: str, slack: WebClient | None
) -> render.Message:
    match command:
        case Help():
            return replies.help_message()
        case ListTasks():
            return _list(deps, command)
        case ShowTask(task_id=task_id):
            return _show(deps, task_id)
        case ListInstances():
            return _instances(deps)
        case BotStatus():
            return _status(deps)
        case ListSubscriptions():
            return replies.subscription_list(
                deps.store.subscriptions(channel_id),
                _names(deps),
                channel=channel_id,
                alert_channel=deps.settings.alert_channel,
            )
        case Subscribe() | Unsubscribe():
            refusal = admin_refusal(deps.settings, user_id=user_id)
            if refusal:
                return replies.notice(refusal)
            if isinstance(command, Subscribe):
                return _subscribe(
                    deps, command, user_id=user_id, channel_id=channel_id, slack=slack
                )
            return _unsubscribe(deps, command, channel_id=channel_id)
        case ListMutes():
            return mutes.list_mutes(deps)
        case Report():
            return mutes.report(deps, command)
        case MuteAlerts() | Unmute():
            refusal = admin_refusal(deps.settings, user_id=user_id)
            if refusal:
                return replies.notice(refusal)
            if isinstance(command, MuteAlerts):
                return mutes.mute(deps, command, user_id=user_id, channel_id=channel_id)
            return mutes.unmute(deps, command, user_id=user_id)


def _names(deps: Deps) -> dict[str, str]:
    try:
        return {i.instance_id: i.label for i in deps.watched()}
    except DcsError:
        return {}


def _list(deps: Deps, command: ListTasks) -> render.Message:
    watched = deps.watched()
    targets = watched
    if command.instance is not None:
        instance = deps.find_instance(command.instance)
        if instance is None:
            return replies.unknown_instance(command.instance, watched)
        targets = [instance]
        command = replace(command, instance=instance.instance_id)
    query = TaskQuery(
        since=command.since, status=command.status, name=command.name, limit=command.limit
    )
    result = run_query(deps.dcs, targets, query, now=deps.clock())
    return replies.task_list(result, command, {i.instance_id: i.label for i in watched})


def _show(deps: Deps, task_id: str) -> render.Message:
    found = deps.lookup_task(task_id)
    name = deps.instance_name(found.task.instance_id) if found.task else None
    return replies.looked_up(found, task_id, name)


def _instances(deps: Deps) -> render.Message:
    watched = deps.watched()
    try:
        live = {i.instance_id: i for i in deps.dcs.list_instances()}
        failing = deps.dcs.failures
        note = "; ".join(f"Project {k} could not be read: {v}" for k, v in failing.items()) or None
    except DcsError as exc:
        live, note = {}, f"Statuses as last resolved: {replies.dcs_problem(exc)}"
    instances = [live.get(i.instance_id, i) for i in watched]
    message = replies.instance_list(instances, deps.store.cursors(), now=deps.clock())
    message = replies.with_note(message, note) if note else message
    return _with_mutes(deps, message)


def _with_mutes(deps: Deps, message: render.Message) -> render.Message:
    """``message`` with the mutes in force listed at its end."""
    active = mutes.active_mutes(deps)
    if not active:
        return message
    lines = mute_replies.mute_lines(active[:10], mutes.names_of(deps))
    more = f"\n… and {len(active) - 10} more: `/dcs-tasks mutes`" if len(active) > 10 else ""
    return replies.with_note(message, ":mute: Muted now:\n" + "\n".join(lines) + more)


def _status(deps: Deps) -> render.Message:
    code, report = health_report(
        deps.store,
        poll_interval=deps.settings.poll_interval,
        started_at=deps.started_at,
        now=deps.clock(),
        version=deps.version,
    )
    status = replies.bot_status(
        code, report, started_at=deps.started_at, failing=failing_channels(deps.store)
    )
    return _with_mutes(deps, status)


def _subscribe(
    deps: Deps, command: Subscribe, *, user_id: str, channel_id: str, slack: WebClient | None
) -> render.Message:
    """Store a subscription only once the bot has posted its confirmation in the channel: a
    channel the bot cannot post to (a DM, not invited, archived) is refused and nothing stored."""
    if slack is None:
        return replies.subscribe_refused("no Slack client")
    if channel_id.startswith("D"):
        return replies.subscribe_refused("direct_message")
    target = command.instance
    place = deps.find_place(target) if target != "*" else None
    if place is not None:
        target = place  # every instance of a region or project (several projects watched)
    elif target != "*":
        instance = deps.find_instance(target)
        if instance is None:
            return replies.unknown_instance(target, deps.watched())
        target = instance.instance_id  # stable when the instance is renamed
    subscription = Subscription(
        channel=channel_id,
        instance=target,
        statuses=command.statuses,
        names=command.names,
        created_by=user_id,
    )
    names = _names(deps)
    confirmation = replies.subscription_announcement(
        subscription, names, alert_channel=deps.settings.alert_channel
    )
    try:
        posted = slack.chat_postMessage(
            channel=channel_id, text=confirmation.text, blocks=confirmation.blocks
        )
    except (SlackApiError, OSError, http.client.HTTPException) as exc:
        outcome = classify(exc, None)
        logger.warning("subscribe in %s refused: Slack said %s", channel_id, outcome.reason)
        return replies.subscribe_refused(outcome.reason)
    try:
        deps.store.add_subscription(subscription)
    except StateError:
        _withdraw(slack, channel_id, posted.get("ts"))
        raise
    clear_failing(deps.store, channel_id)
    return replies.subscribed(subscription, names)


def _withdraw(slack: WebClient, channel_id: str, ts: object) -> None:
    """The subscription could not be stored: say so in place of the confirmation."""
    if not isinstance(ts, str):
        return
    message = replies.subscription_not_saved()
    try:
        slack.chat_update(channel=channel_id, ts=ts, text=message.text, blocks=message.blocks)
    except SlackApiError as exc:
        logger.warning(
            "could not withdraw a subscription confirmation: %s", exc.response.get("error")
        )


def _unsubscribe(deps: Deps, command: Unsubscribe, *, channel_id: str) -> render.Message:
    target = command.instance
    wanted = {target.casefold()}
    instance = deps.find_instance(target) if target != "*" else None
    if instance is not None:
        target = instance.instance_id
        wanted |= {instance.instance_id.casefold(), instance.name.casefold()}
    removed = False
    for subscription in deps.store.subscriptions(channel_id):
        if subscription.instance.casefold() in wanted:
            removed |= deps.store.remove_subscription(channel_id, subscription.instance)
    if channel_id != deps.settings.alert_channel and not deps.store.subscriptions(channel_id):
        clear_failing(deps.store, channel_id)  # nothing routes there now
    return replies.unsubscribed(target, _names(deps), removed=removed)
