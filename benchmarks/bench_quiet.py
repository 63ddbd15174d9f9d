"""Issue 6, "quiet cost": what a poll cycle with nothing new costs: Slack calls (must be 0),
state commits, DCS requests and CPU milliseconds of the poller process.

The cycle is the one ``serve`` runs (``PollRunner.tick``: lease heartbeat, poll cycle, delivery
drain), wired by ``bot.wiring.build`` against the simulator (its own process) and a FakeSlack.
The store is wrapped in a proxy that counts write transactions and the rows each commit writes.
Run alone: ``python benchmarks/bench_quiet.py [--quick]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.config import load_settings
from bot.testing.fake_slack import FakeSlack
from bot.wiring import build
from state.base import CycleCommit, StateStore
from state.sqlite import SqliteStore

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    ALERT_CHANNEL,
    SLACK_TOKEN,
    BenchResult,
    SimProcess,
    Table,
    Target,
    median,
    script_main,
)

LATENCY = 0.02
#: The store methods that write (each is one transaction).
WRITES = frozenset(
    {
        "commit_cycle",
        "delivery_done",
        "delivery_failed",
        "prune",
        "set_meta",
        "add_subscription",
        "remove_subscription",
    }
)


class CountingStore:
    """A ``StateStore`` proxy that counts write transactions and the rows of each commit."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self.reset()

    def reset(self) -> None:
        """Start counting from zero."""
        self.commits = 0
        self.rows: dict[str, int] = {"tasks": 0, "cursors": 0, "deliveries": 0, "meta": 0}

    def commit_cycle(self, commit: CycleCommit) -> None:
        """Count, then forward."""
        self.rows["tasks"] += len(commit.tasks)
        self.rows["cursors"] += len(commit.cursors)
        self.rows["deliveries"] += len(commit.deliveries)
        self.rows["meta"] += len(commit.meta)
        self.commits += 1
        self._store.commit_cycle(commit)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name in WRITES and callable(attr):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.commits += 1
                return attr(*args, **kwargs)

            return counted
        return attr


def measure(
    *, instances: int, tasks: int = 10, latency: float = LATENCY, repeats: int = 3
) -> dict[str, Any]:
    """Figures of a baseline cycle, quiet cycles (median of ``repeats``) and a cycle with one
    new task: ``seconds``, ``cpu_ms``, ``dcs_requests``, ``slack_calls``, ``commits`` and the
    rows written (``tasks``, ``cursors``, ``deliveries``, ``meta``)."""
    with (
        SimProcess(instances, tasks=tasks, latency=latency, listen_backlog=1024) as sim,
        FakeSlack(token=SLACK_TOKEN) as slack,
        tempfile.TemporaryDirectory(prefix="bench-quiet-") as tmp,
    ):
        env = sim.env() | {
            "STATE_PATH": f"{tmp}/state.sqlite",
            "DCS_ALERT_CHANNEL": ALERT_CHANNEL,
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_API_URL": slack.url,
        }
        settings = load_settings(env)
        store = CountingStore(SqliteStore(settings.state_path))
        parts = build(settings, store=store)
        runner = parts.runner()
        try:

            def tick() -> dict[str, Any]:
                store.reset()
                sim.clear()
                calls = len(slack.calls)
                cpu, started = time.process_time(), time.perf_counter()
                result = runner.tick()
                seconds = time.perf_counter() - started
                cpu_ms = (time.process_time() - cpu) * 1000
                if result is None or not result.ok:
                    raise RuntimeError("the cycle failed")
                return {
                    "seconds": seconds,
                    "cpu_ms": cpu_ms,
                    "dcs_requests": sim.requests(),
                    "slack_calls": len(slack.calls) - calls,
                    "commits": store.commits,
                    **store.rows,
                }

            out: dict[str, Any] = {"instances": instances, "tasks": tasks, "latency": latency}
            out["baseline"] = tick()
            quiet = [tick() for _ in range(repeats)]
            out["quiet"] = _median_figures(quiet)
            sim.add_tasks(sim.instance_ids[:1], status="EXECUTING")
            out["one_new"] = tick()
            return out
        finally:
            runner.stop()
            parts.close()


def _median_figures(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out = dict(runs[-1])
    for key in ("seconds", "cpu_ms"):
        out[key] = median([r[key] for r in runs])
    # Counts must not vary between quiet cycles: keep the largest seen, so a stray one shows.
    for key in ("dcs_requests", "slack_calls", "commits", "tasks", "cursors", "deliveries"):
        out[key] = max(r[key] for r in runs)
    return out


def report(m: dict[str, Any]) -> BenchResult:
    """Tables and targets from the figures of ``measure``."""
    n = m["instances"]
    table = Table(
        f"quiet cost: one tick of `serve` (lease, poll cycle, delivery drain), {n:,} instances x "
        f"{m['tasks']} tasks, {m['latency'] * 1000:.0f} ms per request",
        ["cycle", "seconds", "CPU ms", "CPU ms/instance", "DCS requests", "Slack calls",
         "commits", "task rows", "cursor rows", "deliveries"],
    )  # fmt: skip
    rows: list[tuple[str, str]] = [
        ("first (baseline, records every task silently)", "baseline"),
        ("quiet (nothing changed), median", "quiet"),
        ("one new task on one instance", "one_new"),
    ]
    for label, key in rows:
        f = m[key]
        table.rows.append(
            [
                label,
                f"{f['seconds']:.2f}",
                f"{f['cpu_ms']:.0f}",
                f"{f['cpu_ms'] / n:.2f}",
                str(f["dcs_requests"]),
                str(f["slack_calls"]),
                str(f["commits"]),
                str(f["tasks"]),
                str(f["cursors"]),
                str(f["deliveries"]),
            ]
        )
    table.notes += [
        "commits = state write transactions; a quiet cycle still writes every cursor",
        "(last_polled_at) and meta.last_success_at in its one commit_cycle;",
        "every 10th cycle also re-lists the instances (1 request per 1,000 instances).",
    ]
    quiet = m["quiet"]
    targets = [
        Target(
            "quiet cycle: Slack calls", str(quiet["slack_calls"]), "0", quiet["slack_calls"] == 0
        ),
        Target(
            "quiet cycle: DCS requests",
            str(quiet["dcs_requests"]),
            f"{n} (one per instance)",
            quiet["dcs_requests"] == n,
        ),
        Target("quiet cycle: state commits", str(quiet["commits"]), "<= 1", quiet["commits"] <= 1),
    ]
    return BenchResult("quiet", [table], targets)


def run(quick: bool) -> BenchResult:
    """1,000 instances (100 with ``quick``)."""
    return report(measure(instances=100 if quick else 1000, repeats=1 if quick else 3))


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/bench_quiet.py [--quick]``."""
    return script_main("quiet", run, argv)


if __name__ == "__main__":
    sys.exit(main())
