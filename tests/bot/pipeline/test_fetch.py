"""Tests for bot.pipeline.fetch: the window each instance is read over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.pipeline.fetch import clock_offset, window_start
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


@pytest.mark.parametrize(
    ("dcs_ahead", "used"),
    [
        (None, None),  # DCS did not say its time
        (timedelta(seconds=-0.8), None),  # Date's whole seconds and the answer's way: noise
        (timedelta(seconds=4), None),
        (timedelta(seconds=5), timedelta(seconds=5)),
        (timedelta(minutes=-20), timedelta(minutes=-20)),
        (timedelta(minutes=20), timedelta(minutes=20)),
        (timedelta(hours=23), timedelta(hours=23)),
        (timedelta(days=-400), None),  # a Date of 1970, or a proxy's: not a clock
    ],
)
def test_clock_offset_is_used_past_noise_and_within_reason(
    dcs_ahead: timedelta | None, used: timedelta | None
) -> None:
    """DCS's clock minus the bot's is used when it is at least 5 s and at most a day."""
    dcs_time = T0 + dcs_ahead if dcs_ahead is not None else None
    assert clock_offset(dcs_time, T0) == used
