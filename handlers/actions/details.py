"""The alert's "Details" button: every detail of the task, shown only to the one who clicked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, Respond

from bot.slack import render
from handlers.access import query_refusal
from handlers.actions.click import read_click
from handlers.actions.refresh import NOT_OURS
from handlers.commands import replies
from handlers.deps import Deps
from handlers.offload import BUSY

logger = logging.getLogger(__name__)


def make_task_details(deps: Deps) -> Callable[..., None]:
    """The Bolt listener of the ``task_details`` button, bound to ``deps``."""

    def task_details(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        if not deps.offload.submit(lambda: answer(body, respond)):
            replies.send_ephemeral(respond, replies.notice(BUSY), replace_original=False)

    def answer(body: dict[str, Any], respond: Respond) -> None:
        try:
            message = details(deps, body)
        except Exception:
            logger.exception("details failed")
            message = replies.unexpected()
        replies.send_ephemeral(respond, message, replace_original=False)

    return task_details


def details(deps: Deps, body: dict[str, Any]) -> render.Message:
    """The ephemeral answer to a click on "Details"."""
    click = read_click(body)
    if click is None:
        return replies.notice(NOT_OURS)
    refusal = query_refusal(deps.settings, user_id=click.user_id, channel_id=click.channel_id)
    if refusal:
        return replies.notice(refusal)
    found = deps.lookup_task(click.task_id, instance_id=click.instance_id)
    name = deps.instance_name(found.task.instance_id) if found.task else None
    return replies.looked_up(found, click.task_id, name)
