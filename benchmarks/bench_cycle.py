"""Issue 6, "cycle": one steady-state poll cycle over 1,000 simulated instances at 20 ms per
request, against the same client one request at a time and against the official SDK in a
sequential loop. Issue 3: threads (the Poller as built) against an asyncio variant.

The simulator runs in a process of its own (``_common.SimProcess``); every request is AK/SK
signed and verified. Run alone: ``python benchmarks/bench_cycle.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bot.config import Settings, load_settings
from bot.dcs.client import DcsClient, format_dcs_time
from bot.dcs.errors import DcsError
from bot.dcs.models import Task
from bot.pipeline.poll import Poller
from bot.pipeline.watch import WatchedInstances
from bot.wiring import dcs_auth, make_http_client
from state.sqlite import SqliteStore

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    ALERT_CHANNEL,
    BENCH_PYTHON,
    BenchResult,
    SimProcess,
    Table,
    Target,
    median,
    script_main,
)

LATENCY = 0.02
IN_FLIGHT = (8, 16, 32, 64)
#: The Poller's default ``max_in_flight``: the configuration the targets are judged on.
DEFAULT_IN_FLIGHT = 32
#: The simulator's listen queue in the measured runs: deep, like a real API gateway's.
DEEP_BACKLOG = 1024
Figures = dict[str, Any]


class RetryCounter(logging.Handler):
    """Counts the retries ``bot.dcs.client`` logs (a stalled or reset request shows up here)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Count one warning."""
        self.count += 1


RETRIES = RetryCounter()


def _timed(
    sim: SimProcess, fn: Callable[[], tuple[int, int]], *, repeats: int, warmup: bool = False
) -> Figures:
    """Median wall and CPU seconds (ours and the simulator's) of ``fn``, which returns the
    items it read and its errors."""
    if warmup:
        fn()
    runs = []
    for _ in range(repeats):
        begin = _begin(sim)
        runs.append(_end(sim, begin, fn()))
    return _median_of(runs)


def _begin(sim: SimProcess) -> tuple[float, float, float, int]:
    sim.clear()
    return sim.cpu_seconds(), time.process_time(), time.perf_counter(), RETRIES.count


def _end(sim: SimProcess, begin: tuple[float, float, float, int], done: tuple[int, int]) -> Figures:
    wall = time.perf_counter() - begin[2]
    cpu = time.process_time() - begin[1]
    return {
        "retries": RETRIES.count - begin[3],
        "seconds": wall,
        "cpu_seconds": cpu,
        "sim_cpu_seconds": sim.cpu_seconds() - begin[0],
        "requests": sim.requests(),
        "items": done[0],
        "errors": done[1],
    }


def _median_of(runs: Sequence[Figures]) -> Figures:
    out = dict(runs[-1])
    for key in ("seconds", "cpu_seconds", "sim_cpu_seconds"):
        out[key] = median([r[key] for r in runs])
    out["errors"] = max(r["errors"] for r in runs)
    out["retries"] = sum(r["retries"] for r in runs)
    return out


def _cycle(poller: Poller) -> tuple[int, int]:
    result = poller.run_cycle()
    return result.instances, len(result.errors)


def _threads_fetch(
    dcs: DcsClient, ids: Sequence[str], in_flight: int, start: datetime
) -> tuple[int, int]:
    """One page per instance on a thread pool, as ``Poller._fetch`` runs ``list_tasks``."""

    def one(instance_id: str) -> int | None:
        try:
            _, page = dcs.list_tasks_page(instance_id, offset=0, limit=1000, start=start)
        except DcsError:
            return None
        return len(page)

    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="poll") as pool:
        counts = list(pool.map(one, ids))
    return sum(c or 0 for c in counts), sum(1 for c in counts if c is None)


def _httpcore_client(settings: Settings, *, connections: int = 100, idle: int = 64) -> httpx.Client:
    """The DCS client before the lean transport: httpx's own (httpcore) pool, as
    ``make_http_client`` built it (100 connections, 64 kept alive) unless tuned."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=idle)
    return make_http_client(settings, transport=httpx.HTTPTransport(limits=limits))


class _Urllib3Body(httpx.SyncByteStream):
    def __init__(self, response: Any) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.stream(65536, decode_content=False)

    def close(self) -> None:
        self._response.release_conn()


class Urllib3Transport(httpx.BaseTransport):
    """httpx over a urllib3 pool, for the comparison only: urllib3 is not a runtime dependency
    (it comes with the official SDK's ``requests`` in the dev group); no error mapping."""

    def __init__(self, maxsize: int = 64) -> None:
        import urllib3

        self._urllib3 = urllib3
        self._pool = urllib3.PoolManager(maxsize=maxsize, retries=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the pool; the body streams undecoded (httpx decodes)."""
        t = request.extensions.get("timeout", {})
        response = self._pool.urlopen(
            request.method,
            str(request.url),
            body=request.read() or None,
            headers=dict(request.headers),
            preload_content=False,
            decode_content=False,
            redirect=False,
            retries=False,
            timeout=self._urllib3.Timeout(connect=t.get("connect"), read=t.get("read")),
        )
        return httpx.Response(
            response.status, headers=list(response.headers.items()), stream=_Urllib3Body(response)
        )

    def close(self) -> None:
        """Close the pool."""
        self._pool.clear()


#: The HTTP layers compared under the same fetch: a name and a factory of "the DcsClient of
#: the calling thread" (plus what to close afterwards).
HttpLayer = Callable[[SimProcess, Settings], tuple[Callable[[], DcsClient], list[httpx.Client]]]


def _shared(make: Callable[[Settings], httpx.Client]) -> HttpLayer:
    def factory(
        sim: SimProcess, settings: Settings
    ) -> tuple[Callable[[], DcsClient], list[httpx.Client]]:
        http = make(settings)
        dcs = DcsClient(http, sim.project_id)
        return (lambda: dcs), [http]

    return factory


def _per_thread(
    sim: SimProcess, settings: Settings
) -> tuple[Callable[[], DcsClient], list[httpx.Client]]:
    local = threading.local()
    made: list[httpx.Client] = []
    lock = threading.Lock()

    def mine() -> DcsClient:
        dcs: DcsClient | None = getattr(local, "dcs", None)
        if dcs is None:
            http = _httpcore_client(settings, connections=1, idle=1)
            with lock:
                made.append(http)
            dcs = local.dcs = DcsClient(http, sim.project_id)
        return dcs

    return mine, made


HTTP_LAYERS: tuple[tuple[str, HttpLayer], ...] = (
    ("one shared httpx.Client, httpcore pool (before)", _shared(_httpcore_client)),
    ("one httpx.Client (httpcore) per worker thread", _per_thread),
    ("one shared httpx.Client, httpcore pool of 32 (tuned)",
     _shared(partial(_httpcore_client, connections=32, idle=32))),
    ("one shared httpx.Client, urllib3 pool (not a dependency)",
     _shared(lambda st: make_http_client(st, transport=Urllib3Transport()))),
    ("one shared httpx.Client, StdlibTransport (now)", _shared(make_http_client)),
)  # fmt: skip


def _layer_fetch(
    dcs: Callable[[], DcsClient], ids: Sequence[str], pool: ThreadPoolExecutor, start: datetime
) -> tuple[int, int]:
    """One ``read_tasks`` per instance on ``pool``, as the poller's fetch step runs them, each
    thread on the DcsClient ``dcs()`` gives it."""

    def one(instance_id: str) -> int | None:
        try:
            return len(dcs().read_tasks(instance_id, start=start).tasks)
        except DcsError:
            return None

    counts = list(pool.map(one, ids))
    return sum(c or 0 for c in counts), sum(1 for c in counts if c is None)


def _layers_figures(
    sim: SimProcess, settings: Settings, start: datetime, in_flight: int, repeats: int
) -> list[Figures]:
    """Each HTTP layer's fetch on one pool of ``in_flight`` threads, warmed up, the repeats
    taken in turns (so that the noise of a shared machine falls on every layer alike);
    medians."""
    made = [factory(sim, settings) for _, factory in HTTP_LAYERS]
    runs: list[list[Figures]] = [[] for _ in made]
    # One pool of threads for every run, so that a client per worker thread lives on.
    pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="poll")
    try:
        for dcs, _ in made:
            _layer_fetch(dcs, sim.instance_ids, pool, start)
        for _ in range(repeats):
            for i, (dcs, _) in enumerate(made):
                fetch = partial(_layer_fetch, dcs, sim.instance_ids, pool, start)
                begin = _begin(sim)
                runs[i].append(_end(sim, begin, fetch()))
    finally:
        pool.shutdown()
        for _, clients in made:
            for http in clients:
                http.close()
    return [_median_of(r) for r in runs]


async def _async_figures(
    sim: SimProcess, settings: Settings, start: datetime, in_flight: int, repeats: int
) -> Figures:
    """The asyncio variant: one ``httpx.AsyncClient``, a semaphore of ``in_flight``, the same
    signing and parsing, one page per instance; timed like ``_timed`` inside one event loop."""
    assert settings.dcs_endpoint is not None
    params: dict[str, str | int] = {
        "offset": 0,
        "limit": 1000,
        "start_time": format_dcs_time(start),
    }
    semaphore = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(
        base_url=settings.dcs_endpoint,
        auth=dcs_auth(settings),
        timeout=httpx.Timeout(10.0),
        headers={"Accept": "application/json"},
    ) as client:

        async def one(instance_id: str) -> int | None:
            path = f"/v2/{sim.project_id}/instances/{instance_id}/tasks"
            try:
                async with semaphore:
                    response = await client.get(path, params=params)
            except httpx.HTTPError:
                return None
            if response.status_code != 200:
                return None
            tasks = [Task.from_json(instance_id, t) for t in response.json().get("tasks") or []]
            return len(tasks)

        async def fetch_all() -> tuple[int, int]:
            counts = await asyncio.gather(*(one(i) for i in sim.instance_ids))
            return sum(c or 0 for c in counts), sum(1 for c in counts if c is None)

        # Warm-up: open the connections, as the thread variants find them open.
        await asyncio.gather(*(one(i) for i in sim.instance_ids[:in_flight]))
        runs = []
        for _ in range(repeats):
            begin = _begin(sim)
            runs.append(_end(sim, begin, await fetch_all()))
    return _median_of(runs)


@contextmanager
def _failed_import_cached(name: str) -> Iterator[None]:
    """Make ``import name`` fail at once instead of searching sys.path each time.

    httpcore 1.0's async pool runs ``import sniffio`` on every lock it creates; anyio 4 no
    longer installs sniffio, so each of those imports fails after a full path search. This is
    what installing sniffio (or a cached import) would save; used for one labelled column only.
    """
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # type: ignore[assignment]  # "import name" now raises at once
    try:
        yield
    finally:
        del sys.modules[name]


def _sdk_figures(sim: SimProcess, start: datetime) -> Figures:
    """The official SDK's sequential loop, run in ``.venv-bench`` (see ``sdk_loop.py``)."""
    if not BENCH_PYTHON.exists():
        return {"error": f"{BENCH_PYTHON} is missing (`make bench` creates .venv-bench)"}
    job = {
        "url": sim.url,
        "project_id": sim.project_id,
        "access_key": sim.access_key,
        "secret_key": sim.secret_key,
        "instances": sim.instance_ids,
        "start_time": format_dcs_time(start),
    }
    sim.clear()
    proc = subprocess.run(
        [str(BENCH_PYTHON), str(Path(__file__).with_name("sdk_loop.py"))],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"sdk_loop.py failed: {tail[:200]}"}
    figures: Figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["requests_seen"] = sim.requests()  # includes the warm-up request
    figures["items"] = figures["tasks"]
    return figures


def measure(
    *,
    instances: int,
    tasks: int = 10,
    latency: float = LATENCY,
    in_flight: Sequence[int] = IN_FLIGHT,
    repeats: int = 3,
    sequential: bool = True,
    sdk: bool = True,
    diagnose: bool = True,
    slow_latency: float = 0.1,
) -> dict[str, Any]:
    """Every variant over ``instances`` simulated instances of ``tasks`` tasks each.

    Returns ``poller``, ``threads``, ``asyncio``, ``asyncio_fixed`` (lists of figures, one per
    ``in_flight``), ``layers`` (figures per HTTP layer of :data:`HTTP_LAYERS`, fetch only, at
    the default in flight), ``poller_httpcore`` (the Poller at the default in flight, else the
    largest, on the httpcore pool of before), ``sequential``, ``sdk`` (figures or None) and
    ``diagnosis`` (figures by variation of the default Poller). Figures hold ``seconds``,
    ``cpu_seconds``, ``sim_cpu_seconds``, ``requests``, ``items`` and ``errors`` (or ``error``
    when the variant could not run).
    """
    out: dict[str, Any] = {
        "instances": instances,
        "tasks": tasks,
        "latency": latency,
        "slow_latency": slow_latency,
        "in_flight": list(in_flight),
        "poller": [],
        "threads": [],
        "asyncio": [],
        "asyncio_fixed": [],
        "layers": [],
        "poller_httpcore": None,
        "sequential": None,
        "sdk": None,
        "diagnosis": {},
    }
    dcs_log = logging.getLogger("bot.dcs.client")
    dcs_log.addHandler(RETRIES)
    dcs_log.propagate = False  # counted in the table instead of printed
    with tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp:
        store = SqliteStore(Path(tmp) / "state.sqlite")
        try:
            with SimProcess(
                instances, tasks=tasks, latency=latency, listen_backlog=DEEP_BACKLOG
            ) as sim:
                _measure_on(sim, store, out, repeats=repeats, sequential=sequential, sdk=sdk,
                            diagnose=diagnose)  # fmt: skip
            if diagnose:
                # Same seed, so the same instance IDs: the store stays valid.
                with SimProcess(instances, tasks=tasks, latency=latency) as sim:
                    http, _, poller = _default_poller(sim, store)
                    try:
                        out["diagnosis"]["backlog5"] = _timed(
                            sim, lambda: _cycle(poller), repeats=repeats, warmup=True
                        )  # the warm-up cycle records the new creation times
                    finally:
                        http.close()
        finally:
            store.close()
            dcs_log.removeHandler(RETRIES)
            dcs_log.propagate = True
    return out


def _settings(sim: SimProcess, store: SqliteStore) -> Settings:
    env = sim.env() | {"STATE_PATH": str(store.path), "DCS_ALERT_CHANNEL": ALERT_CHANNEL}
    return load_settings(env)


def _poller(dcs: DcsClient, store: SqliteStore, settings: Settings, in_flight: int) -> Poller:
    # Resolved once and cached: every measured cycle is a steady-state one.
    watched = WatchedInstances(dcs, (), max_age=timedelta(days=365))
    watched.resolve()
    return Poller(
        dcs,
        store,
        watched,
        alert_channel=ALERT_CHANNEL,
        lookback=settings.lookback,
        max_in_flight=in_flight,
    )


def _default_poller(sim: SimProcess, store: SqliteStore) -> tuple[httpx.Client, DcsClient, Poller]:
    settings = _settings(sim, store)
    http = make_http_client(settings)
    dcs = DcsClient(http, sim.project_id)
    return http, dcs, _poller(dcs, store, settings, DEFAULT_IN_FLIGHT)


def _compared_in_flight(in_flight: Sequence[int]) -> int:
    """The in flight at which the Poller also runs on the httpcore pool of before: the
    default when measured, else the largest."""
    return DEFAULT_IN_FLIGHT if DEFAULT_IN_FLIGHT in in_flight else max(in_flight)


def _measure_on(
    sim: SimProcess,
    store: SqliteStore,
    out: dict[str, Any],
    *,
    repeats: int,
    sequential: bool,
    sdk: bool,
    diagnose: bool,
) -> None:
    settings = _settings(sim, store)
    http, dcs, default = _default_poller(sim, store)
    try:
        baseline = default.run_cycle()  # records every task, silently; opens the connections
        if not baseline.ok:
            raise RuntimeError(f"the baseline cycle failed: {baseline.errors}")
        before = _httpcore_client(settings)
        try:
            k_before = _compared_in_flight(out["in_flight"])
            p_before = _poller(DcsClient(before, sim.project_id), store, settings, k_before)
            p_before.run_cycle()  # opens its connections
            for n in out["in_flight"]:
                p = _poller(dcs, store, settings, n)
                out["poller"].append(_timed(sim, lambda p=p: _cycle(p), repeats=repeats))  # type: ignore[misc]
                if n == k_before:  # side by side with the same Poller, same conditions
                    out["poller_httpcore"] = _timed(sim, lambda: _cycle(p_before), repeats=repeats)
        finally:
            before.close()
        if sequential:
            p1 = _poller(dcs, store, settings, 1)
            out["sequential"] = _timed(sim, lambda: _cycle(p1), repeats=1)
        start = datetime.now(UTC) - timedelta(hours=24)
        race = max(1, repeats - 1)
        out["layers"] = _layers_figures(sim, settings, start, DEFAULT_IN_FLIGHT, repeats)
        for n in out["in_flight"]:
            fetch = partial(_threads_fetch, dcs, sim.instance_ids, n, start)
            out["threads"].append(_timed(sim, fetch, repeats=race))
        for n in out["in_flight"]:
            out["asyncio"].append(asyncio.run(_async_figures(sim, settings, start, n, race)))
        with _failed_import_cached("sniffio"):
            for n in out["in_flight"]:
                figures = asyncio.run(_async_figures(sim, settings, start, n, race))
                out["asyncio_fixed"].append(figures)
        if sdk:
            out["sdk"] = _sdk_figures(sim, start)
        if diagnose:
            sim.set_latency(out["slow_latency"])
            try:
                out["diagnosis"]["slow"] = _timed(sim, lambda: _cycle(default), repeats=repeats)
            finally:
                sim.set_latency(out["latency"])
    finally:
        http.close()


def _s(value: float) -> str:
    return f"{value:.2f}"


def _layers_table(m: dict[str, Any], floor: float) -> Table:
    """The HTTP layers side by side: wall and CPU seconds, CPU ms per request, x limit."""
    n, latency = m["instances"], m["latency"]
    table = Table(
        f"HTTP layer: fetch only (read_tasks per instance), {n:,} instances x "
        f"{latency * 1000:.0f} ms, {DEFAULT_IN_FLIGHT} in flight, same signing and parsing",
        ["variant", "seconds", "x limit", "CPU s", "CPU ms/request", "sim CPU s", "requests",
         "errors (retries)"],
    )  # fmt: skip
    for (name, _), f in zip(HTTP_LAYERS, m["layers"], strict=True):
        table.rows.append(
            [
                name,
                _s(f["seconds"]),
                f"{f['seconds'] / floor:.2f}" if floor else "-",
                _s(f["cpu_seconds"]),
                f"{1000 * f['cpu_seconds'] / max(1, f['requests']):.2f}",
                _s(f["sim_cpu_seconds"]),
                str(f["requests"]),
                f"{f['errors']} ({f.get('retries', 0)})",
            ]
        )
    table.notes += [
        f"limit = {floor:.2f} s; medians of the repeats, taken in turns; CPU ms/request = the",
        "client process's CPU seconds / requests (one GIL: at 20 ms this is the bottleneck).",
        "HTTP/2 is not measured: h2 is not a dependency and the simulator (http.server) speaks",
        "HTTP/1.1 only; DCS requests are small GETs that keep-alive already reuses.",
    ]
    return table


def report(m: dict[str, Any]) -> BenchResult:
    """Tables and targets from the figures of ``measure``."""
    n: int = m["instances"]
    latency: float = m["latency"]
    sdk: Figures | None = m["sdk"] if m["sdk"] and "error" not in m["sdk"] else None

    def limit(k: int, lat: float = latency) -> float:
        return n * lat / k

    def vs_sdk(seconds: float) -> str:
        return f"{sdk['seconds'] / seconds:.1f}x" if sdk else "-"

    def row(name: str, k: int, f: Figures, lat: float = latency) -> list[str]:
        return [
            name,
            str(k),
            _s(f["seconds"]),
            _s(limit(k, lat)),
            f"{f['seconds'] / limit(k, lat):.2f}" if lat else "-",
            vs_sdk(f["seconds"]) if lat == latency else "-",
            _s(f["cpu_seconds"]),
            _s(f["sim_cpu_seconds"]) if "sim_cpu_seconds" in f else "-",
            str(f["requests"]),
            f"{f['errors']} ({f.get('retries', 0)})",
        ]

    headers = ["variant", "in flight", "seconds", "limit s", "x limit", "vs SDK", "CPU s",
               "sim CPU s", "requests", "errors (retries)"]  # fmt: skip
    cycle = Table(
        f"cycle: one steady-state poll cycle, {n:,} instances x {latency * 1000:.0f} ms per "
        "request (AK/SK signed, simulator in its own process)",
        headers,
    )
    if sdk:
        cycle.rows.append(row(f"huaweicloudsdkdcs {sdk['sdk_version']}, sequential loop", 1, sdk))
    elif m["sdk"]:
        cycle.notes.append(f"official SDK not measured: {m['sdk']['error']}")
    if m["sequential"]:
        cycle.rows.append(
            row("DcsClient one at a time (Poller, max_in_flight=1)", 1, m["sequential"])
        )
    for k, f in zip(m["in_flight"], m["poller"], strict=True):
        mark = " (default)" if k == DEFAULT_IN_FLIGHT else ""
        cycle.rows.append(row(f"Poller.run_cycle, max_in_flight={k}{mark}", k, f))
        if k == _compared_in_flight(m["in_flight"]) and m.get("poller_httpcore"):
            name = f"Poller.run_cycle, max_in_flight={k}, httpcore pool (before)"
            cycle.rows.append(row(name, k, m["poller_httpcore"]))
    cycle.notes += [
        "limit = instances x latency / requests in flight (the best any client can do);",
        "x limit = seconds / limit; CPU s = CPU seconds of the client process (one GIL),",
        "sim CPU s = of the simulator process; Poller rows: the whole cycle (store reads, diff,",
        f"commit), median of the repeats; simulator listen backlog {DEEP_BACKLOG} (see diagnosis).",
    ]

    race = Table(
        f"issue 3: threads vs asyncio, fetch only (one page per instance), {n:,} instances x "
        f"{latency * 1000:.0f} ms; seconds (client CPU seconds)",
        ["in flight", "limit s", "threads", "asyncio", "asyncio, sniffio fixed",
         "best asyncio/threads"],
    )  # fmt: skip
    for k, t, a, af in zip(
        m["in_flight"], m["threads"], m["asyncio"], m["asyncio_fixed"], strict=True
    ):
        best = min(a["seconds"], af["seconds"])
        race.rows.append(
            [
                str(k),
                _s(limit(k)),
                f"{_s(t['seconds'])} ({_s(t['cpu_seconds'])})",
                f"{_s(a['seconds'])} ({_s(a['cpu_seconds'])})",
                f"{_s(af['seconds'])} ({_s(af['cpu_seconds'])})",
                f"{best / t['seconds']:.2f}",
            ]
        )
    retries = sum(f.get("retries", 0) for f in (*m["threads"], *m["asyncio"], *m["asyncio_fixed"]))
    if retries:
        race.notes.append(f"retries logged by DcsClient during the threads runs: {retries}")
    race.notes += [
        "threads: ThreadPoolExecutor + DcsClient.list_tasks_page on one httpx.Client (as built);",
        "asyncio: httpx.AsyncClient + asyncio.Semaphore, same AK/SK auth and Task parsing;",
        "sniffio fixed: httpcore 1.0 runs `import sniffio` for every lock of its async pool and",
        "sniffio is not installed (anyio 4 dropped it), so each one searches sys.path and fails;",
        "the column makes that import fail at once, as installing sniffio would.",
    ]
    tables = [cycle]
    if m.get("layers"):
        tables.append(_layers_table(m, limit(DEFAULT_IN_FLIGHT)))
    tables.append(race)

    by_k: dict[int, Figures] = dict(zip(m["in_flight"], m["poller"], strict=True))
    default = by_k.get(DEFAULT_IN_FLIGHT)
    diagnosis = m["diagnosis"]
    if default is not None and diagnosis:
        k = DEFAULT_IN_FLIGHT
        diag = Table(
            f"cycle diagnosis: the default Poller ({k} in flight) under variations", headers
        )
        diag.rows.append(row(f"as above (listen backlog {DEEP_BACKLOG})", k, default))
        threads = dict(zip(m["in_flight"], m["threads"], strict=True)).get(k)
        if threads is not None:
            diag.rows.append(row("fetch only (no store reads, diff, commit)", k, threads))
        if "backlog5" in diagnosis:
            diag.rows.append(row("simulator's own listen backlog (5)", k, diagnosis["backlog5"]))
        if "slow" in diagnosis:
            slow = m["slow_latency"]
            diag.rows.append(row(f"{slow * 1000:.0f} ms per request", k, diagnosis["slow"], slow))
        tables.append(diag)

    result = BenchResult("cycle", tables)
    if default is not None:
        x_limit = default["seconds"] / limit(DEFAULT_IN_FLIGHT) if latency else math.nan
        if sdk:
            ratio = sdk["seconds"] / default["seconds"]
            result.targets.append(
                Target(
                    "cycle vs sequential SDK loop",
                    f"{ratio:.1f}x faster ({_s(sdk['seconds'])} s vs {_s(default['seconds'])} s)",
                    ">= 10x",
                    ratio >= 10,
                )
            )
        else:
            result.targets.append(Target("cycle vs sequential SDK loop", "-", ">= 10x", None))
        result.targets.append(
            Target(
                f"cycle vs concurrency limit ({DEFAULT_IN_FLIGHT} in flight)",
                f"{x_limit:.2f}x ({_s(default['seconds'])} s vs {_s(limit(DEFAULT_IN_FLIGHT))} s)",
                "<= 2x",
                x_limit <= 2 if latency else None,
            )
        )
    return result


def run(quick: bool) -> BenchResult:
    """The benchmark at full size (1,000 instances), or 100 with ``quick``."""
    if quick:
        return report(measure(instances=100, repeats=1))
    return report(measure(instances=1000, repeats=3))


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/bench_cycle.py [--quick]``."""
    return script_main("cycle", run, argv)


if __name__ == "__main__":
    sys.exit(main())
