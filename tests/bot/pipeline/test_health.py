"""Tests for bot.pipeline.health: the /healthz verdict from what the poller recorded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.pipeline.health import PUBLIC_FIELDS, ReadinessProbe, health_report, public_view
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
        "last_cycle_seconds": None,
        "cycle_overran": None,
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


# --- the public view and the readiness probe ------------------------------------------------------

SECRET_ERROR = "poll cycle: DcsUnavailableError: HTTP 503 on /v2/proj-1/instances/11111111/tasks"


@pytest.mark.parametrize(
    ("error_at", "success_at", "failed"),
    [
        (None, ago(10), False),
        (ago(5), ago(10), True),
        (ago(10), ago(5), False),
        (ago(5), None, True),
    ],
)
def test_public_view_says_whether_the_last_cycle_failed_never_why(
    error_at: datetime | None, success_at: datetime | None, failed: bool
) -> None:
    report = {
        "status": "ok",
        "last_success_at": success_at.isoformat() if success_at else None,
        "last_error": {"at": error_at.isoformat(), "message": SECRET_ERROR} if error_at else None,
        "pending_deliveries": 2,
        "deliveries_failing": 1,
        "version": "1.2.3",
        "poll_interval": 60,
    }

    code, body = public_view(200, report)

    assert code == 200
    assert body["last_cycle_failed"] is failed
    assert set(body) == set(PUBLIC_FIELDS)
    assert "proj-1" not in str(body)
    assert "503" not in str(body)


def test_probe_answers_fresh_when_the_check_is_quick() -> None:
    probe = ReadinessProbe(lambda: (200, {"status": "ok"}), timeout=5)

    assert probe() == (200, {"status": "ok"})


def test_probe_answers_stale_503_when_the_check_hangs_and_runs_one_check_at_a_time() -> None:
    release = threading.Event()
    calls: list[int] = []

    def check() -> tuple[int, dict[str, Any]]:
        calls.append(1)
        if len(calls) > 1:
            release.wait(30)  # the database stopped answering
        return 200, {"status": "ok", "pending_deliveries": 3}

    probe = ReadinessProbe(check, timeout=0.2)
    try:
        assert probe() == (200, {"status": "ok", "pending_deliveries": 3})
        for _ in range(3):
            code, body = probe()
            assert code == 503
            assert body == {"status": "state_unavailable", "stale": True, "pending_deliveries": 3}
        assert len(calls) == 2
    finally:
        release.set()


def test_probe_turns_an_unexpected_error_into_503() -> None:
    def check() -> tuple[int, dict[str, Any]]:
        raise RuntimeError("boom at /v2/proj-1")

    code, body = ReadinessProbe(check, timeout=5)()

    assert code == 503
    assert body == {"status": "error"}
