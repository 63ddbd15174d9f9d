"""Issue 12, "windows": what a quiet cycle costs per instance with incremental windows (the
watermark) against the full ``DCS_LOOKBACK`` window of before, the peak RSS of a process that
runs the first two cycles over 50 tasks per instance (batches), and the adaptive limit under a
429 storm.

Everything runs through ``bot.wiring.build`` against the simulator in its own process, AK/SK
signed. Run alone: ``python benchmarks/bench_windows.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    ACCESS_KEY,
    SECRET_KEY,
    BenchResult,
    SimProcess,
    Table,
    Target,
    pg_url,
    script_main,
)
from bot.config import Settings, load_settings
from bot.dcs.limit import AdaptiveLimit
from bot.wiring import MAX_IN_FLIGHT, Components, build
from state.base import CycleCommit, StateStore

TASKS = 50
#: Seconds between two tasks of an instance: 50 tasks spread over the 24 h window.
STEP = 24 * 3600 / TASKS
RSS_TARGET_MB = 150.0


class CountingTransport(httpx.BaseTransport):
    """Counts the bytes and tasks of every DCS answer (the body as received)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.bytes = 0
        self.tasks = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send, read the body, count it."""
        response = self._inner.handle_request(request)
        body = response.read()
        self.bytes += len(body)
        self.tasks += body.count(b'"enable_show"')
        return response

    def close(self) -> None:
        """Close the real transport."""
        self._inner.close()


def _settings(sim: SimProcess, state: Path, **extra: str) -> Settings:
    return load_settings(
        {
            "DCS_ENDPOINT": sim.url,
            "DCS_PROJECT_ID": sim.project_id,
            "DCS_ACCESS_KEY": ACCESS_KEY,
            "DCS_SECRET_KEY": SECRET_KEY,
            "STATE_PATH": str(state),
            "LOG_LEVEL": "WARNING",
            **extra,
        }
    )


def _quiet(parts: Components, counter: CountingTransport, n: int) -> dict[str, float]:
    counter.bytes = counter.tasks = 0
    cpu = time.process_time()
    parts.poller.run_cycle()
    cpu = time.process_time() - cpu
    return {"bytes": counter.bytes / n, "tasks": counter.tasks / n, "cpu_ms": 1000 * cpu / n}


def measure_quiet(n: int) -> dict[str, dict[str, float]]:
    """One quiet cycle with the watermark (after) and with the full window (before)."""
    with SimProcess(n, tasks=TASKS, step=STEP) as sim, tempfile.TemporaryDirectory() as tmp:
        counter = CountingTransport()
        parts = build(_settings(sim, Path(tmp) / "s.sqlite"), with_slack=False, transport=counter)
        try:
            parts.poller.run_cycle()  # the baseline
            after = _quiet(parts, counter, n)
            store = parts.store
            old = [replace(c, watermark=None) for c in store.cursors().values()]
            store.commit_cycle(CycleCommit(cursors=old))  # as before watermarks existed
            before = _quiet(parts, counter, n)
        finally:
            parts.close()
    return {"before": before, "after": after}


def _child(args: argparse.Namespace) -> int:
    """Two cycles (the baseline, then a quiet one) in this process; print peak RSS."""
    logging.disable(logging.WARNING)
    store: StateStore | None = None
    tmp = tempfile.mkdtemp()
    if args.backend == "postgres":
        from state.postgres import PostgresStore

        store = PostgresStore(pg_url(), schema=args.target)
    settings = load_settings(
        {
            "DCS_ENDPOINT": args.url,
            "DCS_PROJECT_ID": args.project,
            "DCS_ACCESS_KEY": ACCESS_KEY,
            "DCS_SECRET_KEY": SECRET_KEY,
            "STATE_PATH": str(Path(tmp) / "s.sqlite"),
        }
    )
    parts = build(settings, with_slack=False, store=store)
    times = []
    try:
        for _ in range(2):
            began = time.monotonic()
            parts.poller.run_cycle()
            times.append(time.monotonic() - began)
    finally:
        parts.close()
    rss_mb = _peak_rss_mb()
    print(json.dumps({"rss_mb": rss_mb, "first_s": times[0], "quiet_s": times[1]}))
    return 0


def _peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM (ru_maxrss would carry over the parent's peak
    from before the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def measure_rss(n: int, backend: str) -> dict[str, Any]:
    """Peak RSS of a process running the first two cycles over ``n`` instances x 50 tasks."""
    target = f"bench_windows_{uuid.uuid4().hex[:8]}"
    with SimProcess(n, tasks=TASKS, step=STEP, listen_backlog=1024) as sim:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--backend", backend,
               "--url", sim.url, "--project", sim.project_id, "--target", target]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        finally:
            if backend == "postgres":
                _drop_schema(target)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


@contextmanager
def _silenced(name: str) -> Iterator[None]:
    """Keep the records of logger ``name`` (and its children) off the console."""
    logger = logging.getLogger(name)
    propagate, logger.propagate = logger.propagate, False
    null = logging.NullHandler()
    logger.addHandler(null)
    try:
        yield
    finally:
        logger.removeHandler(null)
        logger.propagate = propagate


#: The storms of the 429 table: (name, share of requests answered 429 at random, DCS's
#: concurrency limit beyond which it answers 429).
STORMS: tuple[tuple[str, float, int | None], ...] = (
    ("30% of requests answered 429 at random", 0.3, None),
    ("a gateway serving 8 requests at once, 429 beyond", 0.0, 8),
)


def measure_storm(
    n: int,
    rate: float,
    *,
    capacity: int | None = None,
    adaptive: bool = True,
    sleep: Callable[[float], object] | None = None,
) -> dict[str, Any]:
    """A cycle over ``n`` instances while DCS answers a share ``rate`` of requests with 429, or
    every request beyond ``capacity`` at once; with the adaptive shared limit (today's code)
    or a fixed one of MAX_IN_FLIGHT (``adaptive=False``: the limit never moves). ``sleep``
    replaces the retries' waits (the smoke tests skip them; the figures never do)."""
    ceiling = MAX_IN_FLIGHT
    limit = AdaptiveLimit(initial=ceiling, minimum=1 if adaptive else ceiling, maximum=ceiling)
    with (
        _silenced("bot.dcs"),  # a warning per retry and per cut: counted in the table instead
        SimProcess(n, tasks=5, latency=0.02) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = _settings(sim, Path(tmp) / "s.sqlite")
        parts = build(settings, with_slack=False, limit=limit, sleep=sleep)
        try:
            parts.poller.run_cycle()
            sim.set_faults(rate, ["429"] if rate else [])
            sim.set_capacity(capacity)
            sim.clear()
            began = time.monotonic()
            result = parts.poller.run_cycle()
            seconds = time.monotonic() - began
            requests, throttled = sim.requests(), sim.throttled()
        finally:
            parts.close()
    return {
        "seconds": seconds,
        "requests": requests,
        "throttled": throttled,
        "failed": len(result.errors),
        "read": result.instances - len(result.errors),
        "limit": limit.limit,
        "cuts": limit.decreases if adaptive else None,
    }


def measure_limit(n: int, latency: float) -> dict[str, float]:
    """A quiet cycle over ``n`` instances answering in ``latency`` s, against its concurrency
    limit (``n x latency / requests in flight``)."""
    with (
        SimProcess(n, tasks=1, latency=latency, listen_backlog=1024) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        parts = build(_settings(sim, Path(tmp) / "s.sqlite"), with_slack=False)
        try:
            parts.poller.run_cycle()
            began, cpu = time.monotonic(), time.process_time()
            parts.poller.run_cycle()
            seconds, cpu = time.monotonic() - began, time.process_time() - cpu
        finally:
            parts.close()
    floor = n * latency / MAX_IN_FLIGHT
    return {"seconds": seconds, "floor": floor, "ratio": seconds / floor, "cpu": cpu}


def run(quick: bool) -> BenchResult:
    """Quiet bytes/CPU before and after, RSS at 1k and 10k, the 429 storm."""
    result = BenchResult("windows")
    n_quiet = 100 if quick else 1000
    quiet = measure_quiet(n_quiet)
    table = Table(
        f"quiet cycle per instance, {n_quiet} instances x {TASKS} tasks in the window",
        ["window", "DCS bytes", "tasks parsed", "CPU ms"],
    )
    for key, label in (("before", "full DCS_LOOKBACK (before)"), ("after", "watermark (after)")):
        q = quiet[key]
        table.rows.append([label, f"{q['bytes']:.0f}", f"{q['tasks']:.1f}", f"{q['cpu_ms']:.2f}"])
    result.tables.append(table)
    result.targets.append(
        Target(
            "quiet cycle bytes per instance",
            f"{quiet['after']['bytes']:.0f} B",
            "a few hundred B (< 1 KB)",
            quiet["after"]["bytes"] < 1024,
        )
    )

    sizes = (200,) if quick else (1000, 10000)
    rss = Table(
        f"peak RSS of a process running the first two cycles ({TASKS} tasks per instance)",
        ["instances", "store", "peak RSS MB", "first cycle s", "quiet cycle s"],
        left=2,
    )
    for n in sizes:
        for backend in ("sqlite", "postgres"):
            f = measure_rss(n, backend)
            if "error" in f:
                rss.rows.append([str(n), backend, "error", f["error"], ""])
                continue
            rss.rows.append(
                [
                    str(n),
                    backend,
                    f"{f['rss_mb']:.0f}",
                    f"{f['first_s']:.1f}",
                    f"{f['quiet_s']:.1f}",
                ]
            )
            if n == max(sizes):
                result.targets.append(
                    Target(
                        f"peak RSS at {n} x {TASKS}, {backend}",
                        f"{f['rss_mb']:.0f} MB",
                        f"<= {RSS_TARGET_MB:.0f} MB",
                        f["rss_mb"] <= RSS_TARGET_MB,
                    )
                )
    result.tables.append(rss)

    n_limit = 500 if quick else 10000
    lim = measure_limit(n_limit, 0.1)
    result.tables.append(
        Table(
            f"a quiet cycle over {n_limit} instances at 100 ms per request, "
            f"{MAX_IN_FLIGHT} in flight",
            ["cycle s", "limit s", "ratio", "CPU s"],
            [[f"{lim[k]:.2f}" for k in ("seconds", "floor", "ratio", "cpu")]],
            left=0,
        )
    )
    result.targets.append(
        Target(
            f"cycle at {n_limit} x 100 ms vs its limit",
            f"{lim['ratio']:.2f}x",
            "<= 2x",
            lim["ratio"] <= 2.0,
        )
    )

    n_storm = 100 if quick else 1000
    storm = Table(
        f"429 storms: one cycle over {n_storm} instances x 20 ms, adaptive shared limit (today) "
        f"vs a fixed limit of {MAX_IN_FLIGHT}",
        ["storm", "limit", "cycle s", "requests", "429s sent", "instances read", "limit after",
         "limit cuts"],
        left=2,
    )  # fmt: skip
    for name, rate, capacity in STORMS:
        for adaptive in (True, False):
            s = measure_storm(n_storm, rate, capacity=capacity, adaptive=adaptive)
            storm.rows.append(
                [
                    name,
                    "adaptive (AIMD)" if adaptive else "fixed",
                    f"{s['seconds']:.1f}",
                    str(s["requests"]),
                    str(s["throttled"]),
                    f"{s['read']}/{n_storm}",
                    str(s["limit"]),
                    "-" if s["cuts"] is None else str(s["cuts"]),
                ]
            )
    storm.notes += [
        "429s carry Retry-After: 1; DcsClient retries each request up to 4 attempts in 30 s;",
        "an instance not read in the cycle is read again in the next one.",
    ]
    result.tables.append(storm)
    result.notes.append(
        "before = the same cycle with the watermarks cleared, i.e. the full window every cycle "
        "(the code path before issue 12); the simulator's task objects carry all 26 detail keys"
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``--child`` runs the RSS measurement's cycles; otherwise the benchmark."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--child" in args:
        parser = argparse.ArgumentParser()
        parser.add_argument("--child", action="store_true")
        for name in ("--backend", "--url", "--project", "--target"):
            parser.add_argument(name, required=True)
        return _child(parser.parse_args(args))
    return script_main("windows", run, args)


if __name__ == "__main__":
    sys.exit(main())
