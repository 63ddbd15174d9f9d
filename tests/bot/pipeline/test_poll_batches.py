"""Tests for the batches of bot.pipeline.poll: each batch of instances is fetched, diffed and
committed on its own; a crash between two batches loses nothing and duplicates nothing."""

from __future__ import annotations

from typing import Any

import pytest

from bot.pipeline.poll import Poller
from bot.testing.simulator import DcsSimulator
from state.base import CycleCommit, StateStore
from tests.conftest import ALERTS, Harness

IDS = [f"{n}{n}{n}{n}{n}{n}{n}{n}-1111-4111-8111-111111111111" for n in range(2, 6)]


class CrashingStore:
    """The real store, but the process "dies" (raises) at the ``crash_at``-th commit_cycle,
    before that commit is written."""

    def __init__(self, store: StateStore, crash_at: int) -> None:
        self._store, self._crash_at, self.commits = store, crash_at, 0

    def commit_cycle(self, commit: CycleCommit) -> None:
        self.commits += 1
        if self.commits == self._crash_at:
            raise SystemExit("killed between two batches")
        self._store.commit_cycle(commit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def poller(h: Harness, store: Any, batch_size: int) -> Poller:
    """The harness's DCS client and watched list over ``store``, in batches."""
    return Poller(
        h.parts.dcs,
        store,
        h.parts.watched,
        alert_channel=ALERTS,
        lookback=h.settings.lookback,
        batch_size=batch_size,
    )


@pytest.fixture
def four(harness: Harness) -> DcsSimulator:
    """Four more instances, each with one running task (each announced once)."""
    for n, iid in enumerate(IDS):
        harness.sim.add_instance(f"cache-{n}", instance_id=iid)
        harness.sim.add_task(iid, "EXTEND", "EXECUTING")
    harness.parts.watched.resolve(force=True)
    return harness.sim


def posts_by_task(h: Harness) -> dict[str, int]:
    """How many post deliveries the outbox holds for each task."""
    counts: dict[str, int] = {}
    for delivery in h.parts.store.pending_deliveries(h.parts.poller._clock(), limit=1000):
        if delivery.kind == "post" and delivery.task_id:
            counts[delivery.task_id] = counts.get(delivery.task_id, 0) + 1
    return counts


def test_batches_commit_one_by_one_and_the_cycle_sees_every_instance(
    harness: Harness, four: DcsSimulator
) -> None:
    """Five instances in batches of two: three commits, every running task announced once."""
    store = CrashingStore(harness.parts.store, crash_at=0)
    result = poller(harness, store, batch_size=2).run_cycle()

    assert store.commits == 3
    assert result.ok
    assert result.instances == 5
    assert sorted(posts_by_task(harness).values()) == [1, 1, 1, 1]
    assert harness.parts.store.get_meta("last_success_at") is not None


def test_a_crash_between_batches_loses_nothing_and_duplicates_nothing(
    harness: Harness, four: DcsSimulator
) -> None:
    """Killed at the second batch's commit: the first batch stays committed, the rest is read
    again next cycle from its old cursors; each running task is announced exactly once."""
    crashing = CrashingStore(harness.parts.store, crash_at=2)
    with pytest.raises(SystemExit):
        poller(harness, crashing, batch_size=2).run_cycle()
    committed = len(harness.parts.store.cursors())
    assert committed == 2  # only the first batch: atomic per batch
    assert harness.parts.store.get_meta("last_success_at") is None

    poller(harness, harness.parts.store, batch_size=2).run_cycle()

    assert len(harness.parts.store.cursors()) == 5
    assert sorted(posts_by_task(harness).values()) == [1, 1, 1, 1]
