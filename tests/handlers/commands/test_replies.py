"""Tests for handlers.commands.replies: wording, escaping and Slack's limits of every reply."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from bot.slack.render import Message
from handlers.commands import replies
from handlers.commands.parse import ListTasks, ParseError, parse
from state.base import InstanceCursor, Subscription

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def within_limits(message: Message) -> None:
    """At most 50 blocks; sections at most 3000 characters; a text fallback of at most 3000."""
    assert message.text
    assert len(message.text) <= 3000
    assert 1 <= len(message.blocks) <= 50
    for block in message.blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000


def task(n: int, *, name: str = "EXTEND", status: str = "SUCCESS") -> Task:
    """A task created ``n`` minutes before NOW."""
    return Task("i-1", f"task-{n:04d}", name, status, created_at=NOW - timedelta(minutes=n))


@pytest.mark.parametrize(
    ("error", "sentence"),
    [
        (
            DcsApiError(400, "DCS.4001", "Invalid offset"),
            "DCS refused the request (DCS.4001: Invalid offset).",
        ),
        (DcsApiError(400, None, None), "DCS refused the request (HTTP 400: no reason given)."),
        (
            DcsAuthError(401, "APIGW.0301", "Incorrect IAM authentication information"),
            "DCS refused the bot's credentials (APIGW.0301: Incorrect IAM authentication "
            "information); ask an admin to check them.",
        ),
        (
            DcsNotFoundError(404, "DCS.4400", "no such instance"),
            "DCS does not know that project or instance (DCS.4400: no such instance).",
        ),
        (
            DcsUnavailableError("DCS is unavailable: HTTP 502", 502),
            "DCS is not answering right now (HTTP 502, after retries); try again in a minute.",
        ),
        (
            DcsUnavailableError("DCS is unavailable: ConnectError"),
            "DCS is not answering right now (no answer, after retries); try again in a minute.",
        ),
        (
            DcsBadResponseError("truncated"),
            "DCS sent an answer the bot cannot read; try again in a minute.",
        ),
        (DcsError("name <x> is ambiguous"), "DCS: name &lt;x&gt; is ambiguous"),
    ],
)
def test_dcs_failures_read_as_one_human_sentence(error: DcsError, sentence: str) -> None:
    """Each DCS failure becomes one short sentence with the DCS error code where there is one."""
    assert replies.dcs_problem(error) == sentence
    assert replies.dcs_error(error).blocks[0]["text"]["text"] == f":warning: {sentence}"


def test_a_long_task_list_is_cut_and_counted() -> None:
    """200 tasks are shown up to the cap, within limits, ending "and N more"."""
    tasks = [task(n) for n in range(200)]
    message = replies.task_list(QueryResult(tasks, 200), ListTasks(limit=0), {"i-1": "cache"})
    within_limits(message)
    assert message.blocks[-1]["elements"][0]["text"] == (
        f"… and {200 - replies.MAX_LISTED} more — narrow it with since:/status:"
    )
    assert "task-0000" in json.dumps(message.blocks)
    assert f"task-{replies.MAX_LISTED:04d}" not in json.dumps(message.blocks)


def test_a_list_under_the_limit_says_nothing_more() -> None:
    """A complete list has no "more" line."""
    message = replies.task_list(QueryResult([task(1)], 1), ListTasks(), {})
    assert "more" not in json.dumps(message.blocks)
    assert message.text.startswith("1 DCS task on all watched instances in the last 24h")


def test_values_from_dcs_are_escaped() -> None:
    """A task name or instance name cannot mention @channel or inject links."""
    evil = Task("i-1", "t<1>", "<!channel>", "FAILED&", created_at=NOW)
    message = replies.task_list(QueryResult([evil], 1), ListTasks(), {"i-1": "<http://x|y>"})
    dumped = json.dumps(message.blocks)
    assert "<!channel>" not in dumped
    assert "<http://x|y>" not in dumped
    assert "&lt;!channel&gt;" in dumped


def test_instance_errors_are_listed_under_the_tasks() -> None:
    """Instances that could not be read are named with the reason."""
    result = QueryResult([], 0, {"i-2": "DCS answered HTTP 403 DCS.4030: forbidden"})
    text = json.dumps(replies.task_list(result, ListTasks(), {"i-2": "cache-b"}).blocks)
    assert "Could not read *cache-b*: DCS answered HTTP 403 DCS.4030: forbidden" in text


def test_many_instances_fit() -> None:
    """A project with 120 instances still gives a reply within limits."""
    instances = [Instance(f"i-{n}", f"cache-{n}", "Redis", "RUNNING") for n in range(120)]
    cursors = {"i-0": InstanceCursor("i-0", "cache-0", True, NOW - timedelta(seconds=30), "boom")}
    message = replies.instance_list(instances, cursors, now=NOW)
    within_limits(message)
    dumped = json.dumps(message.blocks)
    assert "Last poll: 30s ago" in dumped
    assert "boom" in dumped
    assert "and 72 more" in dumped


def test_many_subscriptions_fit() -> None:
    """Hundreds of subscriptions still give a reply within limits."""
    subs = [Subscription("C1", f"i-{n}", ("FAILED",) * 20, ("EXTEND",) * 20) for n in range(900)]
    within_limits(replies.subscription_list(subs, {}, channel="C1", alert_channel="C1"))


@pytest.mark.parametrize(
    ("code", "report", "verdict"),
    [
        (200, {"status": "ok"}, "Healthy"),
        (200, {"status": "starting"}, "Starting: the first poll is still due."),
        (503, {"status": "late"}, "Polls are late."),
        (503, {"status": "state_unavailable"}, "The state store cannot be read."),
    ],
)
def test_bot_status_verdicts(code: int, report: dict[str, Any], verdict: str) -> None:
    """status opens with a verdict matching the health report."""
    message = replies.bot_status(code, {**report, "version": "1.0"}, started_at=NOW)
    assert verdict in message.blocks[0]["text"]["text"]
    within_limits(message)


def test_help_fits() -> None:
    """The help message fits Slack's limits."""
    within_limits(replies.help_message())


@given(st.text(max_size=5000))
def test_usage_errors_fit_for_any_text(text: str) -> None:
    """Whatever was typed, the usage error reply fits Slack's limits."""
    result = parse(text)
    if isinstance(result, ParseError):
        within_limits(replies.usage_error(result))


def test_help_says_subscriptions_add_channels_and_never_divert_alerts() -> None:
    """help says what routing does: the alert channel keeps every alert, subscriptions add."""
    shown = json.dumps(replies.help_message().blocks)
    assert "also send failures of every instance to this channel" in shown
    assert "never takes alerts away from the alert channel" in shown
