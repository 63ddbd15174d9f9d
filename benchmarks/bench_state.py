"""Issue 6, "state" (and issue 5's "cycle commit time for 1,000 instances on SQLite vs
PostgreSQL"): 100,000 tracked tasks (1,000 instances x 100), on both stores.

Each phase runs in a fresh subprocess so that its peak RSS is its own (``VmHWM``; ``ru_maxrss``
where there is no /proc):

- ``fill``: setup, not a bot figure: 100 tasks per instance seen over 30 days, committed
  10 instances per ``commit_cycle``.
- ``steady``: poll cycles as ``Poller.run_cycle`` does them minus the network: read
  ``cursors()`` and ``tasks_of()`` of every instance, diff the fetched tasks (the 24 h window:
  the 4 newest of each instance), render, ``commit_cycle``. In each cycle one task per instance
  finishes: 1,000 changed tasks (1 %), 2,000 deliveries, 1,000 cursors. Then quiet commits
  (cursors and meta only). ``steady-by-id`` (run first, commits nothing) reads only the
  fetched tasks (``tasks_by_id``), to show what that would save.
- ``prune``: 60 simulated days, 3,334 new tasks a day (100,000 per 30-day retention window)
  and one ``prune`` a day: the number of tasks and the size on disk stay flat.

Run alone: ``python benchmarks/bench_state.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

import bot.wiring  # noqa: F401  # what a bot process has imported, for a fair RSS baseline
from bot.detect import Reason
from bot.models import Instance, Task
from bot.poll import Change, diff, plan_deliveries, to_record
from bot.simulator import DETAIL_KEYS, format_time
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
#: Tasks per instance in the 24 h window (created every 7.2 h): those a cycle fetches.
RECENT = 4
NAMES = ("EXTEND", "BindEip", "AddWhitelist", "modify")
RSS_TARGET_MB = 150
COMMIT_TARGET_MS = 50


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


def seeded_task(instance_id: str, i: int, j: int, tasks: int, finished_upto: int = -1) -> Task:
    """Task ``j`` (0 = newest) of instance ``i``: spread over 30 days; the ``RECENT`` newest
    are EXECUTING until a steady cycle finishes them (``j <= finished_upto``)."""
    created = T0 - RETENTION * j / tasks
    running = j < RECENT and j > finished_upto
    status = "EXECUTING" if running else "SUCCESS"
    updated = created if running else created + timedelta(minutes=5)
    return make_task(instance_id, f"{i:08x}{j:024x}", j, status, created, updated)


def _instance(instance_id: str, i: int) -> Instance:
    return Instance(instance_id, f"cache-{i:04d}")


def _cursor(instance: Instance, now: datetime) -> InstanceCursor:
    return InstanceCursor(instance.instance_id, instance.name, True, last_polled_at=now)


def _records(changes: Sequence[Change], now: datetime | None) -> list[TaskRecord]:
    """Records of ``changes``, each first seen at ``now`` (or when its task was updated)."""
    out = []
    for change in changes:
        seen = now or change.task.updated_at or T0
        out.append(to_record(change, seen))
    return out


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
            CycleCommit(tasks=_records(changes, None), cursors=[_cursor(c, T0) for c in chunk])
        )
    return {"seconds": time.perf_counter() - started}


def _cycle(
    store: StateStore, n: int, tasks: int, c: int, *, by_id: bool, commit: bool = True
) -> dict[str, float]:
    """One poll cycle's state work: read, diff and render, commit. Cycle ``c`` finishes task
    ``c`` of every instance."""
    ids = instance_ids(n)
    now = T0 + timedelta(minutes=c + 1)
    instances = [_instance(iid, i) for i, iid in enumerate(ids)]
    fetched = {
        iid: [seeded_task(iid, i, j, tasks, finished_upto=c) for j in range(RECENT)]
        for i, iid in enumerate(ids)
    }
    started = time.perf_counter()
    store.cursors()
    if by_id:
        assert isinstance(store, SqliteStore | PostgresStore)  # tasks_by_id: not in the Protocol
        previous = {iid: store.tasks_by_id(iid, [t.id for t in fetched[iid]]) for iid in ids}
    else:
        previous = {iid: store.tasks_of(iid) for iid in ids}
    read = time.perf_counter() - started
    started = time.perf_counter()
    changes: list[Change] = []
    for instance in instances:
        iid = instance.instance_id
        changes += diff(instance, previous[iid], fetched[iid], baselined=True)
    deliveries = plan_deliveries(
        changes, alert_channel=ALERT_CHANNEL, subscriptions=[], digest_threshold=10, now=now
    )
    cycle = CycleCommit(
        tasks=_records(changes, now),
        cursors=[_cursor(i, now) for i in instances],
        deliveries=deliveries,
        meta={"last_success_at": now.isoformat()},
    )
    work = time.perf_counter() - started
    started = time.perf_counter()
    if commit:
        store.commit_cycle(cycle)
    return {
        "read_ms": _ms(read),
        "diff_ms": _ms(work),
        "commit_ms": _ms(time.perf_counter() - started),
        "changed": sum(1 for ch in changes if ch.reason is Reason.STATUS_CHANGED),
        "deliveries": len(deliveries),
        "records_read": sum(len(p) for p in previous.values()),
    }


def phase_steady(store: StateStore, n: int, tasks: int, *, by_id: bool) -> dict[str, Any]:
    """``RECENT`` cycles with 1 % changes, then three quiet commits. ``by_id``: read only the
    fetched tasks, and commit nothing (the store stays as it was for the ``steady`` phase)."""
    cycles = [_cycle(store, n, tasks, c, by_id=by_id, commit=not by_id) for c in range(RECENT)]
    quiet = []
    for q in range(0 if by_id else 3):
        now = T0 + timedelta(hours=1, minutes=q)
        commit = CycleCommit(
            cursors=[_cursor(_instance(iid, i), now) for i, iid in enumerate(instance_ids(n))],
            meta={"last_success_at": now.isoformat()},
        )
        started = time.perf_counter()
        store.commit_cycle(commit)
        quiet.append(_ms(time.perf_counter() - started))
    out: dict[str, Any] = {
        key: median([c[key] for c in cycles]) for key in ("read_ms", "diff_ms", "commit_ms")
    }
    out["commit_ms_max"] = max(c["commit_ms"] for c in cycles)
    out["changed"] = cycles[-1]["changed"]
    out["deliveries"] = cycles[-1]["deliveries"]
    out["records_read"] = cycles[-1]["records_read"]
    out["quiet_commit_ms"] = median(quiet) if quiet else None
    return out


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
        store.commit_cycle(CycleCommit(tasks=_records(changes, None)))
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
    parser.add_argument("--child", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--instances", type=int, required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args(argv)
    rss_start = _status_kb("VmRSS") or 0
    store = open_store(args.backend, args.target)
    try:
        if args.child == "fill":
            out = phase_fill(store, args.instances, args.tasks)
        elif args.child in ("steady", "steady-by-id"):
            by_id = args.child == "steady-by-id"
            out = phase_steady(store, args.instances, args.tasks, by_id=by_id)
        else:
            out = phase_prune(
                store, args.backend, args.target, args.instances, args.tasks, args.days
            )
    finally:
        store.close()
    out["rss_start_kb"] = rss_start
    out["peak_rss_kb"] = _peak_rss_kb()
    print(json.dumps(out))
    return 0


# -- the parent ---------------------------------------------------------------------------------


def _run_phase(
    phase: str, backend: str, target: str, n: int, tasks: int, days: int
) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", phase, "--backend", backend,
           "--target", target, "--instances", str(n), "--tasks", str(tasks),
           "--days", str(days)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{backend} {phase} failed: {tail[:300]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure(*, backend: str, instances: int, tasks: int, days: int = 60) -> dict[str, Any]:
    """Every phase on one backend (``sqlite`` or ``postgres``); ``error`` when it cannot run."""
    out: dict[str, Any] = {"backend": backend, "instances": instances, "tasks": tasks, "days": days}
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
            out["steady_by_id"] = _run_phase(
                "steady-by-id", backend, target, instances, tasks, days
            )
            out["steady"] = _run_phase("steady", backend, target, instances, tasks, days)
            out["prune"] = _run_phase("prune", backend, target, instances, tasks, days)
        finally:
            if backend == "postgres":
                drop_schema(target)
    return out


def report(results: Sequence[dict[str, Any]]) -> BenchResult:
    """Tables and targets from the figures of ``measure`` for each backend."""
    ok = [r for r in results if "error" not in r]
    result = BenchResult("state")
    if not ok:
        result.notes += [r["error"] for r in results]
        return result
    n, tasks = ok[0]["instances"], ok[0]["tasks"]
    total = n * tasks
    main = Table(
        f"state: {total:,} tracked tasks ({n:,} instances x {tasks}); a cycle with 1% changes",
        ["figure", *[r["backend"] for r in ok]],
    )

    def line(label: str, fn: Any) -> None:
        main.rows.append([label, *[fn(r) for r in ok]])

    def kb(value: int) -> str:
        return f"{value / 1024:.0f} MB"

    line("setup: fill time (10 instances per commit)", lambda r: f"{r['fill']['seconds']:.1f} s")
    line("size on disk after fill", lambda r: mb(r["after_fill"][0]))
    line("tasks after fill", lambda r: f"{r['after_fill'][1]:,}")
    line(
        "cycle: changed tasks / deliveries",
        lambda r: f"{r['steady']['changed']} / {r['steady']['deliveries']}",
    )
    line("cycle: commit_cycle, median", lambda r: f"{r['steady']['commit_ms']:.0f} ms")
    line("cycle: commit_cycle, max", lambda r: f"{r['steady']['commit_ms_max']:.0f} ms")
    line(
        "quiet commit (1,000 cursors + meta)", lambda r: f"{r['steady']['quiet_commit_ms']:.0f} ms"
    )
    line(
        "cycle: read cursors + tasks_of(every instance)",
        lambda r: f"{r['steady']['read_ms']:.0f} ms",
    )
    line("  records read per cycle", lambda r: f"{r['steady']['records_read']:,}")
    line("cycle: diff + render (CPU, not the store)", lambda r: f"{r['steady']['diff_ms']:.0f} ms")
    line("RSS after imports", lambda r: kb(r["steady"]["rss_start_kb"]))
    line("peak RSS, steady cycles (tasks_of)", lambda r: kb(r["steady"]["peak_rss_kb"]))
    line(f"peak RSS, pruning {ok[0]['days']} days", lambda r: kb(r["prune"]["peak_rss_kb"]))
    line("peak RSS, fill (setup)", lambda r: kb(r["fill"]["peak_rss_kb"]))
    line(
        "variant: read tasks_by_id(fetched) only",
        lambda r: f"{r['steady_by_id']['read_ms']:.0f} ms",
    )
    line("  its peak RSS", lambda r: kb(r["steady_by_id"]["peak_rss_kb"]))
    line("  records read per cycle", lambda r: f"{r['steady_by_id']['records_read']:,}")
    main.notes += [
        "a cycle reads and diffs as Poller.run_cycle does (the network left out): the 4 newest",
        f"tasks of each instance are fetched, one of them finishes ({n:,} changes = 1%),",
        "rendered into an update + a thread reply each; every cursor is written every cycle;",
        "the deliveries are not drained, so the outbox grows by the same each cycle.",
    ]  # fmt: skip

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
    result.tables += [main, prune]

    for r in ok:
        b = r["backend"]
        peak = max(r["steady"]["peak_rss_kb"], r["prune"]["peak_rss_kb"]) / 1024
        result.targets.append(
            Target(
                f"{b}: peak RSS at {total:,} tasks",
                f"{peak:.0f} MB",
                f"<= {RSS_TARGET_MB} MB",
                peak <= RSS_TARGET_MB,
            )
        )
        commit = r["steady"]["commit_ms"]
        result.targets.append(
            Target(
                f"{b}: cycle commit at {total:,} tasks",
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
            result.targets.append(
                Target(
                    f"{b}: pruning keeps it flat (day {mid['day']} -> {last['day']})",
                    f"size {growth:+.0%}, tasks {kept:+.0%}",
                    "within +-10%",
                    abs(growth) <= 0.10 and abs(kept) <= 0.10,
                )
            )
    for r in results:
        if "error" in r:
            result.notes.append(f"{r['backend']}: {r['error']}")
    return result


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
