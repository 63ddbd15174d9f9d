"""The task report (``/dcs-tasks report`` and DCS_REPORT_SCHEDULE): per task name how many ran,
succeeded and failed with p50/p95 durations, then the instances with the most failures. One
line per name, no tables, so that it reads on a phone; inside Slack's limits."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from bot.slack.blocks import MAX_BLOCKS, MAX_TEXT, context, esc, fit, packed_sections, section
from bot.slack.render import Message, format_duration, task_label
from state.base import ReportRow, TaskReport

#: Task names a report lists (the most run first); a phone reads no more.
MAX_NAMES = 30


def span(since: timedelta) -> str:
    """A period as typed: ``7d``, ``24h``, ``90m``."""
    seconds = int(since.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size and (unit != "d" or seconds > 86400):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _row_line(row: ReportRow) -> str:
    label = task_label(row.name)
    name = f"*{esc(label)}*" + (f" ({esc(row.name)})" if label != row.name else "")
    parts = [f"{row.count} ran", f"{row.succeeded} :white_check_mark:"]
    parts.append(f"{row.failed} :x:" if row.failed else "0 failed")
    if row.p50 is not None and row.p95 is not None:
        parts.append(f"p50 {format_duration(row.p50)} · p95 {format_duration(row.p95)}")
    return f"{name}\n" + " · ".join(parts)


def report_message(
    report: TaskReport,
    names: Mapping[str, str],
    *,
    since: timedelta,
    instance: str | None = None,
) -> Message:
    """The report as a message; ``instance`` (a display name) when it covers one instance."""
    where = f"*{esc(instance)}*" if instance else "all watched instances"
    failed = sum(row.failed for row in report.rows)
    noun = "task" if report.total == 1 else "tasks"
    head = f":bar_chart: DCS tasks in the last {span(since)} on {where}: {report.total} {noun}"
    if report.total:
        head += f", {failed} failed"
    blocks = [section(head)]
    sections, listed = packed_sections(
        (_row_line(row) for row in report.rows[:MAX_NAMES]),
        budget=MAX_BLOCKS - 3,  # the head, the failures, "and N more"
        separator="\n\n",
    )
    blocks += [section(text) for text in sections]
    if listed < len(report.rows):
        blocks.append(context(f"… and {len(report.rows) - listed} more task names"))
    if report.failures:
        worst = " · ".join(f"*{esc(names.get(iid, iid))}* {n}" for iid, n in report.failures)
        blocks.append(section(f":rotating_light: Most failures: {worst}"))
    elif report.total:
        blocks.append(context("No task failed."))
    else:
        blocks.append(context("No task started in this period."))
    text_lines = [head.replace("*", "")]
    text_lines += [
        f"{task_label(r.name)}: {r.count} ran, {r.succeeded} ok, {r.failed} failed"
        for r in report.rows[:10]
    ]
    return Message(fit("\n".join(text_lines), MAX_TEXT), blocks)
