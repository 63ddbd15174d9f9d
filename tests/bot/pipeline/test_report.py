"""The scheduled report: the cron slot it belongs to, once per slot across pollers and
restarts (PostgreSQL and SQLite), and the post it makes over loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger

from bot.pipeline.report import ScheduledReport, latest_fire_time
from state.base import CycleCommit, TaskRecord
from state.postgres import PostgresStore
from tests.bot.pipeline.conftest import PROD, Clock, ClockedBot
from tests.conftest import ALERTS
from tests.postgres import PgSchema

MONDAY_8 = datetime(2025, 12, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "slot"),
    [
        (MONDAY_8 - timedelta(minutes=1), None),
        (MONDAY_8, MONDAY_8),
        (MONDAY_8 + timedelta(minutes=59), MONDAY_8),
        (MONDAY_8 + timedelta(minutes=61), None),  # missed by more than the grace
        (MONDAY_8 + timedelta(days=7, seconds=5), MONDAY_8 + timedelta(days=7)),
    ],
)
def test_latest_fire_time(now: datetime, slot: datetime | None) -> None:
    """The slot of ``0 8 * * MON`` (UTC) that is due at ``now``, within an hour's grace."""
    trigger = CronTrigger.from_crontab("0 8 * * MON", timezone=UTC)
    assert latest_fire_time(trigger, now, timedelta(hours=1)) == slot


def test_two_pollers_on_postgres_enqueue_one_report_per_slot(pg_schema: PgSchema) -> None:
    """Two processes on one database both try at 08:00 (and again after a restart at 08:20):
    one report is enqueued; the next Monday gets its own."""
    clock = Clock(MONDAY_8 + timedelta(seconds=3))
    stores = [PostgresStore(pg_schema.url, schema=pg_schema.name, clock=clock) for _ in range(2)]
    try:
        reports = [ScheduledReport(s, "0 8 * * MON", ALERTS, clock=clock) for s in stores]
        assert sorted(r.run() for r in reports) == [False, True]
        clock.advance(minutes=20)
        stores[0].close()
        stores[0] = PostgresStore(pg_schema.url, schema=pg_schema.name, clock=clock)
        again = ScheduledReport(stores[0], "0 8 * * MON", ALERTS, clock=clock)
        assert again.run() is False
        assert stores[1].count_pending() == 1
        clock.advance(days=7)
        assert reports[1].run() is True
        assert stores[0].count_pending() == 2
    finally:
        for store in stores:
            store.close()


def test_the_scheduled_report_is_posted_once_across_a_restart(clocked: ClockedBot) -> None:
    """At the scheduled time the runner's tick posts the week's report to the alert channel;
    after a restart within the same slot nothing more is posted."""
    start = clocked.clock() - timedelta(days=1)
    clocked.parts.store.commit_cycle(
        CycleCommit(
            tasks=[
                TaskRecord(PROD, "t1", "EXTEND", "FAILED", start, start, start, start),
                TaskRecord(PROD, "t2", "EXTEND", "SUCCESS", start, start, start, start),
            ]
        )
    )
    schedule = f"{clocked.clock().minute} {clocked.clock().hour} * * *"

    def tick() -> None:
        report = ScheduledReport(clocked.parts.store, schedule, ALERTS, clock=clocked.clock)
        clocked.parts.report = report
        runner = clocked.parts.runner()
        runner.tick()

    tick()
    [post] = clocked.posts()
    assert post["channel"] == ALERTS
    assert "DCS tasks in the last 7d on all watched instances: 2 tasks, 1 failed" in post["text"]
    assert "Most failures: *cache-prod* 1" in str(post["blocks"])
    clocked.restart()
    clocked.clock.advance(minutes=10)
    tick()
    assert len(clocked.posts()) == 1
