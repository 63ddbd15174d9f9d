"""Tests for bot.demo: the scripted story runs through the real pipeline and tells itself."""

from __future__ import annotations

from rich.console import Console

from bot.demo import run_demo


def test_the_demo_tells_its_story_through_the_real_pipeline() -> None:
    """Baseline, a resize that succeeds (usually 4m), a failed switchover broadcast, a digest, a
    mute and its summary, a stuck warning, the scheduled report, a quiet cycle."""
    console = Console(record=True, width=120)

    assert run_demo(console, pause=0) == 0

    shown = console.export_text()
    assert "Removing IP addresses" in shown
    assert "EXECUTING → SUCCESS" in shown
    assert "EXECUTING → FAILED" in shown
    assert "also sent to the channel" in shown
    assert "12 new DCS tasks" in shown
    assert "(no Slack calls)" in shown
    assert "(usually 4m)" in shown
    assert "It held back 1 alert: 1 FAILED." in shown
    assert "failover test, OPS-42" in shown
    assert "still EXECUTING after 4m 30s, usually 1m (p95 of 6)" in shown
    assert "DCS tasks in the last 7d" in shown
    # History from before the first cycle is recorded silently, never posted (only counted in
    # the report).
    alerts = shown.split("DCS_REPORT_SCHEDULE")[0]
    assert "Changing the port" not in alerts
