"""Tests for a poll cycle that overruns the poll interval: said in the log, in /readyz (as
facts, no text) and in `/dcs-tasks status`; over loopback HTTP with the simulator."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from bot.pipeline.health import health_report, public_view
from bot.pipeline.poll import Poller
from handlers.commands.replies import bot_status
from tests.conftest import ALERTS, Harness


class Ticking:
    """A monotonic clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def poller(h: Harness, *, step: float, interval: float) -> Poller:
    """The harness's DCS client, store and watched list, with a clock that ticks ``step``."""
    return Poller(
        h.parts.dcs,
        h.parts.store,
        h.parts.watched,
        alert_channel=ALERTS,
        lookback=h.settings.lookback,
        interval=interval,
        monotonic=Ticking(step),
    )


def test_a_cycle_longer_than_the_interval_is_reported_everywhere(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """The log warns, /readyz says cycle_overran, and status explains that ticks are skipped."""
    caplog.set_level(logging.WARNING, logger="bot.pipeline.poll")
    poller(harness, step=100.0, interval=60.0).run_cycle()

    assert any("longer than the poll interval" in r.getMessage() for r in caplog.records)
    now = datetime.now(UTC)
    code, report = health_report(
        harness.parts.store, poll_interval=60, started_at=now, now=now, version="t"
    )
    assert public_view(code, report)[1]["cycle_overran"] is True
    status = bot_status(code, report, started_at=now)
    assert "longer than the poll interval" in status.text


def test_a_cycle_within_the_interval_is_not_an_overrun(harness: Harness) -> None:
    """A cycle that ends in time reports its duration and no overrun."""
    poller(harness, step=1.0, interval=60.0).run_cycle()

    now = datetime.now(UTC)
    code, report = health_report(
        harness.parts.store, poll_interval=60, started_at=now, now=now, version="t"
    )
    assert report["cycle_overran"] is False
    assert isinstance(report["last_cycle_seconds"], float)
    assert "longer than the poll interval" not in bot_status(code, report, started_at=now).text
