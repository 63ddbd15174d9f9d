"""The alert's "Refresh" button: re-read the task from DCS and update the message in place."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.dcs.errors import DcsError
from bot.slack import render
from handlers.access import query_refusal
from handlers.actions.click import read_click
from handlers.commands import replies
from handlers.deps import Deps
from handlers.offload import BUSY

logger = logging.getLogger(__name__)

GONE = (
    ":mag: DCS no longer lists this task (it may have expired there); "
    "the message shows the last state the bot saw."
)
NOT_OURS = "This button is not one the bot understands; it may come from an older version."


def make_task_refresh(deps: Deps) -> Callable[..., None]:
    """The Bolt listener of the ``task_refresh`` button, bound to ``deps``."""

    def task_refresh(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        if not deps.offload.submit(lambda: answer(body, client, respond)):
            replies.send_ephemeral(respond, replies.notice(BUSY), replace_original=False)

    def answer(body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        try:
            message = refresh(deps, body, client, respond)
        except DcsError as exc:
            logger.warning("refresh: DCS failed: %s", exc)
            message = replies.dcs_error(exc)
        except SlackApiError as exc:
            logger.warning("refresh: chat.update failed: %s", exc.response.get("error"))
            message = replies.notice(
                f":warning: Slack did not let the bot update that message "
                f"({replies.esc(exc.response.get('error'))})."
            )
        except Exception:
            logger.exception("refresh failed")
            message = replies.unexpected()
        if message is not None:
            replies.send_ephemeral(respond, message, replace_original=False)

    return task_refresh


def refresh(
    deps: Deps, body: dict[str, Any], client: WebClient, respond: Respond
) -> render.Message | None:
    """Update the clicked alert from DCS; returns an ephemeral answer when there is one."""
    click = read_click(body)
    if click is None:
        return replies.notice(NOT_OURS)
    refusal = query_refusal(deps.settings, user_id=click.user_id, channel_id=click.channel_id)
    if refusal:
        return replies.notice(refusal)
    record = deps.store.find_task(click.task_id)
    task = deps.fetch_task(
        click.instance_id, click.task_id, created_at=record.created_at if record else None
    )
    if task is None:
        return replies.notice(GONE)
    alert = render.task_alert(task, deps.instance_name(task.instance_id), now=deps.clock())
    if click.message_ts is None:  # an ephemeral message cannot be edited with chat.update
        replies.send_ephemeral(respond, alert, replace_original=True)
    else:
        client.chat_update(
            channel=click.channel_id, ts=click.message_ts, text=alert.text, blocks=alert.blocks
        )
    return None
