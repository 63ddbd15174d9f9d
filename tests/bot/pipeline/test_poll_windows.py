"""Tests for the incremental windows of bot.pipeline.poll/fetch: after an instance's first cycle,
DCS is asked only for tasks created since its watermark (DCS's newest created_at, minus an
overlap), plus the oldest unfinished task; over loopback HTTP with the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.dcs.client import format_dcs_time
from bot.pipeline.fetch import WATERMARK_OVERLAP
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.conftest import DCS_TOKEN, Harness

PROD = "11111111-1111-4111-8111-111111111111"


def starts(sim: DcsSimulator) -> list[str]:
    """The start_time of every task query the simulator received, oldest first."""
    return [r.query.get("start_time", "") for r in sim.requests if r.path.endswith("/tasks")]


def posted(h: Harness) -> list[str]:
    """The text of every new message the bot posted."""
    return [c.params["text"] for c in h.slack_calls("chat.postMessage")]


def test_after_the_first_cycle_only_tasks_since_the_watermark_are_asked_for(
    harness: Harness,
) -> None:
    """The quiet cycle's window starts at the newest task's created_at minus the overlap, not
    DCS_LOOKBACK ago: a day of history is not downloaded again."""
    sim = harness.sim
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    sim.add_tasks_bulk(PROD, 50, newest=newest, step=timedelta(minutes=20))
    harness.cycle()
    sim.clear_requests()

    harness.cycle()

    assert starts(sim) == [format_dcs_time(newest - WATERMARK_OVERLAP)]


def test_a_task_created_just_before_the_watermark_is_still_alerted(harness: Harness) -> None:
    """A task DCS lists late, with a created_at a little older than a task already seen, falls
    in the overlap and is announced."""
    sim = harness.sim
    seen = sim.add_task(PROD, "EXTEND", "SUCCESS")
    harness.cycle()
    created = sim._tasks[seen].created_at
    sim.add_task(PROD, "BindEip", "EXECUTING", created_at=created - timedelta(minutes=2))

    harness.cycle()

    assert len(posted(harness)) == 1
    assert "Enabling public access" in posted(harness)[0]


def test_a_long_task_finishing_days_later_is_followed_to_its_end(harness: Harness) -> None:
    """An unfinished task keeps the window open from its creation, however far the watermark
    has moved on: its end days later is alerted in its thread."""
    sim = harness.sim
    now = datetime.now(UTC)
    long_task = sim.add_task(PROD, "EXTEND", "EXECUTING", created_at=now - timedelta(hours=1))
    harness.cycle()
    sim.add_task(PROD, "BindEip", "SUCCESS", created_at=now + timedelta(days=3))
    harness.cycle()
    sim.set_status(long_task, "SUCCESS", updated_at=now + timedelta(days=3, hours=1))

    harness.cycle()

    replies = [c for c in harness.slack_calls("chat.postMessage") if c.params.get("thread_ts")]
    assert any("EXECUTING → SUCCESS" in c.params["text"] for c in replies)


@pytest.fixture
def behind() -> Iterator[DcsSimulator]:
    """A DCS whose clock is an hour behind the bot's (beyond the overlap)."""
    sim = DcsSimulator(
        project_id="proj-1",
        tokens=[DCS_TOKEN],
        clock=lambda: datetime.now(UTC) - timedelta(hours=1),
    )
    sim.start()
    sim.add_instance("cache-prod", instance_id=PROD)
    yield sim
    sim.stop()


def test_a_bot_clock_ahead_of_dcs_misses_nothing(
    behind: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """The window follows DCS's created_at values, not the bot's clock: with the bot an hour
    ahead, a task DCS creates between two cycles is announced."""
    behind.add_task(PROD, "EXTEND", "SUCCESS")
    h = Harness(behind, slack, tmp_path / "s.sqlite", DCS_LOOKBACK="90m")
    try:
        h.cycle()
        behind.add_task(PROD, "BindEip", "EXECUTING")
        h.cycle()
        assert len(posted(h)) == 1
    finally:
        h.close()


def test_the_watermark_survives_a_restart(harness: Harness) -> None:
    """After a restart the stored watermark is used at once, and a task created while the bot
    was down is announced."""
    sim = harness.sim
    seen = sim.add_task(PROD, "EXTEND", "SUCCESS")
    harness.cycle()
    harness.restart()
    sim.add_task(PROD, "BindEip", "EXECUTING")
    sim.clear_requests()

    harness.cycle()

    created = sim._tasks[seen].created_at
    assert starts(sim) == [format_dcs_time(created - WATERMARK_OVERLAP)]
    assert len(posted(harness)) == 1
