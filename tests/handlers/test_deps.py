"""Tests for handlers.deps: finding watched instances and tasks, live from DCS or remembered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from state.base import CycleCommit, InstanceCursor, TaskRecord
from tests.handlers.conftest import ATTEMPTS, PROD_ID, STAGE_ID, SlackStack


def test_find_instance_by_id_or_name_in_any_case(stack: SlackStack) -> None:
    """An instance is found by its ID, or its name in any case; others are None."""
    deps = stack.deps
    assert deps.find_instance(PROD_ID) is not None
    found = deps.find_instance("Cache-Stage")
    assert found is not None
    assert found.instance_id == STAGE_ID
    assert deps.find_instance("cache") is None


def test_instance_name_falls_back_to_the_cursor(stack: SlackStack) -> None:
    """An instance no longer watched is named from the poller's cursor, else None."""
    stack.store.commit_cycle(CycleCommit(cursors=[InstanceCursor("gone-id", "old-cache", True)]))
    assert stack.deps.instance_name(PROD_ID) == "cache-prod"
    assert stack.deps.instance_name("gone-id") == "old-cache"
    assert stack.deps.instance_name("never") is None


def test_fetch_task_asks_from_just_before_its_creation(stack: SlackStack) -> None:
    """The DCS query window starts shortly before the known creation time (old tasks are found)."""
    created = datetime.now(UTC) - timedelta(days=20)
    task_id = stack.sim.add_task(PROD_ID, "EXTEND", "SUCCESS", created_at=created)
    assert stack.deps.fetch_task(PROD_ID, task_id) is None  # outside DCS_LOOKBACK (24h)
    task = stack.deps.fetch_task(PROD_ID, task_id, created_at=created)
    assert task is not None
    assert task.id == task_id


def test_lookup_prefers_dcs_and_falls_back_to_the_record(stack: SlackStack) -> None:
    """A remembered task is read live from DCS; when DCS fails, the record is used, with why."""
    task_id = stack.sim.add_task(PROD_ID, "EXTEND", "SUCCESS", params="secret")
    now = datetime.now(UTC)
    record = TaskRecord(
        PROD_ID,
        task_id,
        "EXTEND",
        "EXECUTING",
        now,
        now,
        now,
        task={"id": task_id, "name": "EXTEND", "status": "EXECUTING", "params": "leaked"},
    )
    stack.store.commit_cycle(CycleCommit(tasks=[record]))
    live = stack.deps.lookup_task(task_id)
    assert live.live
    assert live.task is not None
    assert live.task.status == "SUCCESS"

    stack.sim.inject("500", count=ATTEMPTS)
    fallback = stack.deps.lookup_task(task_id)
    assert not fallback.live
    assert fallback.problem is not None
    assert fallback.task is not None
    assert fallback.task.status == "EXECUTING"
    assert "params" not in fallback.task.to_json()


def test_lookup_of_an_unknown_task_searches_every_watched_instance(stack: SlackStack) -> None:
    """Without a record, each watched instance is searched; a failing one does not stop it."""
    task_id = stack.sim.add_task(STAGE_ID, "BindEip", "SUCCESS")
    stack.deps.watched()
    stack.sim.inject("500", count=ATTEMPTS, path_contains=PROD_ID)
    found = stack.deps.lookup_task(task_id)
    assert found.task is not None
    assert found.task.instance_id == STAGE_ID
    missing = stack.deps.lookup_task("nope")
    assert missing.task is None
    assert missing.problem is None
