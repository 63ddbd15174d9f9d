"""Mutes in the poll cycle, over loopback (simulator, fake Slack, SQLite), on an injected clock:
held alerts, the summary when a mute expires or is ended, and what happens after."""

from __future__ import annotations

from datetime import timedelta

from state.base import Mute, Subscription
from tests.bot.pipeline.conftest import PROD, STAGE, ClockedBot
from tests.conftest import ALERTS


def mute(bot: ClockedBot, instance: str = "*", hours: float = 1, **kw: object) -> Mute:
    """Store a mute from now, as ``/dcs-tasks mute`` does."""
    now = bot.clock()
    fields: dict[str, object] = {
        "reason": "planned resize",
        "created_by": "U0BOB",
        "channel": "C0OPS",
    }
    fields.update(kw)
    return bot.parts.store.add_mute(
        Mute(0, instance, now, now + timedelta(hours=hours), **fields)  # type: ignore[arg-type]
    )


def test_alerts_under_a_mute_are_held_and_summarized_once_when_it_expires(
    clocked: ClockedBot,
) -> None:
    """While muted nothing is posted; an hour later the alert channel gets one summary with
    the count by status, who muted and why; later cycles add nothing."""
    m = mute(clocked)
    task = clocked.sim.add_task(PROD, "EXTEND", "EXECUTING")
    clocked.cycle()
    clocked.clock.advance(minutes=5)
    clocked.sim.set_status(task, "SUCCESS")
    clocked.cycle()
    assert clocked.slack_calls() == []
    assert [a.status for a in clocked.parts.store.muted_alerts(m.id)] == ["SUCCESS"]

    clocked.clock.advance(minutes=56)
    clocked.cycle()
    [summary] = clocked.posts()
    assert summary["channel"] == ALERTS
    assert "expired" in summary["text"]
    assert "held back 1 alert (1 SUCCESS)" in summary["text"]
    assert "<@U0BOB>" in clocked.sent()
    assert "planned resize" in clocked.sent()
    clocked.clock.advance(minutes=5)
    clocked.cycle()
    assert len(clocked.slack_calls()) == 1


def test_unmute_ends_it_at_once_and_the_summary_names_who(clocked: ClockedBot) -> None:
    """end_mute (``unmute``) ends a mute before its time: the next cycle posts the summary,
    which says who ended it; alerts flow again."""
    m = mute(clocked, hours=4)
    clocked.sim.add_task(PROD, "BindEip", "EXECUTING")
    clocked.cycle()
    clocked.clock.advance(minutes=10)
    assert clocked.parts.store.end_mute(m.id, clocked.clock(), "U0CAROL") is not None

    clocked.sim.add_task(PROD, "AddReplica", "EXECUTING")
    clocked.cycle()
    summary, alert = clocked.posts()
    assert "ended by <@U0CAROL>" in str(summary["blocks"])
    assert "held back 1 alert (1 EXECUTING)" in summary["text"]
    assert "Adding replicas" in alert["text"]


def test_a_failure_during_a_mute_is_named_in_the_summary(clocked: ClockedBot) -> None:
    """Every FAILED task is named with its instance; the others are counted by status."""
    mute(clocked)
    ok = clocked.sim.add_task(PROD, "EXTEND", "EXECUTING")
    bad = clocked.sim.add_task(STAGE, "masterStandbySwapJob", "EXECUTING")
    clocked.cycle()
    clocked.sim.set_status(ok, "SUCCESS")
    clocked.sim.set_status(bad, "FAILED")
    clocked.cycle()
    assert clocked.slack_calls() == []

    clocked.clock.advance(hours=2)
    clocked.cycle()
    [summary] = clocked.posts()
    assert "held back 2 alerts" in summary["text"]
    assert "1 FAILED" in summary["text"]
    assert "1 SUCCESS" in summary["text"]
    assert "FAILED: Master/standby switchover on cache-stage" in summary["text"]
    assert bad in str(summary["blocks"])
    assert ok not in str(summary["blocks"])


def test_a_muted_task_that_changes_after_the_mute_is_posted_as_a_new_message(
    clocked: ClockedBot,
) -> None:
    """A task first seen under a mute has no message: its change after the mute ends starts
    one (a new post, then the transition in its thread)."""
    mute(clocked, hours=0.25)
    task = clocked.sim.add_task(PROD, "EXTEND", "EXECUTING")
    clocked.cycle()
    clocked.clock.advance(minutes=16)
    clocked.cycle()  # the summary
    clocked.sim.set_status(task, "SUCCESS")
    clocked.cycle()

    _summary, alert = clocked.posts()
    assert "Modifying specifications SUCCESS" in alert["text"]
    assert clocked.slack_calls("chat.update") == []
    [reply] = clocked.replies()
    assert "EXECUTING → SUCCESS" in reply["text"]
    assert reply["thread_ts"] == clocked.slack.messages(ALERTS)[1].ts


def test_a_mute_covers_only_its_instance_and_names(clocked: ClockedBot) -> None:
    """A mute of cache-prod's EXTEND holds back neither cache-stage nor another kind."""
    mute(clocked, PROD, names=("extend",))
    clocked.sim.add_task(PROD, "EXTEND", "EXECUTING")
    clocked.sim.add_task(PROD, "BindEip", "EXECUTING")
    clocked.sim.add_task(STAGE, "EXTEND", "EXECUTING")
    clocked.cycle()
    texts = sorted(p["text"] for p in clocked.posts())
    assert len(texts) == 2
    assert "cache-stage" in texts[1]
    assert "Enabling public access" in texts[0]


def test_every_channel_an_alert_would_reach_gets_its_summary(clocked: ClockedBot) -> None:
    """Held in each channel the alert routes to: each of them gets one summary; a mute that
    held nothing tells only the channel it was set in."""
    clocked.parts.store.add_subscription(Subscription("C0TEAM", "*"))
    clocked.parts.store.add_subscription(Subscription("C0RESIZE", PROD, names=("EXTEND",)))
    m = mute(clocked, hours=0.25)
    mute(clocked, STAGE, hours=0.25, channel="C0QUIET")
    clocked.sim.add_task(PROD, "EXTEND", "EXECUTING")
    clocked.cycle()
    held = {a.channel for a in clocked.parts.store.muted_alerts(m.id)}
    assert {"C0TEAM", "C0RESIZE"} <= held

    clocked.clock.advance(minutes=20)
    clocked.cycle()
    channels = [p["channel"] for p in clocked.posts()]
    assert sorted(channels) == sorted([*held, "C0QUIET"])
    [quiet] = clocked.posts("C0QUIET")
    assert "no alert was held back" in quiet["text"]
