"""Tests for handlers.actions.refresh: the Refresh button re-reads the task from DCS and edits the
alert in place (chat.update, same ts), over real signed HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.slack.render import task_alert
from bot.testing.fake_slack import SlackCall
from tests.handlers.conftest import ATTEMPTS, CHANNEL, PROD_ID, SlackStack, reply_text
from tests.waiting import wait_until

PASSWORD = "Sup3r-S3cret-pw!"


def post_alert(stack: SlackStack, task_id: str) -> tuple[str, str]:
    """Post the task's alert as the poller would; return (ts, the buttons' value)."""
    task = next(t for t in stack.dcs.list_tasks(PROD_ID) if t.id == task_id)
    alert = task_alert(task, "cache-prod", now=datetime.now(UTC))
    response = stack.web.chat_postMessage(channel=CHANNEL, text=alert.text, blocks=alert.blocks)
    actions = next(b for b in alert.blocks if b["type"] == "actions")
    return str(response["ts"]), str(actions["elements"][0]["value"])


def wait_for_update(stack: SlackStack, wait: float = 15.0) -> SlackCall:
    """The first chat.update the fake Slack received (waits, bounded)."""
    return wait_until(lambda: stack.slack.calls_to("chat.update"), "a chat.update", wait)[0]


def value_of(instance_id: str, task_id: str) -> str:
    """A button value as render.task_alert writes it."""
    return json.dumps({"instance_id": instance_id, "task_id": task_id})


def test_refresh_updates_the_alert_in_place(stack: SlackStack) -> None:
    """Refresh re-renders the alert from DCS's current state with chat.update on the same ts."""
    task_id = stack.sim.add_task(PROD_ID, "EXTEND", "EXECUTING", params=PASSWORD)
    ts, value = post_alert(stack, task_id)
    stack.sim.set_status(task_id, "SUCCESS")
    url = stack.click("task_refresh", value, message_ts=ts)
    update = wait_for_update(stack)
    assert update.params["channel"] == CHANNEL
    assert update.params["ts"] == ts
    message = stack.slack.messages(CHANNEL)[0]
    assert message.ts == ts
    assert message.edited
    assert "SUCCESS" in (message.text or "")
    assert "EXECUTING" not in (message.text or "")
    assert PASSWORD not in json.dumps(update.params)
    assert stack.slack.responses_to(url) == []  # nothing ephemeral to say


def test_refresh_of_a_task_gone_from_dcs_says_so(stack: SlackStack) -> None:
    """A task DCS no longer lists is reported ephemerally and the message is left alone."""
    url = stack.click("task_refresh", value_of(PROD_ID, "0badc0ffee"), message_ts="1.000100")
    reply = stack.reply(url)
    assert reply["response_type"] == "ephemeral"
    assert reply["replace_original"] is False
    assert "DCS no longer lists this task" in reply["text"]
    assert stack.slack.calls_to("chat.update") == []


def test_refresh_when_dcs_fails_answers_with_a_sentence(stack: SlackStack) -> None:
    """A DCS failure is a short ephemeral sentence, not an error page."""
    task_id = stack.sim.add_task(PROD_ID, "EXTEND", "EXECUTING")
    ts, value = post_alert(stack, task_id)
    stack.sim.inject("503", count=ATTEMPTS, path_contains="/tasks")
    reply = stack.reply(stack.click("task_refresh", value, message_ts=ts))
    assert "DCS is not answering right now (HTTP 503" in reply["text"]
    assert stack.slack.calls_to("chat.update") == []


def test_refresh_obeys_the_access_rules(stack: SlackStack) -> None:
    """A user outside DCS_ALLOWED_USERS gets the refusal and the message is not touched."""
    task_id = stack.sim.add_task(PROD_ID, "EXTEND", "EXECUTING")
    ts, value = post_alert(stack, task_id)
    stack.configure(DCS_ALLOWED_USERS="U0BOB")
    reply = stack.reply(stack.click("task_refresh", value, message_ts=ts))
    assert "Only <@U0BOB> may use /dcs-tasks." in reply_text(reply)
    assert stack.slack.calls_to("chat.update") == []


def test_refresh_on_an_ephemeral_message_replaces_it(stack: SlackStack) -> None:
    """On an ephemeral message (no chat.update possible) the refreshed alert replaces it."""
    task_id = stack.sim.add_task(PROD_ID, "BindEip", "SUCCESS")
    url = stack.click(
        "task_refresh", value_of(PROD_ID, task_id), message_ts="1.000100", ephemeral=True
    )
    reply: dict[str, Any] = stack.reply(url)
    assert reply["replace_original"] is True
    assert "Enabling public access" in reply["text"]
    assert stack.slack.calls_to("chat.update") == []


def test_a_button_value_that_is_not_ours_is_answered(stack: SlackStack) -> None:
    """A malformed button value gets a short answer, not a crash."""
    reply = stack.reply(stack.click("task_refresh", "not json", message_ts="1.000100"))
    assert "not one the bot understands" in reply["text"]


def test_a_forged_instance_id_never_reaches_dcs(stack: SlackStack) -> None:
    """A signed click whose instance_id climbs out of the path is refused; DCS sees nothing."""
    for action in ("task_refresh", "task_details"):
        forged = value_of("../../../v2/other-project/instances/x", "t-1")
        reply = stack.reply(stack.click(action, forged, message_ts="1.000100"))
        assert "not one the bot understands" in reply["text"]
    assert stack.sim.requests == []
    assert stack.slack.calls_to("chat.update") == []
