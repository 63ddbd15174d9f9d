"""Tests for bot.pipeline.plan: routing, digest and rendering of a cycle's changes."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.dcs.models import Instance, Task
from bot.pipeline.changes import Change
from bot.pipeline.detect import Reason
from bot.pipeline.plan import Routed, digest_channels, plan_deliveries, route_changes
from state.base import Subscription, TaskRecord

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PROD = Instance("i1", "cache-prod")
ALERTS = "C0ALERTS"


def change(reason: Reason, task_id: str = "t1", status: str = "EXECUTING") -> Change:
    task = Task("i1", task_id, "EXTEND", status, created_at=T0, updated_at=T0)
    before = None
    if reason not in (Reason.NEW, Reason.BASELINE):
        before = TaskRecord("i1", task_id, "EXTEND", "EXECUTING", T0, T0, T0)
    return Change(reason, task, PROD, before)


def plan(
    changes: list[Change], subscriptions: list[Subscription] | None = None, threshold: int = 2
):  # type: ignore[no-untyped-def]
    return plan_deliveries(
        changes,
        alert_channel=ALERTS,
        subscriptions=subscriptions or [],
        digest_threshold=threshold,
        now=T0,
    )


def test_only_alerting_changes_are_routed_once_per_matching_channel() -> None:
    """BASELINE and TOUCHED go nowhere; an alert goes to the alert channel and to each
    matching subscriber once."""
    subs = [Subscription("C1", "*"), Subscription("C2", "cache-prod"), Subscription("C1", "i1")]
    changes = [change(Reason.BASELINE, "a"), change(Reason.TOUCHED, "b"), change(Reason.NEW, "c")]

    routed = route_changes(changes, alert_channel=ALERTS, subscriptions=subs)

    assert [(r.channel, r.change.task.id) for r in routed] == [
        (ALERTS, "c"),
        ("C1", "c"),
        ("C2", "c"),
    ]


def test_digest_channels_are_those_with_more_new_tasks_than_the_threshold() -> None:
    """Three new tasks with threshold 2 make a digest; transitions do not count toward it."""
    new = [Routed("C1", change(Reason.NEW, f"n{i}")) for i in range(3)]
    moved = [Routed("C2", change(Reason.STATUS_CHANGED, f"s{i}", "SUCCESS")) for i in range(3)]
    few = [Routed("C3", change(Reason.NEW, f"f{i}")) for i in range(2)]

    digests = digest_channels(new + moved + few, threshold=2)

    assert list(digests) == ["C1"]
    assert [c.task.id for c in digests["C1"]] == ["n0", "n1", "n2"]


def test_a_new_task_is_one_post_naming_the_task() -> None:
    """NEW gives a post to the alert channel, carrying the task's IDs."""
    [delivery] = plan([change(Reason.NEW)])

    assert (delivery.kind, delivery.channel) == ("post", ALERTS)
    assert (delivery.instance_id, delivery.task_id) == ("i1", "t1")
    assert "Modifying specifications" in delivery.text


def test_a_status_change_edits_the_message_and_replies_without_broadcast() -> None:
    """STATUS_CHANGED gives an update then a thread reply with the transition."""
    update, reply = plan([change(Reason.STATUS_CHANGED, status="SUCCESS")])

    assert (update.kind, reply.kind) == ("update", "reply")
    assert "EXECUTING → SUCCESS" in reply.text
    assert not reply.reply_broadcast


def test_a_failure_reply_is_broadcast() -> None:
    """FAILED gives the same update and reply, the reply broadcast to the channel."""
    _, reply = plan([change(Reason.FAILED, status="FAILED")])

    assert reply.reply_broadcast


def test_a_digest_replaces_new_posts_but_not_transitions() -> None:
    """Over the threshold: one digest instead of the posts; a transition in the same channel is
    still an update and a reply."""
    changes = [change(Reason.NEW, f"n{i}") for i in range(3)]
    changes.append(change(Reason.STATUS_CHANGED, "s", "SUCCESS"))

    deliveries = plan(changes, threshold=2)

    assert [d.kind for d in deliveries] == ["digest", "update", "reply"]
    assert "3" in deliveries[0].text


def test_at_the_threshold_new_tasks_are_still_posted_one_by_one() -> None:
    """Exactly ``threshold`` new tasks give that many posts and no digest."""
    deliveries = plan([change(Reason.NEW, f"n{i}") for i in range(2)], threshold=2)

    assert [d.kind for d in deliveries] == ["post", "post"]
