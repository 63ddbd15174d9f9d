"""The StateStore contract for mutes, usual durations, stuck marks, reports and once-keys,
run against both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from state.base import (
    CycleCommit,
    DurationSample,
    Mute,
    MutedAlert,
    NewDelivery,
    StateStore,
    TaskRecord,
)
from state.postgres import PostgresStore
from state.stats import MAX_SAMPLES
from tests.state.conftest import T0, AnyStore, StoreFactory
from tests.state.test_contract import INSTANCE, OTHER, record


def mute(**changes: Any) -> Mute:
    """A one-hour mute of every instance from T0."""
    base = Mute(
        id=0,
        instance="*",
        starts_at=T0,
        ends_at=T0 + timedelta(hours=1),
        names=("EXTEND",),
        reason="planned resize",
        created_by="U1",
        channel="C1",
    )
    return replace(base, **changes)


def held(
    mute_id: int, task_id: str = "t1", status: str = "EXECUTING", channel: str = "C1"
) -> MutedAlert:
    """An alert held back by a mute."""
    return MutedAlert(mute_id, channel, INSTANCE, task_id, "EXTEND", status, "cache-prod")


def test_add_mute_gives_ids_and_lists_it(store: StateStore) -> None:
    """add_mute returns the mute with a new ID; mutes lists it field for field, by ID."""
    first = store.add_mute(mute())
    second = store.add_mute(mute(instance=INSTANCE, names=(), reason=""))
    assert first.id > 0
    assert second.id != first.id
    assert first == mute(id=first.id)
    assert store.mutes() == [first, second]


def test_end_mute_moves_the_end_once(store: StateStore) -> None:
    """end_mute ends a running mute at the given time, by the given user; a second call, an
    unknown ID or a mute already over give None."""
    m = store.add_mute(mute())
    at = T0 + timedelta(minutes=10)
    ended = store.end_mute(m.id, at, "U2")
    assert ended is not None
    assert (ended.ends_at, ended.ended_by) == (at, "U2")
    assert not ended.active(at)
    assert store.end_mute(m.id, at + timedelta(minutes=1), "U2") is None
    assert store.end_mute(999_999, at, "U2") is None
    assert store.mutes() == [ended]  # ended, not yet summarized


def test_held_alerts_keep_the_latest_status_per_task_and_channel(store: StateStore) -> None:
    """A cycle's held alerts are upserted by (mute, channel, task), latest status winning."""
    m = store.add_mute(mute())
    store.commit_cycle(CycleCommit(muted=[held(m.id), held(m.id, "t2"), held(m.id, channel="C2")]))
    store.commit_cycle(CycleCommit(muted=[held(m.id, status="FAILED")]))
    assert store.muted_alerts(m.id) == [
        held(m.id, status="FAILED"),
        held(m.id, "t2"),
        held(m.id, channel="C2"),
    ]
    assert store.muted_alerts(m.id + 1) == []


def test_summarized_mutes_leave_the_list(store: StateStore) -> None:
    """A mute marked summarized in a cycle's commit is listed only with include_summarized."""
    m = store.add_mute(mute())
    store.commit_cycle(CycleCommit(mutes_summarized=[m.id]))
    assert store.mutes() == []
    [kept] = store.mutes(include_summarized=True)
    assert (kept.id, kept.summarized) == (m.id, True)


def test_prune_forgets_old_summarized_mutes(store: StateStore) -> None:
    """Pruning drops summarized mutes that ended before the cut, with their held alerts."""
    old = store.add_mute(mute())
    running = store.add_mute(mute())
    store.commit_cycle(CycleCommit(muted=[held(old.id)], mutes_summarized=[old.id]))
    store.prune(T0 + timedelta(days=1))
    assert [m.id for m in store.mutes(include_summarized=True)] == [running.id]
    assert store.muted_alerts(old.id) == []


def sample(
    task_id: str,
    seconds: float,
    name: str = "EXTEND",
    scope: str = "P",
    finished_at: datetime = T0,
) -> DurationSample:
    """A duration sample of project P finished at T0 (or as given)."""
    return DurationSample(scope, name, task_id, seconds, finished_at)


def test_duration_stats_are_nearest_rank_percentiles(store: StateStore) -> None:
    """Count, p50 and p95 per name and scope; a resent sample replaces its first value."""
    samples = [sample(f"t{i}", float(i)) for i in range(1, 21)]
    store.commit_cycle(CycleCommit(durations=samples[:10]))
    store.commit_cycle(CycleCommit(durations=[*samples[10:], sample("t1", 1.0)]))
    store.commit_cycle(CycleCommit(durations=[sample("x", 99.0, name="BindEip", scope="Q")]))
    stats = store.duration_stats("P", ["EXTEND", "BindEip", "never"])
    assert set(stats) == {"EXTEND"}
    assert (stats["EXTEND"].count, stats["EXTEND"].p50, stats["EXTEND"].p95) == (20, 10.0, 19.0)
    assert store.duration_stats("Q", ["BindEip"])["BindEip"].count == 1
    assert store.duration_stats("P", []) == {}


def test_duration_stats_use_the_newest_samples(store: StateStore) -> None:
    """At most MAX_SAMPLES of the newest samples count; pruning drops old ones."""
    old = [sample(f"o{i}", 1000.0, finished_at=T0 - timedelta(days=40)) for i in range(5)]
    new = [sample(f"n{i}", 10.0, finished_at=T0 + timedelta(seconds=i)) for i in range(MAX_SAMPLES)]
    store.commit_cycle(CycleCommit(durations=old + new))
    stats = store.duration_stats("P", ["EXTEND"])["EXTEND"]
    assert (stats.count, stats.p95) == (MAX_SAMPLES, 10.0)
    store.commit_cycle(CycleCommit(durations=[sample("late", 5.0, finished_at=T0)]))
    store.prune(T0 - timedelta(days=30))
    assert store.duration_stats("P", ["EXTEND"])["EXTEND"].count <= MAX_SAMPLES


def test_stuck_marks_are_remembered_until_the_task_is_pruned(store: StateStore) -> None:
    """stuck_marked answers which tasks were warned; pruning the task forgets its mark."""
    done = record("t1", status="SUCCESS", finished_at=T0)
    store.commit_cycle(CycleCommit(tasks=[done, record("t2")], stuck=[(INSTANCE, "t1")]))
    store.commit_cycle(CycleCommit(stuck=[(INSTANCE, "t2"), (INSTANCE, "t2")]))
    wanted = {(INSTANCE, "t1"), (INSTANCE, "t2"), (OTHER, "t1")}
    assert store.stuck_marked(wanted) == {(INSTANCE, "t1"), (INSTANCE, "t2")}
    assert store.stuck_marked(set()) == set()
    store.prune(T0 + timedelta(seconds=1))
    assert store.stuck_marked(wanted) == {(INSTANCE, "t2")}


def test_task_report_counts_per_name_and_failing_instances(store: StateStore) -> None:
    """The report counts tasks started since the time, by name, with durations of the
    finished ones, and the instances with the most failures; one instance narrows it."""
    start = T0 - timedelta(minutes=10)

    def done(task_id: str, status: str, minutes: int, instance: str = INSTANCE) -> TaskRecord:
        return record(
            task_id,
            instance_id=instance,
            status=status,
            created_at=start,
            updated_at=start + timedelta(minutes=minutes),
            finished_at=start + timedelta(minutes=minutes),
        )

    tasks = [
        done("a", "SUCCESS", 2),
        done("b", "SUCCESS", 4),
        done("c", "FAILED", 6, OTHER),
        done("d", "FAILED", 8),
        done("e", "FAILED", 1, OTHER),
        record("f", name="BindEip"),  # still running
        record("old", created_at=T0 - timedelta(days=9), status="SUCCESS", finished_at=T0),
    ]
    store.commit_cycle(CycleCommit(tasks=tasks))
    report = store.task_report(T0 - timedelta(days=7))
    assert report.total == 6
    extend, bind = report.rows
    assert (extend.name, extend.count, extend.succeeded, extend.failed) == ("EXTEND", 5, 2, 3)
    assert (extend.p50, extend.p95) == (240.0, 480.0)
    assert (bind.name, bind.count, bind.p50) == ("BindEip", 1, None)
    assert report.failures == ((OTHER, 2), (INSTANCE, 1))
    one = store.task_report(T0 - timedelta(days=7), INSTANCE)
    assert (one.total, one.failures) == (4, ((INSTANCE, 1),))
    assert store.task_report(T0).total == 0


def test_enqueue_once_appends_the_first_time_only(make_store: StoreFactory) -> None:
    """Two stores on the same state: the first enqueue_once of a key appends its deliveries,
    every later one (here from the other process) appends nothing."""
    first: AnyStore = make_store()
    delivery = NewDelivery("post", "C1", "weekly report")
    assert first.enqueue_once("report:2024-05-06T08:00", [delivery]) is True
    if isinstance(first, PostgresStore):
        second: AnyStore = make_store()
    else:  # one SQLite file has one process: a reopened store stands for the restart
        first.close()
        second = make_store()
    assert second.enqueue_once("report:2024-05-06T08:00", [delivery]) is False
    assert second.enqueue_once("report:2024-05-13T08:00", []) is True
    assert [d.text for d in second.pending_deliveries(T0)] == ["weekly report"]


@pytest.mark.parametrize("since_days", [7])
def test_report_of_nothing_is_empty(store: StateStore, since_days: int) -> None:
    """A store without tasks reports nothing."""
    report = store.task_report(T0 - timedelta(days=since_days))
    assert (report.rows, report.failures, report.total) == ((), (), 0)
