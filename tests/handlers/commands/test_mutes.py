"""``mute``, ``unmute``, ``mutes`` and ``report`` over real HTTP: signed slash commands to the
Bolt app, replies read back from the fake Slack's response_url, a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from state.base import CycleCommit, TaskRecord
from tests.handlers.conftest import PROD_ID, STAGE_ID, USER, SlackStack, reply_text


def test_mute_is_announced_in_the_channel_and_stored(stack: SlackStack) -> None:
    """``mute`` stores a mute of the instance's ID for the given time and tells the channel who
    muted what, until when, and why."""
    before = datetime.now(UTC)
    reply = stack.command("mute cache-prod name:EXTEND for:2h resize to 8 GB")
    assert reply["response_type"] == "in_channel"
    text = reply_text(reply)
    assert f"<@{USER}> muted *cache-prod* (EXTEND)" in text
    assert "resize to 8 GB" in text
    assert "/dcs-tasks unmute 1" in text
    [stored] = stack.store.mutes()
    assert (stored.instance, stored.names, stored.reason) == (
        PROD_ID,
        ("EXTEND",),
        "resize to 8 GB",
    )
    assert timedelta(hours=2) <= stored.ends_at - before <= timedelta(hours=2, minutes=1)


def test_mutes_status_and_instances_show_the_mutes_in_force(stack: SlackStack) -> None:
    """Every view of the bot's state names the active mutes; ``mutes`` is ephemeral."""
    stack.command("mute * for:30m deploy")
    listed = stack.command("mutes")
    assert listed["response_type"] == "ephemeral"
    assert "Mute 1: *every instance*" in reply_text(listed)
    assert "deploy" in reply_text(stack.command("status"))
    assert "Muted now" in reply_text(stack.command("instances"))


def test_unmute_by_id_instance_or_star(stack: SlackStack) -> None:
    """``unmute`` ends one mute by ID, those of an instance, or all; each is announced;
    unmuting what is not muted says so."""
    stack.command("mute cache-prod")
    stack.command("mute cache-stage")
    stack.command("mute *")
    one = stack.command("unmute 1")
    assert one["response_type"] == "in_channel"
    assert f"<@{USER}> ended mute 1 of *cache-prod*" in reply_text(one)
    assert "ended mute 2 of *cache-stage*" in reply_text(stack.command("unmute cache-stage"))
    assert "ended mute 3 of *every instance*" in reply_text(stack.command("unmute *"))
    assert [m.ended_by for m in stack.store.mutes()] == [USER, USER, USER]
    again = stack.command("unmute *")
    assert again["response_type"] == "ephemeral"
    assert "Nothing matching `*` is muted" in reply_text(again)


def test_mute_of_an_unwatched_instance_stores_nothing(stack: SlackStack) -> None:
    """A name that is not watched gets the watched ones, and no mute."""
    reply = stack.command("mute cache-nope for:1h")
    assert "No watched instance is called `cache-nope`" in reply_text(reply)
    assert stack.store.mutes() == []


def test_only_admins_may_mute_and_unmute(stack: SlackStack) -> None:
    """With DCS_ADMIN_USERS set, others are refused and nothing changes; ``mutes`` stays open."""
    stack.configure(DCS_ADMIN_USERS="U0ADMIN")
    refused = stack.command("mute * for:1h", user="U0OTHER")
    assert "Only <@U0ADMIN> may change subscriptions and mutes." in reply_text(refused)
    assert stack.store.mutes() == []
    stack.command("mute * for:1h", user="U0ADMIN")
    assert "may change" in reply_text(stack.command("unmute *", user="U0OTHER"))
    assert stack.store.mutes()[0].ended_by is None
    assert "Mute 1" in reply_text(stack.command("mutes", user="U0OTHER"))


def _finished(task_id: str, instance: str, name: str, status: str, minutes: int) -> TaskRecord:
    start = datetime.now(UTC) - timedelta(hours=3)
    end = start + timedelta(minutes=minutes)
    return TaskRecord(instance, task_id, name, status, start, end, start, end)


def test_report_per_name_with_durations_and_most_failures(stack: SlackStack) -> None:
    """``report`` counts per task name with p50/p95, and names the instances failing most;
    ``report INSTANCE`` narrows it; an unknown instance is refused."""
    stack.store.commit_cycle(
        CycleCommit(
            tasks=[
                _finished("a", PROD_ID, "EXTEND", "SUCCESS", 4),
                _finished("b", PROD_ID, "EXTEND", "SUCCESS", 6),
                _finished("c", STAGE_ID, "EXTEND", "FAILED", 9),
                _finished("d", STAGE_ID, "BindEip", "FAILED", 1),
            ]
        )
    )
    reply = stack.command("report")
    assert reply["response_type"] == "ephemeral"
    text = reply_text(reply)
    assert "in the last 7d on all watched instances: 4 tasks, 2 failed" in text
    assert "*Modifying specifications* (EXTEND)" in text
    assert "3 ran · 2 :white_check_mark: · 1 :x: · p50 6m · p95 9m" in text
    assert "Most failures: *cache-stage* 2" in text
    one = reply_text(stack.command("report cache-prod since:24h"))
    assert "in the last 24h on *cache-prod*: 2 tasks, 0 failed" in one
    assert "No task failed." in one
    assert "No watched instance" in reply_text(stack.command("report cache-nope"))
