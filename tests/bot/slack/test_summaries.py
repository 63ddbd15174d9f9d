"""Tests for bot.slack.summaries and bot.slack.report: mute summaries, stuck warnings and the
report stay inside Slack's limits and escape what comes from DCS or users."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.slack.blocks import MAX_BLOCKS, MAX_SECTION_TEXT, MAX_TEXT, units
from bot.slack.render import Message
from bot.slack.report import report_message
from bot.slack.summaries import mute_summary, stuck_warning, usually
from state.base import DurationStats, Mute, MutedAlert, ReportRow, TaskReport

T0 = datetime(2025, 12, 1, 9, tzinfo=UTC)
MUTE = Mute(3, "*", T0, T0 + timedelta(hours=1), reason="<!channel> & co", created_by="U1")


def within_limits(message: Message) -> None:
    """At most 50 blocks, each section and the fallback within their limits."""
    assert len(message.blocks) <= MAX_BLOCKS
    assert units(message.text) <= MAX_TEXT
    for block in message.blocks:
        if block["type"] == "section" and "text" in block:
            assert units(block["text"]["text"]) <= MAX_SECTION_TEXT


def test_a_summary_of_hundreds_of_failures_stays_within_limits() -> None:
    """500 FAILED tasks: as many named as fit, then "and N more FAILED"; the reason escaped."""
    held = [
        MutedAlert(3, "C1", "i", f"task-{n:04d}" + "x" * 40, "EXTEND", "FAILED", "cache-prod")
        for n in range(500)
    ]
    message = mute_summary(MUTE, held, {}, now=T0)
    within_limits(message)
    dumped = json.dumps(message.blocks)
    assert "more FAILED" in dumped
    assert "&lt;!channel&gt; &amp; co" in dumped
    assert "<!channel>" not in dumped


def test_usual_durations_need_five_samples() -> None:
    """The note appears from 5 samples on, with the median."""
    assert usually(None) == ""
    assert usually(DurationStats(4, 240, 600)) == ""
    assert usually(DurationStats(5, 240, 600)) == " (usually 4m)"


def test_the_stuck_warning_reads_like_the_interface() -> None:
    """``still EXECUTING after 47m, usually 4m (p95 of 23)``."""
    message = stuck_warning("EXTEND", "executing", 47 * 60, DurationStats(23, 120, 240))
    assert "Modifying specifications still EXECUTING after 47m, usually 4m (p95 of 23)" in (
        message.text
    )


def test_a_report_of_many_names_stays_within_limits() -> None:
    """300 task names: the report keeps to 50 blocks and says how many names are left out."""
    rows = tuple(ReportRow(f"Name{n}" + "y" * 80, 3, 2, 1, 60.0, 120.0) for n in range(300))
    report = TaskReport(rows, (("i1", 300),))
    message = report_message(report, {"i1": "cache-<prod>"}, since=timedelta(days=7))
    within_limits(message)
    dumped = json.dumps(message.blocks)
    assert "more task names" in dumped
    assert "cache-&lt;prod&gt;" in dumped
