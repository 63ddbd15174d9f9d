"""Tests for bot.pipeline.fetch: the window each instance is read over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.pipeline.fetch import window_start
from state.base import TaskRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_window_start_is_the_earlier_of_lookback_and_oldest_unfinished() -> None:
    """Finished tasks never move the window; unfinished older ones do."""
    now = T0 + timedelta(days=10)
    finished = TaskRecord("i", "a", "EXTEND", "SUCCESS", T0, T0, T0, finished_at=T0)
    running = TaskRecord("i", "b", "EXTEND", "EXECUTING", T0 + timedelta(days=2), None, T0)

    assert window_start({}, now, timedelta(hours=24)) == now - timedelta(hours=24)
    assert window_start({"a": finished}, now, timedelta(hours=24)) == now - timedelta(hours=24)
    assert window_start({"b": running}, now, timedelta(hours=24)) == T0 + timedelta(days=2)


def test_window_start_follows_the_watermark_less_the_overlap() -> None:
    """With a watermark, the window starts before it by the overlap, whatever the local clock;
    an older unfinished task still opens it further."""
    now = T0 + timedelta(days=10)
    mark = T0 + timedelta(days=30)  # DCS's clock far ahead of ours: still followed
    running = TaskRecord("i", "b", "EXTEND", "EXECUTING", T0 + timedelta(days=2), None, T0)
    overlap = timedelta(minutes=5)

    assert window_start({}, now, timedelta(hours=24), watermark=mark, overlap=overlap) == (
        mark - overlap
    )
    assert window_start(
        {"b": running}, now, timedelta(hours=24), watermark=mark, overlap=overlap
    ) == T0 + timedelta(days=2)
