"""Issue 11: the cost of usual durations and of the task report at 100,000 stored tasks, on
both stores (ms, median of several runs).

The store is filled with 100,000 finished tasks over 30 days (1,000 instances x 100, four task
names, one in ten FAILED) and their duration samples, as poll cycles would have left them.
Then, on each store:

- ``duration_stats`` of the four names: what a cycle pays when it names a usual duration or
  checks for stuck tasks (at most once per cycle);
- a ``commit_cycle`` of 10 finishing tasks with and without their duration samples: the upkeep
  of the usual durations per cycle;
- ``task_report`` over 7 days (about 23,000 tasks), over 30 days (all 100,000), and over 7 days
  of one instance, each with the Slack message rendered.

Run alone: ``python benchmarks/bench_stats.py [--quick]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import BenchResult, Table, Target, pg_url, script_main
from bot.slack.report import report_message
from state.base import CycleCommit, DurationSample, TaskRecord
from state.postgres import PostgresStore
from state.sqlite import SqliteStore
from state.stats import record_seconds

T0 = datetime(2025, 3, 1, tzinfo=UTC)
NAMES = ("EXTEND", "BindEip", "AddWhitelist", "modify")
SCOPE = "bench-project"
REPEATS = 7
#: Milliseconds a cycle may spend on usual durations (lookup + upkeep) on either store.
CYCLE_TARGET_MS = 50

Store = SqliteStore | PostgresStore


def instance_id(i: int) -> str:
    """A stable instance ID."""
    return str(uuid.UUID(int=i + 1, version=4))


def finished(i: int, j: int, per_instance: int, *, at: datetime = T0) -> TaskRecord:
    """Task ``j`` of instance ``i``: created over the 30 days before ``at``, 2 to 12 minutes
    long, one in ten FAILED."""
    created = at - timedelta(days=30) * (j + 0.5) / per_instance - timedelta(minutes=i % 60)
    took = timedelta(minutes=2 + (i * 7 + j * 3) % 11)
    status = "FAILED" if (i + j) % 10 == 0 else "SUCCESS"
    name = NAMES[(i + j) % len(NAMES)]
    end = created + took
    return TaskRecord(
        instance_id(i),
        f"t-{i:04d}-{j:04d}",
        name,
        status,
        created,
        end,
        created,
        end,
        task={"id": f"t-{i:04d}-{j:04d}", "name": name, "status": status},
    )


def sample(record: TaskRecord) -> DurationSample:
    """The duration sample the cycle that saw ``record`` finish wrote."""
    seconds = record_seconds(record)
    assert seconds is not None
    assert record.finished_at is not None
    return DurationSample(SCOPE, record.name, record.task_id, seconds, record.finished_at)


def fill(store: Store, instances: int, per_instance: int) -> None:
    """Every task and its sample, 10,000 per commit, oldest first as cycles would have."""
    batch: list[TaskRecord] = []
    for j in reversed(range(per_instance)):
        for i in range(instances):
            batch.append(finished(i, j, per_instance))
            if len(batch) == 10_000:
                store.commit_cycle(CycleCommit(tasks=batch, durations=[sample(r) for r in batch]))
                batch = []
    if batch:
        store.commit_cycle(CycleCommit(tasks=batch, durations=[sample(r) for r in batch]))


def timed(action: Callable[[], Any], repeats: int = REPEATS) -> float:
    """Median wall time of ``action`` in milliseconds (after one warm-up run)."""
    action()
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def measure_store(store: Store, instances: int, per_instance: int) -> dict[str, float]:
    """The figures of one filled store, in ms."""
    names = {instance_id(i): f"cache-{i:04d}" for i in range(instances)}
    figures: dict[str, float] = {}
    figures["stats"] = timed(lambda: store.duration_stats(SCOPE, NAMES))
    counter = iter(range(10**9))

    def commit(with_samples: bool) -> None:
        n = next(counter)
        at = T0 + timedelta(seconds=n)
        records = [finished(i, 10_000 + n, per_instance, at=at) for i in range(10)]
        samples = [sample(r) for r in records] if with_samples else []
        store.commit_cycle(CycleCommit(tasks=records, durations=samples))

    figures["commit_plain"] = timed(lambda: commit(False))
    figures["commit_samples"] = timed(lambda: commit(True))
    for key, since, one in (
        ("report_7d", timedelta(days=7), None),
        ("report_30d", timedelta(days=31), None),
        ("report_one", timedelta(days=7), instance_id(3)),
    ):

        def report(since: timedelta = since, one: str | None = one) -> None:
            result = store.task_report(T0 - since, one)
            report_message(result, names, since=since)

        figures[key] = timed(report, repeats=3 if key == "report_30d" else REPEATS)
    figures["tasks"] = float(instances * per_instance)
    return figures


def measure(instances: int = 1000, per_instance: int = 100) -> dict[str, dict[str, float]]:
    """Fill and measure an SQLite file and a PostgreSQL schema (skipped when unreachable)."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        lite = SqliteStore(Path(scratch) / "stats.sqlite")
        try:
            fill(lite, instances, per_instance)
            out["sqlite"] = measure_store(lite, instances, per_instance)
        finally:
            lite.close()
    url = pg_url()
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error:
        return out
    schema = f"bench_stats_{uuid.uuid4().hex[:8]}"
    pg = PostgresStore(url, schema=schema)
    try:
        fill(pg, instances, per_instance)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("ANALYZE {}.tasks").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("ANALYZE {}.duration_samples").format(sql.Identifier(schema)))
        out["postgres"] = measure_store(pg, instances, per_instance)
    finally:
        pg.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return out


ROWS = (
    ("stats", "usual durations of 4 names (duration_stats)"),
    ("commit_plain", "commit of 10 finished tasks, no samples"),
    ("commit_samples", "commit of 10 finished tasks + their samples"),
    ("report_7d", "report, 7 days (~23% of tasks), rendered"),
    ("report_30d", "report, all 30 days, rendered"),
    ("report_one", "report, 7 days of one instance, rendered"),
)


def report(m: dict[str, dict[str, float]]) -> BenchResult:
    """The table and the target: usual durations cost a cycle little on either store."""
    stores = [s for s in ("sqlite", "postgres") if s in m]
    tasks = int(next(iter(m.values()))["tasks"]) if m else 0
    table = Table(
        f"usual durations and the report at {tasks:,} stored tasks (ms, median)",
        ["operation", *stores],
    )
    for key, label in ROWS:
        table.rows.append([label, *(f"{m[s][key]:.1f}" for s in stores)])
    targets = []
    for s in stores:
        upkeep = m[s]["stats"] + max(0.0, m[s]["commit_samples"] - m[s]["commit_plain"])
        targets.append(
            Target(
                f"stats: usual durations per cycle, {s}",
                f"{upkeep:.1f} ms",
                f"< {CYCLE_TARGET_MS} ms",
                upkeep < CYCLE_TARGET_MS,
            )
        )
    notes = [
        "per cycle = duration_stats + (commit with samples - commit without); the report is "
        "on demand (a slash command, a schedule), not per cycle"
    ]
    if "postgres" not in m:
        notes.append("PostgreSQL not reachable at TEST_DATABASE_URL: its column is missing")
    return BenchResult("stats", [table], targets, notes)


def run(quick: bool) -> BenchResult:
    """The benchmark: 100,000 tasks (2,000 with ``--quick``)."""
    return report(measure(100, 20) if quick else measure())


if __name__ == "__main__":
    sys.exit(script_main("stats", run, sys.argv[1:]))
