"""Tests for bot.pipeline.durations: samples and usual durations are kept per project."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.dcs.models import Instance, Task
from bot.pipeline.changes import Change
from bot.pipeline.detect import Reason
from bot.pipeline.durations import finished_samples, finishing, usual_durations
from bot.testing.simulator import format_time
from state.base import CycleCommit, DurationSample
from state.sqlite import SqliteStore

T0 = datetime(2025, 12, 1, 9, tzinfo=UTC)
EU = Instance("i-eu", "cache", project_id="p-eu", region="eu-de")
NL = Instance("i-nl", "cache", project_id="p-nl", region="eu-nl")
ONE = Instance("i-one", "cache")


def change(instance: Instance, minutes: int, status: str = "SUCCESS") -> Change:
    """A task of ``instance`` that finished after ``minutes``, first seen finished."""
    created = T0 - timedelta(minutes=minutes)
    task = Task.from_json(
        instance.instance_id,
        {
            "id": f"{instance.instance_id}-{minutes}",
            "name": "EXTEND",
            "status": status,
            "created_at": format_time(created),
            "updated_at": format_time(T0),
        },
    )
    return Change(Reason.BASELINE, task, instance, None)


def test_samples_belong_to_their_instance_project() -> None:
    """A finished task's sample is in its instance's project; one project alone uses the
    poller's scope; an unfinished task gives none."""
    samples = finished_samples(
        [change(EU, 4), change(NL, 9), change(ONE, 2), change(EU, 5, "EXECUTING")], "p-one", T0
    )
    assert [(s.scope, s.seconds) for s in samples] == [
        ("p-eu", 240.0),
        ("p-nl", 540.0),
        ("p-one", 120.0),
    ]


def test_usual_durations_are_read_per_project(tmp_path: Path) -> None:
    """Two projects with the same task name keep apart usual durations, by instance."""
    store = SqliteStore(tmp_path / "s.sqlite")
    try:
        store.commit_cycle(
            CycleCommit(
                durations=[DurationSample("p-eu", "EXTEND", f"e{i}", 60.0, T0) for i in range(5)]
                + [DurationSample("p-nl", "EXTEND", f"n{i}", 600.0, T0) for i in range(5)]
            )
        )
        usual = usual_durations(store, [(EU, "EXTEND"), (NL, "EXTEND"), (ONE, "EXTEND")], "x")
        assert usual["i-eu"]["EXTEND"].p50 == 60.0
        assert usual["i-nl"]["EXTEND"].p50 == 600.0
        assert usual["i-one"] == {}
        assert usual_durations(store, [], "x") == {}
        assert finishing([change(EU, 4)]) == []  # a baseline change sends no reply
    finally:
        store.close()
