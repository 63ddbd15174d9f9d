"""Duration statistics both stores share: nearest-rank percentiles and a report from rows."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from state.base import DurationStats, ReportRow, TaskRecord, TaskReport

#: Most recent samples kept per kind of task for its usual duration.
MAX_SAMPLES = 1000
#: Instances listed under "most failures" in a report.
TOP_FAILING = 5


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 1) of sorted, non-empty values
    (PostgreSQL's ``percentile_disc``)."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summarize(seconds: Iterable[float]) -> DurationStats | None:
    """Count, p50 and p95 of durations; None when there are none."""
    ordered = sorted(seconds)
    if not ordered:
        return None
    return DurationStats(len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.95))


def task_seconds(
    created_at: datetime | None,
    updated_at: datetime | None,
    first_seen_at: datetime,
    finished_at: datetime | None,
) -> float | None:
    """How long a finished task took: DCS's ``updated_at - created_at``, else first seen to
    finished by the bot; None while unfinished."""
    if finished_at is None:
        return None
    if created_at is not None and updated_at is not None and updated_at >= created_at:
        return (updated_at - created_at).total_seconds()
    return max(0.0, (finished_at - first_seen_at).total_seconds())


def record_seconds(record: TaskRecord) -> float | None:
    """:func:`task_seconds` of a stored task."""
    return task_seconds(
        record.created_at, record.updated_at, record.first_seen_at, record.finished_at
    )


def report_of(rows: Iterable[tuple[str, str, str, float | None]]) -> TaskReport:
    """A report from (instance ID, name, status, seconds or None) of each task."""
    counts: Counter[str] = Counter()
    ok: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    durations: dict[str, list[float]] = defaultdict(list)
    failing: Counter[str] = Counter()
    for instance_id, name, status, seconds in rows:
        counts[name] += 1
        if status == "SUCCESS":
            ok[name] += 1
        elif status == "FAILED":
            failed[name] += 1
            failing[instance_id] += 1
        if seconds is not None:
            durations[name].append(seconds)
    report_rows = []
    for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        stats = summarize(durations.get(name, ()))
        report_rows.append(
            ReportRow(
                name,
                count,
                ok[name],
                failed[name],
                stats.p50 if stats else None,
                stats.p95 if stats else None,
            )
        )
    top = sorted(failing.items(), key=lambda item: (-item[1], item[0]))[:TOP_FAILING]
    return TaskReport(tuple(report_rows), tuple(top))
