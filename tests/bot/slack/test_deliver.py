"""Delivery of the outbox to Slack: a real SQLite store, the fake Slack on loopback, fake time."""

from __future__ import annotations

import http.client
import logging
import random
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.error import URLError

import pytest
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web import SlackResponse

from bot.slack.channels import failing_channels
from bot.slack.deliver import Deliverer, DrainReport, Outcome, classify, make_web_client
from bot.slack.outcome import Action
from bot.testing.fake_slack import FakeSlack, RateLimit
from state.base import CycleCommit, NewDelivery, StateStore, TaskRecord
from state.sqlite import SqliteStore

TOKEN = "xoxb-deliver-secret-4242"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
C1, C2 = "C0000001", "C0000002"


class Clock:
    """A settable UTC clock shared by the store and the deliverer."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Sleeps(list[float]):
    """Records the waits asked for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class PassingSleep(list[float]):
    """Records each wait and moves the shared fake clock on by it: fake time that passes."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.clock.advance(seconds)


def seconds_of(clock: Clock) -> Callable[[], float]:
    """The fake clock as FakeSlack's rate limiter reads time: seconds since T0."""
    return lambda: (clock.now - T0).total_seconds()


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "state.sqlite", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def deliverer(
    fake: FakeSlack, store: StateStore, clock: Clock, sleeps: Sleeps, **options: Any
) -> Deliverer:
    """A Deliverer with tiny, deterministic delays (backoff 10 s of fake time, capped at 100)."""
    settings: dict[str, Any] = {
        "clock": clock,
        "sleep": sleeps,
        "backoff_base": 10.0,
        "backoff_max": 100.0,
        "rng": random.Random(7),
    }
    settings.update(options)
    return Deliverer(make_web_client(TOKEN, fake.url, retry_interval=0), store, **settings)


def task(task_id: str) -> TaskRecord:
    return TaskRecord(
        instance_id="inst-1",
        task_id=task_id,
        name="EXTEND",
        status="EXECUTING",
        created_at=T0,
        updated_at=T0,
        first_seen_at=T0,
    )


def enqueue(store: StateStore, *deliveries: NewDelivery, tasks: tuple[str, ...] = ()) -> None:
    store.commit_cycle(CycleCommit(tasks=[task(t) for t in tasks], deliveries=deliveries))


def post(channel: str, text: str, task_id: str | None = None) -> NewDelivery:
    instance_id = "inst-1" if task_id else None
    return NewDelivery("post", channel, text, [{"type": "divider"}], instance_id, task_id)


def texts(fake: FakeSlack, channel: str) -> list[str | None]:
    return [m.text for m in fake.messages(channel)]


# -- the happy path -------------------------------------------------------------------------


def test_update_edits_the_posted_message_and_replies_thread_under_it(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """A post's ts is remembered; the update edits that message; the reply threads under it."""
    enqueue(store, post(C1, "EXTEND EXECUTING", "t1"), tasks=("t1",))
    assert deliverer(fake, store, clock, sleeps).drain() == DrainReport(1, 0, 0, 0.0)
    (posted,) = fake.messages(C1)
    assert store.find_task("t1") is not None
    assert store.find_task("t1").messages == {C1: posted.ts}  # type: ignore[union-attr]

    enqueue(
        store,
        NewDelivery("update", C1, "EXTEND SUCCESS", [{"type": "divider"}], "inst-1", "t1"),
        NewDelivery("reply", C1, "EXECUTING → SUCCESS", (), "inst-1", "t1"),
    )
    assert deliverer(fake, store, clock, sleeps).drain().sent == 2
    alert, reply = fake.messages(C1)
    assert (alert.ts, alert.text, alert.edited) == (posted.ts, "EXTEND SUCCESS", True)
    assert (reply.thread_ts, reply.text, reply.reply_broadcast) == (
        posted.ts,
        "EXECUTING → SUCCESS",
        False,
    )
    assert [c.method for c in fake.calls] == ["chat.postMessage", "chat.update", "chat.postMessage"]
    assert store.count_pending() == 0


def test_a_failed_transition_is_broadcast_to_the_channel(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """A reply with reply_broadcast (FAILED) is posted in the thread and broadcast."""
    enqueue(
        store,
        post(C1, "alert", "t1"),
        NewDelivery("reply", C1, "EXECUTING → FAILED", (), "inst-1", "t1", reply_broadcast=True),
        tasks=("t1",),
    )
    deliverer(fake, store, clock, sleeps).drain()
    alert, reply = fake.messages(C1)
    assert (reply.thread_ts, reply.reply_broadcast) == (alert.ts, True)


def test_a_digest_is_one_top_level_message(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """A digest is posted as a plain message with its blocks."""
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "12 new tasks"}}]
    enqueue(store, NewDelivery("digest", C1, "12 new DCS tasks", blocks))
    assert deliverer(fake, store, clock, sleeps).drain().sent == 1
    (digest,) = fake.messages(C1)
    assert (digest.text, digest.blocks, digest.thread_ts) == ("12 new DCS tasks", blocks, None)


@pytest.mark.parametrize("kind", ["update", "reply"])
def test_an_update_or_reply_without_a_message_is_posted_as_a_new_one(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps, kind: str
) -> None:
    """When the task has no message in the channel (e.g. it came in a digest), post a new one."""
    enqueue(store, NewDelivery(kind, C1, "EXTEND SUCCESS", (), "inst-1", "t1"), tasks=("t1",))  # type: ignore[arg-type]
    assert deliverer(fake, store, clock, sleeps).drain().sent == 1
    (message,) = fake.messages(C1)
    assert (message.text, message.thread_ts, message.edited) == ("EXTEND SUCCESS", None, False)
    assert fake.calls_to("chat.update") == []


# -- a task's message that is gone ------------------------------------------------------------


def posted_alert(fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps) -> str:
    """Post task t1's alert to C1; return its ts."""
    enqueue(store, post(C1, "EXTEND EXECUTING", "t1"), tasks=("t1",))
    deliverer(fake, store, clock, sleeps).drain()
    (alert,) = fake.messages(C1)
    return alert.ts


def transition(status: str, *, broadcast: bool = False) -> tuple[NewDelivery, NewDelivery]:
    return (
        NewDelivery("update", C1, f"EXTEND {status}", [{"type": "divider"}], "inst-1", "t1"),
        NewDelivery("reply", C1, f"→ {status}", (), "inst-1", "t1", reply_broadcast=broadcast),
    )


def test_a_deleted_alert_gets_the_change_as_a_new_message_that_later_changes_edit(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """The alert was deleted: FAILED is posted anew (broadcast in its thread) and SUCCESS later
    edits that new message, not the deleted one."""
    fake.delete_message(C1, posted_alert(fake, store, clock, sleeps))

    enqueue(store, *transition("FAILED", broadcast=True))
    assert deliverer(fake, store, clock, sleeps).drain() == DrainReport(2, 0, 0, 0.0)
    alert, reply = fake.messages(C1)
    assert (alert.text, alert.thread_ts, alert.edited) == ("EXTEND FAILED", None, False)
    assert (reply.thread_ts, reply.text, reply.reply_broadcast) == (alert.ts, "→ FAILED", True)
    assert store.find_task("t1").messages == {C1: alert.ts}  # type: ignore[union-attr]

    enqueue(store, *transition("SUCCESS"))
    deliverer(fake, store, clock, sleeps).drain()
    edited, *thread = fake.messages(C1)
    assert (edited.ts, edited.text, edited.edited) == (alert.ts, "EXTEND SUCCESS", True)
    assert [m.thread_ts for m in thread] == [alert.ts, alert.ts]
    assert store.count_pending() == 0


@pytest.mark.parametrize(
    "error", ["message_not_found", "cant_update_message", "edit_window_closed", "is_archived"]
)
def test_an_update_slack_will_not_make_is_posted_as_a_new_message(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps, error: str
) -> None:
    """Each 'this message cannot be edited' error turns the update into a new message."""
    old = posted_alert(fake, store, clock, sleeps)
    fake.fail_next("chat.update", error=error)
    enqueue(store, transition("FAILED")[0])
    assert deliverer(fake, store, clock, sleeps).drain() == DrainReport(1, 0, 0, 0.0)
    first, new = fake.messages(C1)
    assert (first.ts, first.text) == (old, "EXTEND EXECUTING")
    assert (new.text, new.thread_ts) == ("EXTEND FAILED", None)
    assert store.find_task("t1").messages == {C1: new.ts}  # type: ignore[union-attr]


def test_a_reply_to_a_vanished_thread_is_posted_to_the_channel(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """thread_not_found on a reply posts the reply as a top-level message."""
    posted_alert(fake, store, clock, sleeps)
    fake.fail_next("chat.postMessage", error="thread_not_found")
    enqueue(store, transition("FAILED", broadcast=True)[1])
    assert deliverer(fake, store, clock, sleeps).drain().sent == 1
    assert [(m.text, m.thread_ts) for m in fake.messages(C1)][1] == ("→ FAILED", None)


def test_a_new_post_that_fails_too_is_dropped_once(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """When the fallback post fails finally as well, the delivery is dropped, not looped."""
    posted_alert(fake, store, clock, sleeps)
    fake.fail_next("chat.update", error="is_archived")
    fake.fail_next("chat.postMessage", error="is_archived")
    enqueue(store, transition("FAILED")[0])
    assert deliverer(fake, store, clock, sleeps).drain() == DrainReport(0, 0, 1, 0.0)
    assert [c.method for c in fake.calls[1:]] == ["chat.update", "chat.postMessage"]


# -- channels the bot cannot post to ------------------------------------------------------------

ALERTS = "C0ALERTS"


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
def test_a_channel_that_fails_finally_is_recorded_and_noticed_once(
    fake: FakeSlack,
    store: SqliteStore,
    clock: Clock,
    sleeps: Sleeps,
    caplog: pytest.LogCaptureFixture,
    error: str,
) -> None:
    """A subscribed channel that refuses posts is recorded as failing, logged, and the alert
    channel gets one notice, not one per dropped alert."""
    fake.refuse_channel(C2, error)
    enqueue(store, post(C2, "one"), post(ALERTS, "one"), post(C2, "two"))
    with caplog.at_level(logging.ERROR, logger="bot.slack.deliver"):
        report = deliverer(fake, store, clock, sleeps, alert_channel=ALERTS).drain()
    assert report == DrainReport(sent=2, retried=0, dropped=2, waited_seconds=0.0)
    (failing,) = failing_channels(store)
    assert (failing.channel, failing.error) == (C2, error)
    one, notice = fake.messages(ALERTS)
    assert one.text == "one"
    assert f"<#{C2}>" in (notice.text or "")
    assert error in (notice.text or "")
    assert sum("cannot be posted to" in r.getMessage() for r in caplog.records) == 1

    enqueue(store, post(C2, "three"))
    deliverer(fake, store, clock, sleeps, alert_channel=ALERTS).drain()
    assert len(fake.messages(ALERTS)) == 2  # still one notice


def test_a_failing_channel_that_works_again_is_no_longer_listed(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """The first delivery that reaches a failing channel again clears it."""
    fake.refuse_channel(C2, "not_in_channel")
    enqueue(store, post(C2, "lost"))
    deliverer(fake, store, clock, sleeps, alert_channel=ALERTS).drain()
    assert [f.channel for f in failing_channels(store)] == [C2]

    fake.refuse_channel(C2, None)
    enqueue(store, post(C2, "back"))
    deliverer(fake, store, clock, sleeps, alert_channel=ALERTS).drain()
    assert failing_channels(store) == []
    assert texts(fake, C2) == ["back"]


def test_the_failing_alert_channel_is_recorded_without_a_notice(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """When the alert channel itself fails, it is recorded; no notice is posted anywhere."""
    fake.refuse_channel(ALERTS, "not_in_channel")
    enqueue(store, post(ALERTS, "lost"))
    deliverer(fake, store, clock, sleeps, alert_channel=ALERTS).drain()
    assert [f.channel for f in failing_channels(store)] == [ALERTS]
    assert fake.calls_to("chat.postMessage") == fake.calls_to("chat.postMessage")[:1]
    assert store.count_pending() == 0


# -- rate limits ----------------------------------------------------------------------------


def test_a_429_waits_retry_after_then_sends_the_same_item(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """On 429 the deliverer waits Retry-After (through the injected sleep) and sends again."""
    fake.fail_next("chat.postMessage", status=429, retry_after=3)
    enqueue(store, post(C1, "one"), post(C1, "two"))
    report = deliverer(fake, store, clock, sleeps).drain()
    assert report == DrainReport(sent=2, retried=0, dropped=0, waited_seconds=3.0)
    assert sleeps == [3.0]
    assert texts(fake, C1) == ["one", "two"]
    assert len(fake.calls_to("chat.postMessage")) == 3


def test_a_token_bucket_rate_limit_is_waited_out_in_order(store: SqliteStore, clock: Clock) -> None:
    """Against Slack's per-channel rate limit, every message still goes out once, in order."""
    seconds = [0.0]
    waits: list[float] = []

    def sleep(duration: float) -> None:
        waits.append(duration)
        seconds[0] += duration

    with FakeSlack(
        token=TOKEN, clock=lambda: seconds[0], rate_limit=RateLimit(per_second=1, burst=2)
    ) as fake:
        enqueue(store, *(post(C1, f"m{i}") for i in range(5)))
        report = deliverer(fake, store, clock, Sleeps(), sleep=sleep).drain()
        assert texts(fake, C1) == [f"m{i}" for i in range(5)]
    assert report.sent == 5
    assert waits == [1.0, 1.0, 1.0]
    assert report.waited_seconds == 3.0


def test_a_rate_limit_longer_than_the_budget_is_left_for_later(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """A Retry-After beyond max_rate_limit_wait is not slept: the item waits in the outbox."""
    fake.fail_next("chat.postMessage", status=429, retry_after=300)
    enqueue(store, post(C1, "one"))
    worker = deliverer(fake, store, clock, sleeps, max_rate_limit_wait=120)
    assert worker.drain() == DrainReport(sent=0, retried=1, dropped=0, waited_seconds=0.0)
    assert sleeps == []
    (pending,) = store.all_deliveries()
    assert pending.next_try_at == T0 + timedelta(seconds=300)
    assert pending.last_error == "ratelimited"

    clock.advance(299)
    assert worker.drain().sent == 0
    clock.advance(1)
    assert worker.drain().sent == 1
    assert texts(fake, C1) == ["one"]


def test_grouped_rate_limits_interleave_channels_and_wait_only_the_floor(
    store: SqliteStore, clock: Clock
) -> None:
    """Alerts grouped by channel: a 429 holds only its channel, every channel sends its burst
    before the first wait, and the drain waits the per-channel floor in all, in order, once."""
    channels = [f"C00000{k}0" for k in range(5)]
    sleep = PassingSleep(clock)
    at_first_wait: dict[str, int] = {}
    with FakeSlack(
        token=TOKEN, clock=seconds_of(clock), rate_limit=RateLimit(per_second=1, burst=3)
    ) as fake:

        def watched_sleep(seconds: float) -> None:
            if not sleep:
                at_first_wait.update({c: len(fake.messages(c)) for c in channels})
            sleep(seconds)

        enqueue(store, *(post(c, f"{c}-{i}") for c in channels for i in range(10)))
        report = deliverer(fake, store, clock, Sleeps(), sleep=watched_sleep).drain()
        # floor: (10 alerts - burst 3) / 1 per s = 7 s, the channels side by side
        assert report == DrainReport(sent=50, retried=0, dropped=0, waited_seconds=7.0)
        assert sleep == [1.0] * 7
        assert at_first_wait == {c: 3 for c in channels}
        for c in channels:
            assert texts(fake, c) == [f"{c}-{i}" for i in range(10)]
        # each channel: 10 sent, and one 429 per second it waited
        assert len(fake.calls_to("chat.postMessage")) == 50 + 5 * 7
    assert store.count_pending() == 0


def test_a_rate_limited_post_is_followed_by_its_update_and_reply_in_order(
    store: SqliteStore, clock: Clock
) -> None:
    """Under a burst-1 limit, a task's post, update and reply go out in that order (the update
    edits the post, the reply threads under it) while another channel is served meanwhile."""
    sleep = PassingSleep(clock)
    with FakeSlack(
        token=TOKEN, clock=seconds_of(clock), rate_limit=RateLimit(per_second=1, burst=1)
    ) as fake:
        enqueue(
            store,
            post(C1, "EXECUTING", "t1"),
            post(C2, "b1"),
            NewDelivery("update", C1, "SUCCESS", (), "inst-1", "t1"),
            NewDelivery("reply", C1, "EXECUTING → SUCCESS", (), "inst-1", "t1"),
            post(C2, "b2"),
            tasks=("t1",),
        )
        report = deliverer(fake, store, clock, Sleeps(), sleep=sleep).drain()
        assert report == DrainReport(sent=5, retried=0, dropped=0, waited_seconds=2.0)
        assert sleep == [1.0, 1.0]
        alert, reply = fake.messages(C1)
        assert (alert.text, alert.edited) == ("SUCCESS", True)
        assert (reply.text, reply.thread_ts) == ("EXECUTING → SUCCESS", alert.ts)
        assert texts(fake, C2) == ["b1", "b2"]


def test_the_wait_budget_bounds_a_drain_and_the_rest_follows_in_order(
    store: SqliteStore, clock: Clock
) -> None:
    """A drain waits at most max_rate_limit_wait in all; the rest keeps its order and the
    limit's end as next try, and goes out once in a later drain."""
    sleep = PassingSleep(clock)
    with FakeSlack(
        token=TOKEN, clock=seconds_of(clock), rate_limit=RateLimit(per_second=1, burst=3)
    ) as fake:
        enqueue(store, *(post(C1, f"m{i}") for i in range(10)))
        worker = deliverer(fake, store, clock, Sleeps(), sleep=sleep, max_rate_limit_wait=4)
        assert worker.drain() == DrainReport(sent=7, retried=3, dropped=0, waited_seconds=4.0)
        assert sleep == [1.0] * 4
        held, *behind = store.all_deliveries()
        assert (held.text, held.last_error, held.attempts) == ("m7", "ratelimited", 1)
        assert held.next_try_at == clock.now + timedelta(seconds=1)
        assert [d.next_try_at for d in behind] == [held.next_try_at] * 2
        assert all("held back" in (d.last_error or "") for d in behind)

        assert worker.drain() == DrainReport()  # the limit has not ended yet
        clock.advance(1)
        assert worker.drain().sent == 3
        assert texts(fake, C1) == [f"m{i}" for i in range(10)]
    assert store.count_pending() == 0


def test_rate_limits_within_a_drain_are_not_counted_as_attempts(
    fake: FakeSlack, store: SqliteStore, clock: Clock
) -> None:
    """A delivery rate limited twice, then failing with a 500, is recorded as its first failed
    attempt (backoff within [base / 2, base]), not its third."""
    fake.fail_next("chat.postMessage", status=429, retry_after=1, count=2)
    fake.fail_next("chat.postMessage", status=500)
    enqueue(store, post(C1, "x"))
    sleep = PassingSleep(clock)
    report = deliverer(fake, store, clock, Sleeps(), sleep=sleep).drain()
    assert report == DrainReport(sent=0, retried=1, dropped=0, waited_seconds=2.0)
    (pending,) = store.all_deliveries()
    assert (pending.attempts, pending.last_error) == (1, "http 500 internal_error")
    assert pending.next_try_at is not None
    assert 5.0 <= (pending.next_try_at - clock.now).total_seconds() <= 10.0


def test_a_channel_slack_keeps_limiting_ends_the_drain_at_the_budget(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """With Slack answering 429 every time and a clock that never moves, the drain never spins:
    each wait buys one more try, and the waits stop at the budget."""
    fake.fail_next("chat.postMessage", status=429, retry_after=1, count=100)
    enqueue(store, post(C1, "x"))
    report = deliverer(fake, store, clock, sleeps, max_rate_limit_wait=5).drain()
    assert report == DrainReport(sent=0, retried=1, dropped=0, waited_seconds=5.0)
    assert sleeps == [1.0] * 5
    assert len(fake.calls) == 6
    (pending,) = store.all_deliveries()
    assert (pending.attempts, pending.last_error) == (1, "ratelimited")


# -- outages, network errors and order ----------------------------------------------------------


def test_an_outage_loses_nothing_and_delivers_everything_once_in_order(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """During a 503 outage items stay with a next try; afterwards each goes out once, in order."""
    enqueue(store, post(C1, "a1"), post(C2, "b1"), post(C1, "a2"), post(C1, "a3"))
    worker = deliverer(fake, store, clock, sleeps)
    fake.outage(True)
    assert worker.drain() == DrainReport(sent=0, retried=4, dropped=0, waited_seconds=0.0)
    # One call per channel: C1's later items were held back behind its first failure.
    assert len(fake.calls) == 2
    pending = store.all_deliveries()
    assert len(pending) == 4
    assert all(d.next_try_at is not None and d.next_try_at > T0 for d in pending)
    assert "503" in (pending[0].last_error or "")

    assert worker.drain() == DrainReport()  # nothing is due yet
    assert len(fake.calls) == 2

    fake.outage(False)
    clock.advance(100)
    assert worker.drain().sent == 4
    assert texts(fake, C1) == ["a1", "a2", "a3"]
    assert texts(fake, C2) == ["b1"]
    assert store.count_pending() == 0


def test_a_server_error_holds_back_only_its_channel(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """After a 500 on one channel, that channel's later items wait; other channels go on."""
    fake.fail_next("chat.postMessage", status=500)
    enqueue(store, post(C1, "a1"), post(C1, "a2"), post(C2, "b1"))
    worker = deliverer(fake, store, clock, sleeps)
    assert worker.drain() == DrainReport(sent=1, retried=2, dropped=0, waited_seconds=0.0)
    assert texts(fake, C2) == ["b1"]
    assert texts(fake, C1) == []
    first, second = store.all_deliveries()
    assert first.next_try_at == second.next_try_at
    assert "held back" in (second.last_error or "")

    clock.advance(100)
    assert worker.drain().sent == 2
    assert texts(fake, C1) == ["a1", "a2"]


def test_an_update_never_overtakes_its_failed_post(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """When a post fails retryably, its update waits and then edits the post's message."""
    fake.fail_next("chat.postMessage", status=503)
    enqueue(store, post(C1, "EXECUTING", "t1"), tasks=("t1",))
    worker = deliverer(fake, store, clock, sleeps)
    worker.drain()
    clock.advance(5)  # a next poll cycle, before the post's next try
    enqueue(store, NewDelivery("update", C1, "SUCCESS", (), "inst-1", "t1"))
    assert worker.drain() == DrainReport()  # the store holds it behind the post
    assert fake.messages(C1) == []
    clock.advance(100)
    assert worker.drain().sent == 2
    (message,) = fake.messages(C1)
    assert (message.text, message.edited) == ("SUCCESS", True)


def test_backoff_grows_with_attempts_and_is_capped(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """Each retry waits within [base·2^n / 2, base·2^n], never more than backoff_max."""
    enqueue(store, post(C1, "x"))
    worker = deliverer(fake, store, clock, sleeps)
    fake.outage(True)
    delays = []
    for _ in range(6):
        worker.drain()
        (pending,) = store.all_deliveries()
        assert pending.next_try_at is not None
        delays.append((pending.next_try_at - clock.now).total_seconds())
        clock.now = pending.next_try_at
    ceilings = [10, 20, 40, 80, 100, 100]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays


def test_a_server_retry_after_is_respected(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """A 503 with Retry-After longer than the backoff is retried no sooner than it asks."""
    fake.fail_next("chat.postMessage", status=503, retry_after=500)
    enqueue(store, post(C1, "x"))
    deliverer(fake, store, clock, sleeps).drain()
    (pending,) = store.all_deliveries()
    assert pending.next_try_at == T0 + timedelta(seconds=500)


@pytest.mark.parametrize(("drops", "sent_first"), [(1, 1), (2, 0)])
def test_a_dropped_connection_is_retried_by_the_client_then_by_the_outbox(
    fake: FakeSlack,
    store: SqliteStore,
    clock: Clock,
    sleeps: Sleeps,
    drops: int,
    sent_first: int,
) -> None:
    """slack-sdk's handler retries one dropped connection; a second drop leaves it for later."""
    fake.fail_next("chat.postMessage", disconnect=True, count=drops)
    enqueue(store, post(C1, "x"))
    worker = deliverer(fake, store, clock, sleeps)
    assert worker.drain().sent == sent_first
    if not sent_first:
        (pending,) = store.all_deliveries()
        assert (pending.last_error or "").startswith("network: RemoteDisconnected")
        clock.advance(100)
        assert worker.drain().sent == 1
    assert texts(fake, C1) == ["x"]


def test_an_unreachable_slack_is_retried_later(
    store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """A refused connection (Slack unreachable) is a retryable network error."""
    fake = FakeSlack(token=TOKEN)
    fake.start()
    fake.stop()
    enqueue(store, post(C1, "x"))
    assert deliverer(fake, store, clock, sleeps).drain().retried == 1
    (pending,) = store.all_deliveries()
    assert (pending.last_error or "").startswith("network: URLError")


# -- final failures -------------------------------------------------------------------------


def test_an_unknown_channel_is_dropped_and_others_still_delivered(
    store: SqliteStore, clock: Clock, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    """channel_not_found drops that delivery with an ERROR log; the rest are delivered."""
    with FakeSlack(token=TOKEN, known_channels={C1}) as fake:
        enqueue(store, post("C0GONE", "lost"), post(C1, "kept"))
        with caplog.at_level(logging.ERROR, logger="bot.slack.deliver"):
            report = deliverer(fake, store, clock, sleeps).drain()
        assert report == DrainReport(sent=1, retried=0, dropped=1, waited_seconds=0.0)
        assert texts(fake, C1) == ["kept"]
    assert store.count_pending() == 0
    record, failing = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.name == "bot.slack.deliver"
    assert "C0GONE" in record.getMessage()
    assert "channel_not_found" in record.getMessage()
    assert "post" in record.getMessage()
    assert "channel C0GONE cannot be posted to" in failing.getMessage()


def test_a_final_failure_does_not_hold_back_its_channel(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """After a final error, the channel's next deliveries are still sent in the same drain."""
    fake.fail_next("chat.postMessage", error="msg_too_long")
    enqueue(store, post(C1, "too long"), post(C1, "fine"))
    assert deliverer(fake, store, clock, sleeps).drain() == DrainReport(1, 0, 1, 0.0)
    assert texts(fake, C1) == ["fine"]


# -- stopping and crashing ------------------------------------------------------------------


def test_a_set_stop_event_sends_nothing(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """A drain asked to stop before it starts returns without a call and keeps the outbox."""
    stop = threading.Event()
    stop.set()
    enqueue(store, post(C1, "x"))
    assert deliverer(fake, store, clock, sleeps, stop=stop).drain() == DrainReport()
    assert fake.calls == []
    assert store.count_pending() == 1


class StoppingStore:
    """A store whose first recorded delivery comes with a stop request (SIGTERM mid-drain)."""

    def __init__(self, inner: SqliteStore, stop: threading.Event) -> None:
        self.inner, self.stop = inner, stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def delivery_done(self, delivery_id: int, ts: str | None = None) -> None:
        self.stop.set()
        self.inner.delivery_done(delivery_id, ts)


def test_stop_finishes_the_current_delivery_and_returns(
    fake: FakeSlack, store: SqliteStore, clock: Clock, sleeps: Sleeps
) -> None:
    """A stop during a delivery lets that delivery end, then the drain returns."""
    stop = threading.Event()
    enqueue(store, post(C1, "a"), post(C2, "b"), post(C1, "c"))
    worker = deliverer(fake, StoppingStore(store, stop), clock, sleeps, stop=stop)
    assert worker.drain() == DrainReport(sent=1, retried=0, dropped=0, waited_seconds=0.0)
    assert len(fake.calls) == 1
    assert texts(fake, C1) == ["a"]
    assert store.count_pending() == 2


def test_a_stop_during_a_rate_limit_wait_ends_the_drain(
    fake: FakeSlack, store: SqliteStore, clock: Clock
) -> None:
    """While C1 waits out a 429, C2 is served; a stop during the wait ends the drain, and C1's
    delivery keeps the limit's end as its next try."""
    stop = threading.Event()

    def sleep(seconds: float) -> None:
        stop.set()  # SIGTERM arrives while the drain waits for C1's rate limit

    fake.fail_next("chat.postMessage", status=429, retry_after=2)
    enqueue(store, post(C1, "a"), post(C2, "b"))
    report = deliverer(fake, store, clock, Sleeps(), stop=stop, sleep=sleep).drain()
    assert report == DrainReport(sent=1, retried=1, dropped=0, waited_seconds=0.0)
    assert len(fake.calls) == 2
    assert texts(fake, C2) == ["b"]
    (pending,) = store.all_deliveries()
    assert (pending.text, pending.last_error) == ("a", "ratelimited")
    assert pending.next_try_at == T0 + timedelta(seconds=2)


def test_a_stop_request_cuts_a_rate_limit_wait_short(
    fake: FakeSlack, store: SqliteStore, clock: Clock
) -> None:
    """Without an injected sleep, a rate-limit wait ends as soon as stop is set."""
    stop = threading.Event()
    fake.fail_next("chat.postMessage", status=429, retry_after=100)
    enqueue(store, post(C1, "a"))
    worker = Deliverer(make_web_client(TOKEN, fake.url), store, clock=clock, stop=stop)
    reports: list[DrainReport] = []
    thread = threading.Thread(target=lambda: reports.append(worker.drain()), daemon=True)
    thread.start()
    while not fake.calls and thread.is_alive():
        thread.join(0.01)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    assert reports[0].sent == 0
    assert store.count_pending() == 1


class CrashingStore:
    """A store whose process dies in delivery_done, after Slack has answered ok."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def delivery_done(self, delivery_id: int, ts: str | None = None) -> None:
        raise KeyboardInterrupt("the process was killed")


def test_a_crash_before_delivery_done_sends_again_at_least_once(
    fake: FakeSlack, tmp_path: Path, clock: Clock, sleeps: Sleeps
) -> None:
    """Delivery is at-least-once: a crash after Slack's ok but before recording re-sends."""
    path = tmp_path / "crash.sqlite"
    first = SqliteStore(path, clock=clock)
    enqueue(first, post(C1, "alert"))
    with pytest.raises(KeyboardInterrupt):
        deliverer(fake, CrashingStore(first), clock, sleeps).drain()
    first.close()

    restarted = SqliteStore(path, clock=clock)
    try:
        assert deliverer(fake, restarted, clock, sleeps).drain().sent == 1
        assert restarted.count_pending() == 0
    finally:
        restarted.close()
    assert texts(fake, C1) == ["alert", "alert"]


# -- secrets --------------------------------------------------------------------------------


def test_no_token_or_message_text_in_logs(
    store: SqliteStore, clock: Clock, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the token nor a message's text appears in any log line or stored error."""
    with FakeSlack(token="xoxb-the-right-one", known_channels={C1}) as fake:
        fake.fail_next("chat.postMessage", status=500)
        enqueue(
            store,
            post(C1, "text-for-slack-only"),
            post(C2, "text-for-slack-only"),
            post(C1, "text-for-slack-only"),
        )
        with caplog.at_level(logging.DEBUG):
            deliverer(fake, store, clock, sleeps).drain()  # the token is refused: invalid_auth
            fake.outage(True)
            deliverer(fake, store, clock, sleeps).drain()
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "invalid_auth" in logged
    assert TOKEN not in logged
    assert all(
        "text-for-slack-only" not in r.getMessage()
        for r in caplog.records
        if r.name == "bot.slack.deliver"
    )
    assert all(TOKEN not in (d.last_error or "") for d in store.all_deliveries())


# -- classify -------------------------------------------------------------------------------


def response(status: int, error: str | None, headers: dict[str, Any]) -> Any:
    """A SlackResponse as slack_sdk builds it; ``error`` None with 200 means ok."""
    data: dict[str, Any] = {"ok": status == 200 and error is None}
    if error is not None:
        data["error"] = error
    return SlackResponse(
        client=None,
        http_verb="POST",
        api_url="http://127.0.0.1/api/chat.postMessage",
        req_args={},
        data=data,
        headers=headers,
        status_code=status,
    )


RETRY_AFTER_7 = {"Retry-After": "7"}

# status, Slack error, headers -> kind, reason, retry_after
RESPONSES: list[tuple[int, str | None, dict[str, Any], tuple[str, str, float | None]]] = [
    (200, None, {}, ("ok", "ok", None)),
    (429, "ratelimited", RETRY_AFTER_7, ("retry", "ratelimited", 7.0)),
    (429, "ratelimited", {"retry-after": ["2"]}, ("retry", "ratelimited", 2.0)),
    (429, None, {}, ("retry", "ratelimited", 1.0)),
    (429, None, {"Retry-After": "0"}, ("retry", "ratelimited", 1.0)),
    (200, "ratelimited", {}, ("retry", "ratelimited", 1.0)),
    (500, "internal_error", {}, ("retry", "http 500 internal_error", None)),
    (502, "<html>", {}, ("retry", "http 502 <html>", None)),
    (503, None, {"Retry-After": "30"}, ("retry", "http 503", 30.0)),
    (504, None, {}, ("retry", "http 504", None)),
    (408, None, {}, ("retry", "http 408", None)),
    (200, "internal_error", {}, ("retry", "internal_error", None)),
    (200, "fatal_error", {}, ("retry", "fatal_error", None)),
    (200, "service_unavailable", {}, ("retry", "service_unavailable", None)),
    (200, "request_timeout", RETRY_AFTER_7, ("retry", "request_timeout", 7.0)),
    (200, "channel_not_found", {}, ("final", "channel_not_found", None)),
    (200, "not_in_channel", {}, ("final", "not_in_channel", None)),
    (200, "is_archived", {}, ("final", "is_archived", None)),
    (200, "invalid_auth", {}, ("final", "invalid_auth", None)),
    (200, "not_authed", {}, ("final", "not_authed", None)),
    (200, "account_inactive", {}, ("final", "account_inactive", None)),
    (200, "token_revoked", {}, ("final", "token_revoked", None)),
    (200, "missing_scope", {}, ("final", "missing_scope", None)),
    (200, "msg_too_long", {}, ("final", "msg_too_long", None)),
    (200, "invalid_blocks", {}, ("final", "invalid_blocks", None)),
    (200, "message_not_found", {}, ("final", "message_not_found", None)),
    (200, "cant_update_message", {}, ("final", "cant_update_message", None)),
    (200, "edit_window_closed", {}, ("final", "edit_window_closed", None)),
    (200, "thread_not_found", {}, ("final", "thread_not_found", None)),
    (200, "brand_new_error", {}, ("final", "brand_new_error (unrecognised error)", None)),
    (404, "unknown_method", {}, ("final", "unknown_method", None)),
    (403, None, {}, ("final", "http 403 without an error code", None)),
    (200, "bad xoxb-12-34-abc", {}, ("final", "bad [redacted] (unrecognised error)", None)),
]


@pytest.mark.parametrize(("status", "error", "headers", "expected"), RESPONSES)
def test_classify_responses(
    status: int,
    error: str | None,
    headers: dict[str, Any],
    expected: tuple[Any, str, float | None],
) -> None:
    """Slack's answers classify as ok, retry (with Retry-After) or final, with a named reason."""
    assert classify(None, response(status, error, headers)) == Outcome(*expected)
    if expected[0] != "ok":
        raised = SlackApiError("failed", response(status, error, headers))
        assert classify(raised, None) == Outcome(*expected)


REFUSED = ConnectionRefusedError(111, "Connection refused")

# exception -> kind, reason
EXCEPTIONS: list[tuple[BaseException, tuple[str, str]]] = [
    (URLError(REFUSED), ("retry", "network: URLError: [Errno 111] Connection refused")),
    (URLError("timed out"), ("retry", "network: URLError: timed out")),
    (
        ConnectionResetError(104, "reset by peer"),
        ("retry", "network: ConnectionResetError: [Errno 104] reset by peer"),
    ),
    (TimeoutError("timed out"), ("retry", "network: TimeoutError: timed out")),
    (
        socket.gaierror(-2, "Name or service not known"),
        ("retry", "network: gaierror: [Errno -2] Name or service not known"),
    ),
    (http.client.RemoteDisconnected("closed"), ("retry", "network: RemoteDisconnected: closed")),
    (
        http.client.IncompleteRead(b"ab", 5),
        ("retry", "network: IncompleteRead: IncompleteRead(2 bytes read, 5 more expected)"),
    ),
    (SlackRequestError("Invalid URL detected"), ("final", "unexpected: SlackRequestError")),
    (ValueError("a bug"), ("final", "unexpected: ValueError")),
]


# action, Slack error -> kind
LOST_MESSAGES: list[tuple[Action, str, str]] = [
    ("edit", "message_not_found", "fallback"),
    ("edit", "cant_update_message", "fallback"),
    ("edit", "edit_window_closed", "fallback"),
    ("edit", "is_archived", "fallback"),
    ("edit", "thread_not_found", "final"),
    ("edit", "not_in_channel", "final"),
    ("reply", "thread_not_found", "fallback"),
    ("reply", "message_not_found", "fallback"),
    ("reply", "is_archived", "final"),
    ("post", "message_not_found", "final"),
    ("post", "is_archived", "final"),
]


@pytest.mark.parametrize(("action", "error", "kind"), LOST_MESSAGES)
def test_classify_a_lost_message_by_action(action: Action, error: str, kind: str) -> None:
    """An edit or reply whose message is gone falls back to a new message; a post never does."""
    assert classify(None, response(200, error, {}), action).kind == kind


@pytest.mark.parametrize(("exc", "expected"), EXCEPTIONS)
def test_classify_exceptions(exc: BaseException, expected: tuple[Any, str]) -> None:
    """Network errors are retryable; anything else unexpected is final."""
    assert classify(exc, None) == Outcome(*expected)


def test_classify_needs_something_to_classify() -> None:
    """Neither an exception nor a response is a caller error."""
    with pytest.raises(ValueError, match="needs an exception or a response"):
        classify(None, None)


def test_make_web_client_uses_the_base_url_and_only_a_connection_retry_handler() -> None:
    """The client talks to base_url and retries connection errors only (see make_web_client)."""
    client = make_web_client(TOKEN, "http://127.0.0.1:9/api", timeout=2.5, connection_retries=2)
    assert client.base_url == "http://127.0.0.1:9/api/"
    assert client.timeout == 3
    (handler,) = client.retry_handlers
    assert type(handler).__name__ == "ConnectionErrorRetryHandler"
    assert handler.max_retry_count == 2
