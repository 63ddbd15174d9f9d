"""Tests for bot.pipeline.gone: an unfinished task DCS stops listing is settled after a bounded
time (recorded as GONE, one thread reply) and stops pinning the poll window. Real SQLite file,
simulator, fake Slack; the poller's clock is a test clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.pipeline.poll import Poller
from tests.conftest import ALERTS, Harness

PROD = "11111111-1111-4111-8111-111111111111"


class Clock:
    """The poller's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def poller(h: Harness, clock: Clock) -> Poller:
    """The harness's poller with a test clock and a one-hour settling time."""
    parts = h.parts
    return Poller(
        parts.dcs,
        parts.store,
        parts.watched,
        alert_channel=ALERTS,
        lookback=parts.settings.lookback,
        clock=clock,
        gone_after=timedelta(hours=1),
    )


def test_a_task_dcs_stops_listing_is_settled_once_after_the_bound(harness: Harness) -> None:
    """Missing for less than the bound: nothing happens. Past it: one cycle records the task
    as GONE and posts one thread reply; later cycles say nothing more, and the query window no
    longer starts at the task's creation."""
    clock = Clock()
    p = poller(harness, clock)
    old = harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    p.run_cycle()
    harness.parts.deliverer.drain()  # type: ignore[union-attr]
    harness.sim.drop_task(old)

    clock.now += timedelta(minutes=1)
    p.run_cycle()
    clock.now += timedelta(minutes=50)
    p.run_cycle()
    assert harness.parts.store.tasks_of(PROD)[old].status == "EXECUTING"

    clock.now += timedelta(minutes=15)
    result = p.run_cycle()
    harness.parts.deliverer.drain()  # type: ignore[union-attr]
    clock.now += timedelta(hours=2)
    p.run_cycle()
    harness.parts.deliverer.drain()  # type: ignore[union-attr]

    record = harness.parts.store.tasks_of(PROD)[old]
    assert record.status == "GONE"
    assert record.finished_at is not None
    assert harness.parts.store.open_tasks([PROD]) == {}  # it no longer pins the window
    replies = [m for m in harness.slack.messages(ALERTS) if m.thread_ts is not None]
    assert len(replies) == 1
    assert "no longer listed by DCS" in (replies[0].text or "")
    assert [d.kind for d in result.commit.deliveries] == ["reply"]


def test_a_task_missing_from_one_answer_only_is_not_settled(harness: Harness) -> None:
    """A task absent from one answer (a paging glitch) and listed again is never settled,
    however long the bot then runs."""
    clock = Clock()
    p = poller(harness, clock)
    task = harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    p.run_cycle()
    harness.sim.drop_task(task)
    clock.now += timedelta(minutes=1)
    p.run_cycle()
    again = harness.sim.add_task(PROD, "EXTEND", "EXECUTING", task_id=task)
    assert again == task
    for _ in range(3):
        clock.now += timedelta(hours=1)
        p.run_cycle()

    assert harness.parts.store.tasks_of(PROD)[task].status == "EXECUTING"
    assert harness.parts.store.get_meta("missing_since") == {}


def test_a_task_listed_malformed_is_not_settled_as_gone(harness: Harness) -> None:
    """DCS still lists an unfinished task, but malformed (its status null) for longer than the
    bound: it has not vanished, so it is neither settled as GONE nor alerted about; once
    well-formed again it is followed as before (its end is one transition reply)."""
    clock = Clock()
    p = poller(harness, clock)
    task = harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    p.run_cycle()
    harness.parts.deliverer.drain()  # type: ignore[union-attr]
    harness.sim.set_extra(task, {"status": None})

    for minutes in (1, 50, 15, 120):
        clock.now += timedelta(minutes=minutes)
        result = p.run_cycle()
        assert PROD in result.malformed
        assert result.commit.deliveries == []
        assert harness.parts.store.tasks_of(PROD)[task].status == "EXECUTING"
    assert harness.parts.store.get_meta("missing_since") == {}

    harness.sim.clear_extra(task)
    clock.now += timedelta(minutes=1)
    assert p.run_cycle().commit.deliveries == []
    harness.sim.set_status(task, "SUCCESS")
    clock.now += timedelta(minutes=1)
    p.run_cycle()
    harness.parts.deliverer.drain()  # type: ignore[union-attr]

    replies = [m.text or "" for m in harness.slack.messages(ALERTS) if m.thread_ts is not None]
    assert len(replies) == 1
    assert "EXECUTING → SUCCESS" in replies[0]
    assert harness.parts.store.tasks_of(PROD)[task].status == "SUCCESS"
