"""Tests for handlers.actions.details: the Details button answers ephemerally with every detail
of the task, over real signed HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from state.base import CycleCommit, TaskRecord
from tests.handlers.conftest import ATTEMPTS, PROD_ID, SlackStack, reply_text

PASSWORD = "Sup3r-S3cret-pw!"


def value_of(instance_id: str, task_id: str) -> str:
    """A button value as render.task_alert writes it."""
    return json.dumps({"instance_id": instance_id, "task_id": task_id})


def test_details_answers_ephemerally_with_every_detail(stack: SlackStack) -> None:
    """Details shows the task's details to the clicker only, without touching the alert."""
    task_id = stack.sim.add_task(
        PROD_ID,
        "EXTEND",
        "SUCCESS",
        details={"old_resource_spec_code": "redis.ha.xu1.tiny.r2.128", "new_port": 6380},
        params=PASSWORD,
    )
    reply = stack.reply(stack.click("task_details", value_of(PROD_ID, task_id), message_ts="1.2"))
    assert reply["response_type"] == "ephemeral"
    assert reply["replace_original"] is False
    shown = reply_text(reply)
    assert task_id in shown
    assert "redis.ha.xu1.tiny.r2.128" in shown
    assert "6380" in shown
    assert "cache-prod" in shown
    assert PASSWORD not in shown
    assert stack.slack.calls_to("chat.update") == []


def test_details_of_a_task_dcs_forgot_shows_the_last_record(stack: SlackStack) -> None:
    """A task DCS no longer lists is shown as the bot last saw it, saying so."""
    now = datetime.now(UTC)
    record = TaskRecord(
        PROD_ID,
        "c0ffee00",
        "AddReplica",
        "FAILED",
        now,
        now,
        now,
        task={"id": "c0ffee00", "name": "AddReplica", "status": "FAILED"},
    )
    stack.store.commit_cycle(CycleCommit(tasks=[record]))
    shown = reply_text(
        stack.reply(stack.click("task_details", value_of(PROD_ID, "c0ffee00"), message_ts="1.2"))
    )
    assert "Adding replicas" in shown
    assert "As the bot last saw it" in shown


def test_details_of_an_unknown_task_says_it_was_not_found(stack: SlackStack) -> None:
    """A task neither DCS nor the store knows is answered with "No task"."""
    reply = stack.reply(stack.click("task_details", value_of(PROD_ID, "nope"), message_ts="1.2"))
    assert "No task `nope`" in reply_text(reply)


def test_details_when_dcs_fails_gives_the_reason(stack: SlackStack) -> None:
    """A DCS failure with no record to fall back on is a short sentence."""
    stack.sim.inject("500", count=ATTEMPTS, path_contains="/tasks")
    reply = stack.reply(stack.click("task_details", value_of(PROD_ID, "abc"), message_ts="1.2"))
    assert "DCS is not answering right now (HTTP 500" in reply["text"]


def test_details_obeys_the_channel_rule(stack: SlackStack) -> None:
    """A click in a channel outside DCS_ALLOWED_CHANNELS is refused, saying how to enable it."""
    stack.configure(DCS_ALLOWED_CHANNELS="C0OTHER")
    reply = stack.reply(stack.click("task_details", value_of(PROD_ID, "abc"), message_ts="1.2"))
    assert "not enabled in this channel" in reply["text"]
    assert not [r for r in stack.sim.requests if r.path.endswith("/tasks")]
