"""Tests for bot.pipeline.schedule: the runner polls when it holds the lease, stands by otherwise,
never dies on an error, and hands over when the poller stops.
Real SQLite file, simulator, fake Slack."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from bot.dcs.client import TaskListing
from bot.pipeline.poll import Poller
from bot.pipeline.schedule import PollRunner
from bot.pipeline.watch import WatchedInstances
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from state.sqlite import SqliteStore
from tests.conftest import ALERTS, Harness
from tests.faultproxy import FaultProxy
from tests.postgres import PgSchema
from tests.waiting import wait_until

PROD = "11111111-1111-4111-8111-111111111111"


def task_requests(h: Harness) -> int:
    return sum(1 for r in h.sim.requests if r.path.endswith("/tasks"))


def test_a_tick_polls_and_delivers_when_it_holds_the_lease(harness: Harness) -> None:
    """tick = one cycle, then a drain: a new task reaches Slack in the same tick."""
    runner = harness.parts.runner()
    runner.tick()
    harness.sim.add_task(PROD, "EXTEND", "EXECUTING")

    result = runner.tick()

    assert result is not None
    assert result.ok
    assert runner.is_leader
    assert len(harness.slack_calls("chat.postMessage")) == 1
    runner.stop()


def test_a_tick_stands_by_while_another_process_polls(harness: Harness) -> None:
    """With the state file's poller lock held elsewhere, tick polls no task; it only keeps the
    watched list this process's handlers read."""
    other = SqliteStore(harness.state)
    assert other.acquire_poller("someone-else")
    try:
        runner = harness.parts.runner()
        assert runner.tick() is None
        assert not runner.is_leader
        assert task_requests(harness) == 0
        assert sum(1 for r in harness.sim.requests if r.path.endswith("/instances")) == 1
        assert [i.name for i in harness.parts.watched.current()] == ["cache-prod"]
        assert sum(1 for r in harness.sim.requests if r.path.endswith("/instances")) == 1
    finally:
        other.close()


class Exploding:
    """A task source that fails in a way the poller does not expect."""

    def read_tasks(
        self, instance_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> object:
        raise RuntimeError("boom")


def test_a_tick_never_raises_and_records_the_error(harness: Harness) -> None:
    """An unexpected failure in a cycle is logged and kept as last_error; the runner lives on."""
    parts = harness.parts
    assert parts.deliverer is not None
    broken = Poller(
        Exploding(),  # type: ignore[arg-type]  # a stand-in for DCS, on purpose
        parts.store,
        WatchedInstances(parts.dcs, ()),
        alert_channel="C0ALERTS",
        lookback=parts.settings.lookback,
    )
    runner = PollRunner(broken, parts.deliverer, parts.store, owner="me", interval=60)

    assert runner.tick() is None

    error = parts.store.get_meta("last_error")
    assert "boom" in error["message"]
    runner.stop()


def test_a_started_runner_polls_at_once_and_stops_releasing_the_lock(harness: Harness) -> None:
    """start() polls immediately; stop() ends the scheduler and frees the lock for another."""
    harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    runner = harness.parts.runner()
    runner.start()
    try:
        wait_until(lambda: len(harness.slack_calls("chat.postMessage")) == 1, "the first post")
    finally:
        runner.stop()
    other = SqliteStore(harness.state)
    try:
        assert other.acquire_poller("next")
    finally:
        other.close()


def test_a_standby_takes_over_when_the_poller_stops(harness: Harness) -> None:
    """A runner that stood by becomes the poller soon after the lock is freed, and polls."""
    other = SqliteStore(harness.state)
    assert other.acquire_poller("first")
    runner = PollRunner(
        harness.parts.poller,
        harness.parts.deliverer,  # type: ignore[arg-type]  # built with Slack in the harness
        harness.parts.store,
        owner="second",
        interval=3,
    )
    runner.start()
    try:
        time.sleep(0.5)
        assert task_requests(harness) == 0
        other.release_poller("first")
        wait_until(
            lambda: runner.is_leader and task_requests(harness) > 0, "the standby to poll", 5
        )
    finally:
        runner.stop()
        other.close()


class Usurped:
    """DCS as the poller sees it while it pauses mid-cycle: during the fetch, another process
    takes the lease (the lock file was deleted, a new poller locked a new one)."""

    def __init__(self, dcs: Poller, state: Path) -> None:
        self._dcs, self._state = dcs, state
        self.usurper: SqliteStore | None = None

    def read_tasks(self, instance_id: str, **window: datetime | None) -> TaskListing:
        if self.usurper is None:
            Path(f"{self._state}.lock").unlink()
            self.usurper = SqliteStore(self._state)
            assert self.usurper.acquire_poller("usurper")
        listing: TaskListing = self._dcs.read_tasks(instance_id, **window)  # type: ignore[attr-defined]
        return listing


def test_a_poller_that_lost_the_lease_mid_cycle_writes_and_sends_nothing(
    harness: Harness,
) -> None:
    """Fencing: a cycle that began under the lease but ends after another process took it
    commits nothing, claims no delivery, posts nothing, and the runner stands down naming why."""
    harness.sim.add_task(PROD, "EXTEND", "EXECUTING")
    parts = harness.parts
    assert parts.deliverer is not None
    source = Usurped(parts.dcs, harness.state)  # type: ignore[arg-type]
    poller = Poller(
        source,  # type: ignore[arg-type]  # the real DCS client behind a pause
        parts.store,
        parts.watched,
        alert_channel="C0ALERTS",
        lookback=parts.settings.lookback,
    )
    runner = PollRunner(poller, parts.deliverer, parts.store, owner="me", interval=60)

    assert runner.tick() is None

    assert runner.last_failure is not None
    assert runner.last_failure.startswith("lost the poller lease")
    assert not runner.is_leader
    assert harness.slack_calls() == []
    assert source.usurper is not None
    assert source.usurper.tasks_of(PROD) == {}
    assert source.usurper.count_pending() == 0
    source.usurper.close()
    runner.stop()


@pytest.mark.slow  # a drill: real pool timeouts through the fault proxy
@pytest.mark.postgres
def test_changes_made_while_the_database_restarts_are_alerted_once_when_it_is_back(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path, pg_schema: PgSchema
) -> None:
    """PostgreSQL goes away (every connection cut, new ones refused) while a task fails and
    another starts: ticks fail with a state error and the runner lives on; once the database is
    back, the next tick alerts each change exactly once, and the tick after that nothing."""
    pg_schema.create()
    proxy = FaultProxy.for_url(pg_schema.url)
    proxy.start()
    url = PgSchema(proxy.url(pg_schema.url), pg_schema.name).search_path_url
    simulator.add_instance("cache-prod", instance_id=PROD)
    resize = simulator.add_task(PROD, "EXTEND", "EXECUTING")
    h = Harness(simulator, slack, tmp_path / "unused.sqlite", DATABASE_URL=url)
    runner = h.parts.runner()
    try:
        assert runner.tick() is not None
        proxy.down()
        simulator.set_status(resize, "FAILED")
        simulator.add_task(PROD, "BindEip", "EXECUTING")
        for _ in range(2):
            started = time.monotonic()
            assert runner.tick() is None
            assert time.monotonic() - started < 15  # the promise: a state error, not a hang
            assert runner.last_failure is not None
            assert runner.last_failure.startswith("state: PostgreSQL")
        assert len(h.slack_calls("chat.postMessage")) == 1

        proxy.up()
        result = wait_until(runner.tick, "a tick once the database is back")
        assert result.ok
        runner.tick()

        texts = [m.text or "" for m in slack.messages(ALERTS)]
        assert sum("EXECUTING → FAILED" in t for t in texts) == 1
        assert sum("Enabling public access" in t for t in texts) == 1
        assert len(h.slack_calls("chat.update")) == 1
        assert h.parts.store.count_pending() == 0
    finally:
        runner.stop()
        h.close()
        proxy.close()
