"""Issue 6, "state" (and issue 5's "cycle commit time for 1,000 instances on SQLite vs
PostgreSQL"): 100,000 tracked tasks (1,000 instances x 100), on both stores.

Each phase runs in a fresh subprocess so that its peak RSS is its own (``VmHWM``; ``ru_maxrss``
where there is no /proc):

- ``fill``: setup, not a bot figure: 100 tasks per instance seen over 30 days, committed
  10 instances per ``commit_cycle``. The 4 newest of each instance (the 24 h window a cycle
  fetches) are still running: 4,000 unfinished tasks.
- ``steady --changes K``: the real ``Poller.run_cycle`` over an in-memory DCS (the network left
  out) and the store wrapped in a timer: ``open_tasks(every instance)``, the fetch,
  ``tasks_by_id({instance: fetched IDs})``, the merge, diff, render, ``commit_cycle``. One
  warm-up cycle (nothing changed; the poller's first hourly ``prune``), then ``CYCLES`` measured
  cycles in each of which ``K`` running tasks finish (quiet, 10, 0.1 %, 1 %). Afterwards the
  phase is undone (its tasks running again, its deliveries delivered) so that every rate starts
  from the same state.
- ``prune``: 60 simulated days, 3,334 new tasks a day (100,000 per 30-day retention window)
  and one ``prune`` a day: the number of tasks and the size on disk stay flat.

Run alone: ``python benchmarks/bench_state.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import sql

import bot.wiring  # noqa: F401  # what a bot process has imported, for a fair RSS baseline
from bot.dcs.client import TaskListing
from bot.dcs.models import Instance, Task
from bot.pipeline.changes import Change, diff, to_record
from bot.pipeline.detect import Reason
from bot.pipeline.poll import Poller
from bot.pipeline.watch import WatchedInstances
from bot.testing.simulator import DETAIL_KEYS, format_time
from state.base import CycleCommit, InstanceCursor, StateStore, TaskRecord
from state.postgres import PostgresStore
from state.sqlite import SqliteStore

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    ALERT_CHANNEL,
    BenchResult,
    Table,
    Target,
    mb,
    median,
    pg_url,
    script_main,
)

#: "Now" of the simulated bot: fixed, so every run writes the same data.
T0 = datetime(2025, 3, 1, tzinfo=UTC)
RETENTION = timedelta(days=30)
LOOKBACK = timedelta(hours=24)
#: Tasks per instance in the 24 h window (created every 7.2 h): those a cycle fetches.
RECENT = 4
#: Measured cycles per change rate (after one warm-up cycle).
CYCLES = 4
NAMES = ("EXTEND", "BindEip", "AddWhitelist", "modify")
RSS_TARGET_MB = 150
COMMIT_TARGET_MS = 50


@dataclass(frozen=True)
class Rate:
    """How many running tasks finish in each measured cycle; ``stress``: information only."""

    key: str
    label: str
    changes: int
    stress: bool = False


def default_rates(total: int) -> list[Rate]:
    """Quiet, 10 changes, 0.1 % (where the commit target is judged) and 1 % (stress)."""
    return [
        Rate("quiet", "quiet", 0),
        Rate("ten", "10 changes", 10),
        Rate("busy", f"0.1% ({total // 1000:,})", total // 1000),
        Rate("stress", f"1% ({total // 100:,}) stress*", total // 100, stress=True),
    ]


#: The rate on which the commit target is judged.
TARGET_RATE = "busy"


# -- data ---------------------------------------------------------------------------------------


def instance_ids(n: int) -> list[str]:
    """``n`` stable instance IDs."""
    return [str(uuid.UUID(int=i + 1, version=4)) for i in range(n)]


def make_task(
    instance_id: str, task_id: str, j: int, status: str, created: datetime, updated: datetime
) -> Task:
    """A task as the simulator (and DCS) sends it."""
    name = NAMES[j % len(NAMES)]
    details: dict[str, Any] = dict.fromkeys(DETAIL_KEYS)
    if name == "EXTEND":
        details |= {"old_capacity": "1", "new_capacity": "2"}
    data = {
        "id": task_id,
        "name": name,
        "details": details,
        "user_name": "dcs_operator",
        "user_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "params": None,
        "status": status,
        "created_at": format_time(created),
        "updated_at": format_time(updated),
        "enable_show": name == "EXTEND",
    }
    return Task.from_json(instance_id, data)


def seeded_task(instance_id: str, i: int, j: int, tasks: int, *, finished: bool = False) -> Task:
    """Task ``j`` (0 = newest) of instance ``i``: spread over 30 days; the ``RECENT`` newest
    are EXECUTING until a steady cycle finishes them."""
    created = T0 - RETENTION * j / tasks
    running = j < RECENT and not finished
    status = "EXECUTING" if running else "SUCCESS"
    updated = created if running else created + timedelta(minutes=5)
    return make_task(instance_id, f"{i:08x}{j:024x}", j, status, created, updated)


def finishing_order(n: int, changes: int) -> list[int]:
    """The running tasks a steady phase finishes, ``changes`` per cycle, in order: slots
    ``i * RECENT + j`` (task ``j`` of instance ``i``), spread over the instances, the same
    every run."""
    slots = n * RECENT
    if changes * CYCLES > slots:
        raise ValueError(f"{changes} changes x {CYCLES} cycles > {slots} running tasks")
    return random.Random(n).sample(range(slots), changes * CYCLES)


def _instance(instance_id: str, i: int) -> Instance:
    return Instance(instance_id, f"cache-{i:04d}")


def _cursor(instance: Instance, now: datetime) -> InstanceCursor:
    return InstanceCursor(instance.instance_id, instance.name, True, last_polled_at=now)


def _records(changes: Sequence[Change]) -> list[TaskRecord]:
    """Records of ``changes``, each first seen when its task was last updated."""
    return [to_record(change, change.task.updated_at or T0) for change in changes]


# -- the poll cycle's surroundings: DCS in memory, the store timed --------------------------------


class MemoryDcs:
    """The DCS side of a cycle in memory (this benchmark measures the store, not the network):
    the instances, and what each answers in the current cycle."""

    def __init__(self, instances: Sequence[Instance]) -> None:
        self.instances = list(instances)
        self.answers: dict[str, list[Task]] = {}

    def resolve_instances(self, wanted: Sequence[str]) -> list[Instance]:
        """Every instance (the bot's ``DCS_INSTANCES=*``)."""
        return list(self.instances)

    def read_tasks(
        self, instance_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> TaskListing:
        """The instance's tasks in this cycle's window."""
        return TaskListing(self.answers[instance_id])


@dataclass(frozen=True)
class Call:
    """One store call of a cycle: when it ran and how many records it returned."""

    name: str
    started: float
    ended: float
    records: int

    @property
    def seconds(self) -> float:
        """How long it took."""
        return self.ended - self.started


def _records_in(result: Any) -> int:
    """How many records a store call returned (a prune: how many it removed)."""
    if isinstance(result, dict):
        return sum(len(v) if isinstance(v, dict) else 1 for v in result.values())
    if isinstance(result, list):
        return len(result)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


class TimedStore:
    """The store a ``Poller`` is given here: passes every call on to the real store, and
    records when each ran and how many records it returned."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.calls: list[Call] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = method(*args, **kwargs)
            self.calls.append(Call(name, started, time.perf_counter(), _records_in(result)))
            return result

        return timed


# -- stores -------------------------------------------------------------------------------------


def open_store(backend: str, target: str) -> StateStore:
    """``target`` is the SQLite file, or the PostgreSQL schema."""
    if backend == "sqlite":
        return SqliteStore(target)
    return PostgresStore(pg_url(), schema=target)


def size_and_tasks(backend: str, target: str) -> tuple[int, int]:
    """Bytes on disk (SQLite: file + WAL; PostgreSQL: tables, indexes, TOAST) and tasks kept."""
    if backend == "sqlite":
        path = Path(target)
        wal = Path(f"{target}-wal")
        size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        lite = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = lite.execute(
                "SELECT COUNT(*) FROM state WHERE key >= 'task:' AND key < 'task;'"
            ).fetchone()
        finally:
            lite.close()
        return size, int(found[0])
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relkind = 'r'",
            (target,),
        ).fetchone()
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.tasks").format(sql.Identifier(target))
        ).fetchone()
    assert row is not None
    assert count is not None
    return int(row[0]), int(count[0])


def autovacuum_on() -> bool:
    """Whether the PostgreSQL server runs autovacuum."""
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
    return row is not None and row[0] == "on"


def autovacuum(schema: str) -> None:
    """What autovacuum does to the tasks table between two prunes a day apart (a day holds
    1,440 of its one-minute rounds): a plain VACUUM, so the space of pruned rows is reused."""
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM {}.tasks").format(sql.Identifier(schema)))


def drop_schema(schema: str) -> None:
    """Remove a benchmark's PostgreSQL schema."""
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# -- the phases (each in its own process) -------------------------------------------------------


def _ms(seconds: float) -> float:
    return seconds * 1000


def phase_fill(store: StateStore, n: int, tasks: int) -> dict[str, Any]:
    """Setup: every instance's tasks as the bot would have recorded them over 30 days."""
    ids = instance_ids(n)
    started = time.perf_counter()
    for first in range(0, n, 10):
        changes: list[Change] = []
        chunk = [_instance(ids[i], i) for i in range(first, min(n, first + 10))]
        for i, instance in enumerate(chunk, start=first):
            fetched = [seeded_task(instance.instance_id, i, j, tasks) for j in range(tasks)]
            changes += diff(instance, {}, fetched, baselined=True)
        store.commit_cycle(
            CycleCommit(tasks=_records(changes), cursors=[_cursor(c, T0) for c in chunk])
        )
    return {"seconds": time.perf_counter() - started}


def _answers(ids: Sequence[str], tasks: int, finished: Collection[int]) -> dict[str, list[Task]]:
    """What DCS answers each instance: its ``RECENT`` newest tasks, the ``finished`` slots done."""
    return {
        iid: [
            seeded_task(iid, i, j, tasks, finished=i * RECENT + j in finished)
            for j in range(RECENT)
        ]
        for i, iid in enumerate(ids)
    }


#: Store calls with a row of their own; the others (cursors, subscriptions) share one.
_OWN_ROWS = frozenset({"open_tasks", "tasks_by_id", "commit_cycle", "prune"})


def _poll(poller: Poller, timed: TimedStore) -> dict[str, Any]:
    """One ``Poller.run_cycle``, split into the store's calls, the (in-memory) fetch, and the
    poller's own work (merge, diff, render, records) which is the rest."""
    timed.calls.clear()
    started = time.perf_counter()
    result = poller.run_cycle()
    wall = time.perf_counter() - started
    calls = {c.name: c for c in timed.calls}
    assert len(calls) == len(timed.calls), "a store call made twice in one cycle"
    assert result.ok
    opened, by_id = calls["open_tasks"], calls["tasks_by_id"]
    fetch = by_id.started - opened.ended
    store = sum(c.seconds for c in timed.calls)
    other = sum(c.seconds for name, c in calls.items() if name not in _OWN_ROWS)
    return {
        "open_ms": _ms(opened.seconds),
        "by_id_ms": _ms(by_id.seconds),
        "other_read_ms": _ms(other),
        "read_ms": _ms(opened.seconds + by_id.seconds + other),
        "fetch_ms": _ms(fetch),
        "diff_ms": _ms(wall - store - fetch),
        "commit_ms": _ms(calls["commit_cycle"].seconds),
        "prune_ms": _ms(calls["prune"].seconds) if "prune" in calls else None,
        "pruned": calls["prune"].records if "prune" in calls else None,
        "open_read": opened.records,
        "by_id_read": by_id.records,
        "changed": sum(1 for c in result.changes if c.reason is Reason.STATUS_CHANGED),
        "recorded": len(result.commit.tasks),
        "deliveries": len(result.commit.deliveries),
    }


def phase_steady(store: StateStore, n: int, tasks: int, changes: int) -> dict[str, Any]:
    """A warm-up cycle with nothing new, then ``CYCLES`` cycles in each of which ``changes``
    running tasks finish; medians (and the commit's max) of the measured cycles."""
    ids = instance_ids(n)
    order = finishing_order(n, changes)
    dcs = MemoryDcs([_instance(iid, i) for i, iid in enumerate(ids)])
    timed = TimedStore(store)
    minutes = iter(range(1, CYCLES + 2))
    poller = Poller(
        dcs,
        cast(StateStore, timed),
        WatchedInstances(dcs, []),
        alert_channel=ALERT_CHANNEL,
        lookback=LOOKBACK,
        retention=RETENTION,
        clock=lambda: T0 + timedelta(minutes=next(minutes)),
    )
    dcs.answers = _answers(ids, tasks, ())
    warm = _poll(poller, timed)
    cycles = []
    for c in range(CYCLES):
        dcs.answers = _answers(ids, tasks, set(order[: (c + 1) * changes]))
        cycles.append(_poll(poller, timed))
    out: dict[str, Any] = {
        key: median([c[key] for c in cycles])
        for key in ("open_ms", "by_id_ms", "other_read_ms", "read_ms", "fetch_ms", "diff_ms")
    }
    out["commit_ms"] = median([c["commit_ms"] for c in cycles])
    out["commit_ms_max"] = max(c["commit_ms"] for c in cycles)
    out["warm_prune_ms"] = warm["prune_ms"]
    out["warm_pruned"] = warm["pruned"]
    for key in ("open_read", "by_id_read"):
        out[key] = [c[key] for c in cycles]
    for key in ("changed", "recorded", "deliveries"):
        out[key] = sorted({c[key] for c in cycles})
    return out


def undo_steady(store: StateStore, n: int, tasks: int, changes: int) -> None:
    """Setup, after the figures are taken: the tasks a steady phase finished run again and its
    deliveries are delivered, so that the next phase starts from the same state."""
    ids = instance_ids(n)
    reopened: list[Change] = []
    for slot in finishing_order(n, changes):
        i, j = divmod(slot, RECENT)
        instance = _instance(ids[i], i)
        reopened += diff(instance, {}, [seeded_task(ids[i], i, j, tasks)], baselined=True)
    store.commit_cycle(CycleCommit(tasks=_records(reopened)))
    while pending := store.pending_deliveries(T0 + timedelta(days=1), limit=1000):
        for delivery in pending:
            store.delivery_done(delivery.id)


def phase_prune(
    store: StateStore, backend: str, target: str, n: int, tasks: int, days: int
) -> dict[str, Any]:
    """``days`` simulated days of new tasks and daily pruning; size and tasks every 15 days."""
    ids = instance_ids(n)
    per_day = round(n * tasks / (RETENTION / timedelta(days=1)))
    size, count = size_and_tasks(backend, target)
    points = [{"day": 0, "tasks": count, "bytes": size, "pruned": 0}]
    pruned_total, prune_ms, serial = 0, [], 0
    for day in range(1, days + 1):
        now = T0 + timedelta(days=day)
        changes = []
        for k in range(per_day):
            i = serial % n
            created = now - timedelta(seconds=k)
            instance = _instance(ids[i], i)
            task = make_task(
                ids[i], f"d{day:05d}{k:026x}", k, "SUCCESS", created, created + timedelta(minutes=5)
            )
            changes += diff(instance, {}, [task], baselined=True)
            serial += 1
        store.commit_cycle(CycleCommit(tasks=_records(changes)))
        started = time.perf_counter()
        pruned = store.prune(now - RETENTION)
        prune_ms.append(_ms(time.perf_counter() - started))
        pruned_total += pruned
        if backend == "postgres":
            autovacuum(target)
        if day % 15 == 0 or day == days:
            size, count = size_and_tasks(backend, target)
            points.append({"day": day, "tasks": count, "bytes": size, "pruned": pruned_total})
    return {"per_day": per_day, "points": points, "prune_ms": median(prune_ms)}


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _peak_rss_kb() -> int:
    """This process's peak RSS. ``VmHWM`` where there is /proc: Linux carries ``ru_maxrss``
    over fork and exec, so a child of a big parent would report the parent's peak."""
    hwm = _status_kb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(argv: Sequence[str]) -> int:
    """``--child PHASE``: run one phase in this process; print its figures and peak RSS."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", required=True, choices=("fill", "steady", "prune"))
    parser.add_argument("--backend", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--instances", type=int, required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--changes", type=int, default=0)
    args = parser.parse_args(argv)
    rss_start = _status_kb("VmRSS") or 0
    store = open_store(args.backend, args.target)
    try:
        if args.child == "fill":
            out = phase_fill(store, args.instances, args.tasks)
        elif args.child == "steady":
            out = phase_steady(store, args.instances, args.tasks, args.changes)
        else:
            out = phase_prune(
                store, args.backend, args.target, args.instances, args.tasks, args.days
            )
        out["rss_start_kb"] = rss_start
        out["peak_rss_kb"] = _peak_rss_kb()
        if args.child == "steady":
            undo_steady(store, args.instances, args.tasks, args.changes)
    finally:
        store.close()
    print(json.dumps(out))
    return 0


# -- the parent ---------------------------------------------------------------------------------


def _run_phase(
    phase: str, backend: str, target: str, n: int, tasks: int, days: int, changes: int = 0
) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", phase, "--backend", backend,
           "--target", target, "--instances", str(n), "--tasks", str(tasks),
           "--days", str(days), "--changes", str(changes)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{backend} {phase} failed: {tail[:300]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure(
    *,
    backend: str,
    instances: int,
    tasks: int,
    days: int = 60,
    rates: Sequence[Rate] | None = None,
) -> dict[str, Any]:
    """Every phase on one backend (``sqlite`` or ``postgres``), one steady phase per rate
    (``default_rates`` when None); ``error`` when it cannot run."""
    rates = default_rates(instances * tasks) if rates is None else list(rates)
    out: dict[str, Any] = {
        "backend": backend,
        "instances": instances,
        "tasks": tasks,
        "days": days,
        "rates": [vars(r) for r in rates],
    }
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
        if backend == "sqlite":
            target = str(Path(tmp) / "state.sqlite")
        else:
            target = f"bench_state_{os.getpid()}"
            try:
                drop_schema(target)
            except psycopg.Error as exc:
                out["error"] = f"PostgreSQL unreachable: {str(exc).strip().splitlines()[0][:120]}"
                return out
        try:
            if backend == "postgres":
                out["autovacuum"] = autovacuum_on()
            out["fill"] = _run_phase("fill", backend, target, instances, tasks, days)
            out["after_fill"] = size_and_tasks(backend, target)
            out["steady"] = {
                r.key: _run_phase("steady", backend, target, instances, tasks, days, r.changes)
                for r in rates
            }
            out["after_steady"] = size_and_tasks(backend, target)
            out["prune"] = _run_phase("prune", backend, target, instances, tasks, days)
        finally:
            if backend == "postgres":
                drop_schema(target)
    return out


def _ms_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 9.95 else f"{value:.1f} ms"


def _kb_text(value: int) -> str:
    return f"{value / 1024:.0f} MB"


def _counts(values: Sequence[int]) -> str:
    """One figure, or the first and last of figures that moved from cycle to cycle."""
    return f"{values[0]:,}" if len(set(values)) == 1 else f"{values[0]:,} -> {values[-1]:,}"


def _steady_table(r: Mapping[str, Any], rates: Sequence[Rate]) -> Table:
    """One backend: one column per change rate."""
    n, tasks = r["instances"], r["tasks"]
    table = Table(
        f"state, {r['backend']}: {n * tasks:,} tracked tasks ({n:,} instances x {tasks}); "
        f"Poller.run_cycle, median of {CYCLES} cycles",
        ["figure", *[rate.label for rate in rates]],
    )

    def line(label: str, fn: Callable[[Mapping[str, Any]], str]) -> None:
        table.rows.append([label, *[fn(r["steady"][rate.key]) for rate in rates]])

    line("tasks finished per cycle", lambda s: _counts(s["changed"]))
    line("deliveries enqueued per cycle", lambda s: _counts(s["deliveries"]))
    line("read: open_tasks(every instance)", lambda s: _ms_text(s["open_ms"]))
    line("  records returned (first -> last cycle)", lambda s: _counts(s["open_read"]))
    line("read: tasks_by_id({instance: fetched})", lambda s: _ms_text(s["by_id_ms"]))
    line("  records returned", lambda s: _counts(s["by_id_read"]))
    line("read: other (cursors, subscriptions)", lambda s: _ms_text(s["other_read_ms"]))
    line("read: total", lambda s: _ms_text(s["read_ms"]))
    line("merge + diff + render (CPU, no store)", lambda s: _ms_text(s["diff_ms"]))
    line("commit_cycle, median", lambda s: _ms_text(s["commit_ms"]))
    line("commit_cycle, max", lambda s: _ms_text(s["commit_ms_max"]))
    line("peak RSS of the process", lambda s: _kb_text(s["peak_rss_kb"]))
    line("  RSS after imports", lambda s: _kb_text(s["rss_start_kb"]))
    line(
        "warm-up cycle: the hourly prune (pruned)",
        lambda s: f"{_ms_text(s['warm_prune_ms'])} ({s['warm_pruned']})",
    )
    line("(fetch, in memory, 32 threads)", lambda s: _ms_text(s["fetch_ms"]))
    return table


def report(results: Sequence[dict[str, Any]]) -> BenchResult:
    """Tables and targets from the figures of ``measure`` for each backend."""
    ok = [r for r in results if "error" not in r]
    result = BenchResult("state")
    if not ok:
        result.notes += [r["error"] for r in results]
        return result
    n, tasks = ok[0]["instances"], ok[0]["tasks"]
    total = n * tasks
    rates = [Rate(**rate) for rate in ok[0]["rates"]]
    for r in ok:
        result.tables.append(_steady_table(r, rates))
    result.tables[-1].notes += [
        f"* {rate.label.rstrip('*')}: a stress figure, for information only; the commit target"
        " is judged on the 0.1% column."
        for rate in rates
        if rate.stress
    ]
    result.tables[-1].notes += [
        "Each column is a fresh process running the real Poller over an in-memory DCS (no",
        f"network): {n:,} instances answer their {RECENT} newest tasks (the 24 h window), all",
        f"{n * RECENT:,} still running before the phase; in each cycle the column's number of",
        "them finish (an update + a thread reply each). Every cursor is written every cycle;",
        "the outbox is not drained between cycles. 'merge + diff + render' is the cycle's wall",
        "time minus the store's calls and the fetch. Peak RSS covers the warm-up and its prune.",
    ]  # fmt: skip

    setup = Table("state: setup, size and other phases", ["figure", *[r["backend"] for r in ok]])

    def line(label: str, fn: Callable[[Mapping[str, Any]], str]) -> None:
        setup.rows.append([label, *[fn(r) for r in ok]])

    line("setup: fill time (10 instances per commit)", lambda r: f"{r['fill']['seconds']:.1f} s")
    line("tasks after fill", lambda r: f"{r['after_fill'][1]:,}")
    line("size on disk after fill", lambda r: mb(r["after_fill"][0]))
    line("size on disk after the steady phases", lambda r: mb(r["after_steady"][0]))
    line("peak RSS, fill (setup)", lambda r: _kb_text(r["fill"]["peak_rss_kb"]))
    line(f"peak RSS, pruning {ok[0]['days']} days", lambda r: _kb_text(r["prune"]["peak_rss_kb"]))

    prune = Table(
        f"state: pruning keeps it flat ({ok[0]['prune']['per_day']:,} new tasks a day, retention "
        f"{RETENTION.days} days, one prune a day)",
        ["day", *[f"{r['backend']} tasks" for r in ok], *[f"{r['backend']} size" for r in ok]],
    )
    days = [p["day"] for p in ok[0]["prune"]["points"]]
    for k, day in enumerate(days):
        prune.rows.append(
            [str(day)]
            + [f"{r['prune']['points'][k]['tasks']:,}" for r in ok]
            + [mb(r["prune"]["points"][k]["bytes"]) for r in ok]
        )
    prune.notes.append(
        "prune time, median: "
        + ", ".join(f"{r['backend']} {r['prune']['prune_ms']:.0f} ms" for r in ok)
    )
    if any(r["backend"] == "postgres" for r in ok):
        state = "on" if ok[-1].get("autovacuum") else "off"
        prune.notes += [
            "postgres: a plain VACUUM of the tasks table after each simulated day stands in for",
            f"autovacuum (on at Heroku; {state} on this test server), which a run of seconds",
            "would not see; without it the dead rows of each prune are never reused.",
        ]
    result.tables += [setup, prune]
    for r in ok:
        result.targets += _targets(r, rates, total)
    for r in results:
        if "error" in r:
            result.notes.append(f"{r['backend']}: {r['error']}")
    return result


def _targets(r: Mapping[str, Any], rates: Sequence[Rate], total: int) -> list[Target]:
    """Peak RSS of the steady cycles (stress aside), the commit at 0.1 %, pruning flat."""
    b, steady = r["backend"], r["steady"]
    targets = []
    normal = [rate for rate in rates if not rate.stress]
    peak = max(steady[rate.key]["peak_rss_kb"] for rate in normal) / 1024
    targets.append(
        Target(
            f"{b}: peak RSS at {total:,} tasks (steady cycles)",
            f"{peak:.0f} MB",
            f"<= {RSS_TARGET_MB} MB",
            peak <= RSS_TARGET_MB,
        )
    )
    busy = next((rate for rate in rates if rate.key == TARGET_RATE), None)
    if busy is None:
        targets.append(Target(f"{b}: commit_cycle", "no 0.1% cycle run", "", None))
    else:
        commit = steady[busy.key]["commit_ms"]
        targets.append(
            Target(
                f"{b}: commit_cycle at {total:,} tasks, {busy.label} changes",
                f"{commit:.0f} ms (median)",
                f"<= {COMMIT_TARGET_MS} ms",
                commit <= COMMIT_TARGET_MS,
            )
        )
    points = r["prune"]["points"]
    if len(points) >= 3:
        mid, last = points[len(points) // 2], points[-1]
        growth = last["bytes"] / mid["bytes"] - 1 if mid["bytes"] else 0.0
        kept = last["tasks"] / mid["tasks"] - 1 if mid["tasks"] else 0.0
        targets.append(
            Target(
                f"{b}: pruning keeps it flat (day {mid['day']} -> {last['day']})",
                f"size {growth:+.0%}, tasks {kept:+.0%}",
                "within +-10%",
                abs(growth) <= 0.10 and abs(kept) <= 0.10,
            )
        )
    return targets


def run(quick: bool) -> BenchResult:
    """1,000 instances x 100 tasks on SQLite and PostgreSQL (100 x 100 with ``quick``)."""
    n, days = (100, 30) if quick else (1000, 60)
    return report(
        [measure(backend=b, instances=n, tasks=100, days=days) for b in ("sqlite", "postgres")]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/bench_state.py [--quick]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--child" in args:
        return child(args)
    return script_main("state", run, args)


if __name__ == "__main__":
    sys.exit(main())
