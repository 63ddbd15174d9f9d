"""Tests for bot.pipeline.health: the /healthz verdict from what the poller recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.pipeline.health import health_report
from bot.slack.channels import FAILING_KEY
from state.base import CycleCommit, NewDelivery
from state.sqlite import SqliteStore

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
INTERVAL = 60


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A real SQLite state store."""
    s = SqliteStore(tmp_path / "state.sqlite")
    yield s
    s.close()


def ago(seconds: float) -> datetime:
    """NOW minus ``seconds``."""
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("last_success", "started", "code", "status"),
    [
        (ago(10), ago(3600), 200, "ok"),
        (ago(179), ago(3600), 200, "ok"),
        (ago(180), ago(3600), 503, "late"),
        (ago(3600), ago(3600), 503, "late"),
        (None, ago(10), 200, "starting"),
        (None, ago(179), 200, "starting"),
        (None, ago(180), 503, "late"),
        # a success from before this start (a restart with old state): the first is still due
        (ago(7200), ago(30), 200, "starting"),
        (ago(7200), ago(600), 503, "late"),
    ],
)
def test_healthy_while_the_last_success_is_younger_than_three_intervals(
    store: SqliteStore,
    last_success: datetime | None,
    started: datetime,
    code: int,
    status: str,
) -> None:
    """200 while the last success (or, before one, the start) is younger than 3 intervals."""
    if last_success is not None:
        store.set_meta("last_success_at", last_success.isoformat())
    got, body = health_report(
        store, poll_interval=INTERVAL, started_at=started, now=NOW, version="1.2.3"
    )
    assert (got, body["status"]) == (code, status)


def test_the_body_carries_every_fact(store: SqliteStore) -> None:
    """The JSON has last success, last error, pending and failing deliveries (a count of the
    channels the bot cannot post to, never their IDs), version and poll interval."""
    store.set_meta("last_success_at", ago(5).isoformat())
    store.set_meta("last_error", {"at": ago(65).isoformat(), "message": "DCS 503"})
    store.commit_cycle(CycleCommit(deliveries=[NewDelivery("post", "C1", "hi")] * 2))
    store.set_meta(
        FAILING_KEY, {"C0GONE": {"error": "not_in_channel", "since": ago(9).isoformat()}}
    )
    code, body = health_report(
        store, poll_interval=INTERVAL, started_at=ago(999), now=NOW, version="1.2.3"
    )
    assert code == 200
    assert body == {
        "status": "ok",
        "last_success_at": ago(5).isoformat(),
        "last_error": {"at": ago(65).isoformat(), "message": "DCS 503"},
        "pending_deliveries": 2,
        "deliveries_failing": 1,
        "version": "1.2.3",
        "poll_interval": INTERVAL,
    }


@pytest.mark.parametrize("value", ["yesterday", 12345, {"x": 1}, ""])
def test_a_malformed_last_success_counts_as_none(store: SqliteStore, value: Any) -> None:
    """A last_success_at that is not an ISO time is treated as no success yet."""
    store.set_meta("last_success_at", value)
    code, body = health_report(
        store, poll_interval=INTERVAL, started_at=ago(3600), now=NOW, version="1"
    )
    assert (code, body["last_success_at"]) == (503, None)


def test_a_naive_time_counts_as_utc(store: SqliteStore) -> None:
    """A last_success_at without a zone is read as UTC."""
    store.set_meta("last_success_at", ago(30).replace(tzinfo=None).isoformat())
    code, _ = health_report(
        store, poll_interval=INTERVAL, started_at=ago(3600), now=NOW, version="1"
    )
    assert code == 200


def test_an_unreadable_store_is_unhealthy(tmp_path: Path) -> None:
    """When the state cannot be read (here: a closed store), /healthz says 503."""
    store = SqliteStore(tmp_path / "state.sqlite")
    store.close()
    code, body = health_report(store, poll_interval=INTERVAL, started_at=NOW, now=NOW, version="1")
    assert (code, body["status"]) == (503, "state_unavailable")
