"""Tests for bot.pipeline.poll: the cycle over loopback HTTP (simulator, fake Slack, SQLite)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from bot.pipeline.health import health_report
from bot.pipeline.poll import Poller
from bot.wiring import build
from state.base import CycleCommit, Subscription, TaskRecord
from tests.conftest import ALERTS, DCS_TOKEN, SLACK_TOKEN, Harness

PROD = "11111111-1111-4111-8111-111111111111"


def everything_sent(h: Harness) -> str:
    """All text and blocks Slack received, as one string."""
    return json.dumps([c.params for c in h.slack_calls()], default=str)


def test_first_cycle_records_finished_tasks_silently_and_announces_running_ones(
    harness: Harness,
) -> None:
    """With no state, finished tasks post nothing; a task still running is announced once."""
    harness.sim.add_task(PROD, "EXTEND", "SUCCESS")
    harness.sim.add_task(PROD, "AddWhitelist", "FAILED")
    running = harness.sim.add_task(PROD, "BindEip", "EXECUTING")

    result = harness.cycle()

    posts = harness.slack_calls("chat.postMessage")
    assert result.ok
    assert len(posts) == 1
    assert posts[0].params["channel"] == ALERTS
    assert "Enabling public access" in posts[0].params["text"]
    assert "cache-prod" in posts[0].params["text"]
    assert running in json.dumps(posts[0].params["blocks"], default=str)


def test_a_new_task_posts_one_message_naming_task_status_and_instance(harness: Harness) -> None:
    """After the baseline, a new task gives one chat.postMessage with its label in words."""
    harness.cycle()
    harness.sim.add_task(PROD, "EXTEND", "EXECUTING")

    harness.cycle()

    posts = harness.slack_calls("chat.postMessage")
    assert len(posts) == 1
    text = posts[0].params["text"]
    assert "Modifying specifications" in text
    assert "EXECUTING" in text
    assert "cache-prod" in text


def test_a_status_change_edits_the_same_message_and_replies_in_its_thread(
    harness: Harness,
) -> None:
    """EXECUTING → SUCCESS updates the original ts and adds a thread reply with the transition."""
    harness.cycle()
    task_id = harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    harness.cycle()
    ts = harness.slack.messages(ALERTS)[0].ts

    harness.sim.set_status(task_id, "SUCCESS")
    harness.cycle()

    updates = harness.slack_calls("chat.update")
    assert [u.params["ts"] for u in updates] == [ts]
    assert "SUCCESS" in updates[0].params["text"]
    replies = [c for c in harness.slack_calls("chat.postMessage") if c.params.get("thread_ts")]
    assert len(replies) == 1
    assert replies[0].params["thread_ts"] == ts
    assert "EXECUTING → SUCCESS" in replies[0].params["text"]
    assert not replies[0].params.get("reply_broadcast")


def test_a_failure_is_broadcast_to_the_channel(harness: Harness) -> None:
    """A transition to FAILED replies in the thread with reply_broadcast."""
    harness.cycle()
    task_id = harness.sim.add_task(PROD, "masterStandbySwapJob", "EXECUTING")
    harness.cycle()

    harness.sim.set_status(task_id, "FAILED")
    harness.cycle()

    replies = [c for c in harness.slack_calls("chat.postMessage") if c.params.get("thread_ts")]
    assert len(replies) == 1
    assert replies[0].params.get("reply_broadcast") in (True, "true", "1", 1)
    assert "FAILED" in replies[0].params["text"]


def test_a_quiet_cycle_makes_no_slack_calls(harness: Harness) -> None:
    """When nothing changed, a cycle sends nothing to Slack."""
    harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    harness.cycle()
    before = len(harness.slack_calls())

    result = harness.cycle()

    assert result.ok
    assert result.commit.deliveries == []
    assert len(harness.slack_calls()) == before


def test_an_updated_at_change_alone_is_recorded_not_alerted(harness: Harness) -> None:
    """A task whose updated_at moves but whose status stays is written, not posted."""
    task_id = harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    harness.cycle()
    before = len(harness.slack_calls())

    harness.sim.set_status(task_id, "EXECUTING", updated_at=datetime.now(UTC))
    result = harness.cycle()

    assert len(harness.slack_calls()) == before
    assert [c.reason.value for c in result.changes] == ["touched"]


def test_more_new_tasks_than_the_threshold_become_one_digest(harness: Harness) -> None:
    """Eleven new tasks for one channel (threshold 10) give one digest message."""
    harness.cycle()
    for n in range(11):
        harness.sim.add_task(PROD, "AddWhitelist", "EXECUTING", details={"group_name": f"g{n}"})

    harness.cycle()

    posts = harness.slack_calls("chat.postMessage")
    assert len(posts) == 1
    assert "11" in posts[0].params["text"]


def test_exactly_the_threshold_still_posts_one_message_each(harness: Harness) -> None:
    """Ten new tasks (not more than the threshold) are posted one by one."""
    harness.cycle()
    for _ in range(10):
        harness.sim.add_task(PROD, "AddWhitelist", "EXECUTING")

    harness.cycle()

    assert len(harness.slack_calls("chat.postMessage")) == 10


def test_subscriptions_route_alerts_to_their_channel_once(harness: Harness) -> None:
    """An alert goes to each matching subscriber channel once, and to the alert channel too."""
    store = harness.parts.store
    store.add_subscription(Subscription("C0TEAM", "cache-prod", statuses=("EXECUTING",)))
    store.add_subscription(Subscription("C0TEAM2", "*", names=("BindEip",)))
    store.add_subscription(Subscription("C0TEAM3", PROD))
    harness.cycle()
    harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    harness.sim.add_task(PROD, "BindEip", "SUCCESS")
    harness.sim.add_task("11111111-1111-4111-8111-111111111111", "UpdatePort", "SUCCESS")

    harness.cycle()

    by_channel: dict[str, int] = {}
    for call in harness.slack_calls("chat.postMessage"):
        by_channel[call.params["channel"]] = by_channel.get(call.params["channel"], 0) + 1
    assert by_channel == {ALERTS: 3, "C0TEAM": 1, "C0TEAM2": 1, "C0TEAM3": 3}


def test_the_alert_channel_gets_every_alert_and_subscriptions_add_channels(
    harness: Harness,
) -> None:
    """DCS_ALERT_CHANNEL receives every alert, also those a subscription routes elsewhere."""
    harness.parts.store.add_subscription(Subscription("C0TEAM", "*", names=("BindEip",)))
    harness.cycle()
    harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    harness.sim.add_task(PROD, "BindEip", "EXECUTING")

    harness.cycle()

    channels = sorted(c.params["channel"] for c in harness.slack_calls("chat.postMessage"))
    assert channels == sorted([ALERTS, ALERTS, "C0TEAM"])


def test_a_slack_outage_loses_nothing_and_delivers_in_order_after_recovery(
    harness: Harness,
) -> None:
    """While Slack is down the outbox keeps every alert; afterwards each is sent exactly once."""
    harness.cycle()
    task_id = harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    harness.slack.outage(True)
    harness.cycle()
    harness.sim.set_status(task_id, "SUCCESS")
    harness.cycle()
    assert harness.parts.store.count_pending() == 3
    assert harness.slack.messages(ALERTS) == []

    harness.slack.outage(False)
    _drain_until_empty(harness)

    messages = harness.slack.messages(ALERTS)
    top = [m for m in messages if not m.thread_ts]
    assert len(top) == 1
    assert "SUCCESS" in top[0].text
    assert [m.thread_ts for m in messages if m.thread_ts] == [top[0].ts]
    assert harness.parts.store.count_pending() == 0


def _drain_until_empty(h: Harness) -> None:
    """Drain with the retry time forced due: a fresh deliverer whose clock is far ahead."""
    from bot.slack.deliver import Deliverer

    assert h.parts.slack is not None
    later = datetime.now(UTC) + timedelta(days=1)
    Deliverer(h.parts.slack, h.parts.store, clock=lambda: later, sleep=lambda _: None).drain()


def test_dcs_faults_cause_no_false_alerts(harness: Harness) -> None:
    """An instance whose fetch fails is skipped whole: no alert, no state change, cycle not ok."""
    harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    harness.cycle()
    before = len(harness.slack_calls())
    harness.sim.inject("500", count=100)

    result = harness.cycle()

    assert not result.ok
    assert PROD in result.errors
    assert len(harness.slack_calls()) == before
    harness.sim.inject("500", count=0)


def test_a_crash_between_commit_and_delivery_is_delivered_after_restart(
    harness: Harness,
) -> None:
    """A committed alert whose delivery never ran is sent by the next process."""
    harness.cycle()
    harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    harness.cycle(deliver=False)

    harness.restart()
    harness.cycle()

    assert len(harness.slack_calls("chat.postMessage")) == 1


def test_changes_while_the_bot_was_down_are_alerted_after_restart(harness: Harness) -> None:
    """With state, a restart alerts what changed meanwhile, finished tasks included."""
    task_id = harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    harness.cycle()
    harness.parts.close()
    harness.sim.set_status(task_id, "SUCCESS")
    harness.sim.add_task(PROD, "UpdatePort", "SUCCESS")

    harness.parts = build(harness.settings)
    harness.cycle()

    assert len(harness.slack_calls("chat.update")) == 1
    texts = [c.params["text"] for c in harness.slack_calls("chat.postMessage")]
    assert any("Changing the port" in t for t in texts)


def test_a_long_task_is_followed_past_the_lookback(harness: Harness) -> None:
    """The window reaches back to the oldest unfinished task, so its end is still seen."""
    old = datetime.now(UTC) - timedelta(hours=30)
    harness.cycle()
    task_id = harness.sim.add_task(PROD, "EXTEND", "EXECUTING", created_at=old)
    record = TaskRecord(PROD, task_id, "EXTEND", "EXECUTING", old, old, old)
    harness.parts.store.commit_cycle(CycleCommit(tasks=[record]))
    harness.sim.set_status(task_id, "SUCCESS")

    harness.cycle()

    assert len(harness.slack_calls("chat.postMessage")) >= 1  # the update falls back to a post
    starts = [r.query.get("start_time") for r in harness.sim.requests if "tasks" in r.path]
    assert starts[-1] is not None
    assert starts[-1] <= old.strftime("%Y%m%d%H%M%S")


def test_no_secret_or_params_reaches_slack_or_the_log(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Tokens and a task's params (a password change) appear in no message, no log line and
    nowhere in the state file."""
    caplog.set_level(logging.DEBUG)
    harness.cycle()
    task_id = harness.sim.add_task(
        PROD, "modify", "EXECUTING", params='{"new_password": "Hunter2-secret"}'
    )
    harness.cycle()
    harness.sim.inject("500", count=10)
    harness.cycle()
    stored = harness.parts.store.tasks_by_id({PROD: [task_id]})[PROD][task_id]
    harness.close()

    sent = everything_sent(harness)
    assert "Changing the password" in sent
    assert stored.task["name"] == "modify"
    assert "params" not in stored.task
    state_file = b"".join(p.read_bytes() for p in harness.state.parent.iterdir() if p.is_file())
    for secret in ("Hunter2-secret", DCS_TOKEN, SLACK_TOKEN):
        assert secret not in sent
        assert secret not in caplog.text
        assert secret.encode() not in state_file


def test_a_failed_task_whose_alert_was_deleted_still_reaches_the_channel(
    harness: Harness,
) -> None:
    """Someone deleted the alert: the FAILED change is posted anew, broadcast in its thread."""
    harness.cycle()
    task_id = harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    harness.cycle()
    (alert,) = harness.slack.messages(ALERTS)
    harness.slack.delete_message(ALERTS, alert.ts)

    harness.sim.set_status(task_id, "FAILED")
    harness.cycle()

    new, reply = harness.slack.messages(ALERTS)
    assert "FAILED" in (new.text or "")
    assert new.thread_ts is None
    assert (reply.thread_ts, reply.reply_broadcast) == (new.ts, True)
    assert harness.parts.store.count_pending() == 0


def test_a_subscribed_channel_that_fails_is_noticed_once_in_the_alert_channel(
    harness: Harness,
) -> None:
    """The bot was removed from a subscribed channel: every alert still reaches the alert
    channel, which gets one notice; the health report counts one failing channel."""
    harness.parts.store.add_subscription(Subscription("C0TEAM", "*"))
    harness.slack.refuse_channel("C0TEAM", "not_in_channel")
    harness.cycle()
    harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    harness.sim.add_task(PROD, "BindEip", "EXECUTING")
    harness.cycle()

    texts = [m.text or "" for m in harness.slack.messages(ALERTS)]
    assert len(texts) == 3
    assert sum("can no longer post alerts to <#C0TEAM>" in t for t in texts) == 1
    code, report = health_report(
        harness.parts.store,
        poll_interval=60,
        started_at=datetime.now(UTC),
        now=datetime.now(UTC),
        version="t",
    )
    assert (code, report["deliveries_failing"]) == (200, 1)


def test_finished_tasks_past_retention_are_pruned_at_most_once_per_period(
    harness: Harness,
) -> None:
    """A cycle forgets tasks finished longer ago than the retention; the next prune waits
    ``prune_every``, then forgets what aged out meanwhile."""
    now = [datetime.now(UTC)]
    parts = harness.parts
    poller = Poller(
        parts.dcs,
        parts.store,
        parts.watched,
        alert_channel=ALERTS,
        lookback=timedelta(hours=24),
        retention=timedelta(days=30),
        prune_every=timedelta(hours=1),
        clock=lambda: now[0],
    )

    def finished(task_id: str, days_ago: float) -> TaskRecord:
        at = now[0] - timedelta(days=days_ago)
        return TaskRecord(PROD, task_id, "EXTEND", "SUCCESS", at, at, at, finished_at=at)

    parts.store.commit_cycle(CycleCommit(tasks=[finished("old", 31), finished("young", 29.99)]))
    poller.run_cycle()
    assert parts.store.find_task("old") is None
    assert parts.store.find_task("young") is not None

    now[0] += timedelta(minutes=30)
    poller.run_cycle()
    assert parts.store.find_task("young") is not None

    now[0] += timedelta(minutes=31)
    poller.run_cycle()
    assert parts.store.find_task("young") is None
