"""Tests for bot.lifecycle: in-process for its rules, and the real ``serve`` and ``poll`` as
subprocesses for its promise: SIGTERM ends the process within 10 s in every state (DCS stalled
or being retried, PostgreSQL down or hanging, Slack rate-limiting), losing nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from bot.lifecycle import Lifecycle
from bot.testing.fake_slack import FakeSlack, RateLimit
from bot.testing.simulator import DcsSimulator
from state.sqlite import SqliteStore
from tests.bot.test_cli import PROD_ID, STOP_WITHIN, Running, free_port
from tests.conftest import ALERTS, SLACK_TOKEN, bot_env
from tests.faultproxy import FaultProxy
from tests.postgres import PgSchema
from tests.waiting import wait_until

# --- the rules, in-process -----------------------------------------------------------------------


class Exited(Exception):
    """Raised by the injected exit instead of ending the test process."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def fake_exit(status: int) -> NoReturn:
    raise Exited(status)


def test_run_returns_0_after_the_stopper_ran() -> None:
    life = Lifecycle(grace=5, exit=fake_exit)
    stopped = threading.Event()

    def start() -> Callable[[], None]:
        threading.Timer(0.05, life.request_stop).start()
        return stopped.set

    assert life.run(start) == 0
    assert stopped.is_set()


def test_an_error_of_the_start_is_raised_by_run() -> None:
    """The command line turns it into its one-line message and exit status."""
    life = Lifecycle(grace=5, exit=fake_exit)

    def start() -> Callable[[], None]:
        raise OSError(98, "cannot listen on PORT=3000: Address already in use")

    with pytest.raises(OSError, match="cannot listen on PORT=3000"):
        life.run(start)


def test_a_shutdown_that_hangs_is_abandoned_after_the_grace_period() -> None:
    life = Lifecycle(grace=0.3, exit=fake_exit)
    release = threading.Event()

    def start() -> Callable[[], None]:
        life.request_stop()
        return lambda: release.wait(30)

    try:
        with pytest.raises(Exited) as exited:
            life.run(start)
    finally:
        release.set()
    assert exited.value.status == 0


def test_a_stop_during_a_start_that_hangs_ends_the_process() -> None:
    life = Lifecycle(grace=5, exit=fake_exit)
    release = threading.Event()

    def start() -> Callable[[], None]:
        life.request_stop()
        release.wait(30)  # e.g. connecting to a database that does not answer
        return lambda: None

    try:
        with pytest.raises(Exited):
            life.run(start)
    finally:
        release.set()


# --- the promise, with the real processes ---------------------------------------------------------


def stop_time(process: Running) -> float:
    """Send SIGTERM; the seconds until the process exited (fails past STOP_WITHIN)."""
    began = time.monotonic()
    status = process.terminate(timeout=STOP_WITHIN)
    elapsed = time.monotonic() - began
    print(f"SIGTERM to exit: {elapsed:.2f} s (status {status})")
    assert status == 0, process.stderr
    assert "Traceback" not in process.stderr
    return elapsed


def livez(url: str) -> int | None:
    try:
        return httpx.get(f"{url}/livez", timeout=2).status_code
    except httpx.TransportError:
        return None


@pytest.fixture
def sim_with_prod(simulator: DcsSimulator) -> DcsSimulator:
    simulator.add_instance("cache-prod", instance_id=PROD_ID)
    return simulator


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start ``serve``/``poll``; every one still running at the end is killed."""
    started: list[Running] = []

    def run(*args: str, env: dict[str, str]) -> Running:
        process = Running(args, env=env, cwd=tmp_path)
        started.append(process)
        return process

    yield run
    for process in started:
        process.kill()


@pytest.mark.slow  # waits out the 3 s grace period by design
@pytest.mark.parametrize("command", ["serve", "poll"])
def test_sigterm_while_a_dcs_request_stalls(
    command: str,
    sim_with_prod: DcsSimulator,
    slack: FakeSlack,
    tmp_path: Path,
    start: Callable[..., Running],
) -> None:
    sim_with_prod.slow_delay = 60
    sim_with_prod.inject("slow", count=1000)
    env = bot_env(sim_with_prod, slack, tmp_path / "state.sqlite", PORT=str(free_port()))
    process = start(command, env=env)
    wait_until(lambda: sim_with_prod.requests, "the first DCS request (which stalls)")

    stop_time(process)


@pytest.mark.parametrize("command", ["serve", "poll"])
def test_sigterm_while_dcs_requests_are_retried(
    command: str,
    sim_with_prod: DcsSimulator,
    slack: FakeSlack,
    tmp_path: Path,
    start: Callable[..., Running],
) -> None:
    sim_with_prod.inject("503", count=1000)
    env = bot_env(sim_with_prod, slack, tmp_path / "state.sqlite", PORT=str(free_port()))
    process = start(command, env=env)
    wait_until(lambda: "retry 2/" in process.stderr, "a second retry")

    stop_time(process)
    assert "retry 3/" not in process.stderr  # the stop ended the retrying


def test_sigterm_while_slack_rate_limits_keeps_the_rest_in_the_outbox(
    sim_with_prod: DcsSimulator, tmp_path: Path, start: Callable[..., Running]
) -> None:
    """8 alerts, Slack takes one per 20 s: the drain waits; SIGTERM cuts the wait short and
    every alert is either in Slack or still in the outbox."""
    sim_with_prod.add_tasks_bulk(PROD_ID, 8, status="EXECUTING")
    state = tmp_path / "state.sqlite"
    with FakeSlack(token=SLACK_TOKEN, rate_limit=RateLimit(per_second=0.05, burst=1)) as slow:
        env = bot_env(sim_with_prod, slow, state, PORT=str(free_port()), DCS_POLL_INTERVAL="60")
        process = start("serve", env=env)
        wait_until(lambda: len(slow.calls_to("chat.postMessage")) >= 2, "a rate-limited call")
        time.sleep(0.5)  # the drain is now waiting for the channel's Retry-After
        stop_time(process)
        posted = len(slow.messages(ALERTS))

    store = SqliteStore(state)
    try:
        pending = store.count_pending()
    finally:
        store.close()
    assert posted >= 1
    assert posted + pending == 8


# --- PostgreSQL down or hanging, behind a fault proxy ------------------------------------------


@pytest.fixture
def pg_behind_proxy(pg_schema: PgSchema) -> Iterator[tuple[FaultProxy, str]]:
    """A fresh schema, reached through a fault proxy: (proxy, DATABASE_URL via the proxy)."""
    pg_schema.create()
    proxy = FaultProxy.for_url(pg_schema.url)
    proxy.start()
    via_proxy = PgSchema(proxy.url(pg_schema.url), pg_schema.name)
    try:
        yield proxy, via_proxy.search_path_url
    finally:
        proxy.close()


def serve_on_postgres(
    start: Callable[..., Running],
    sim: DcsSimulator,
    slack: FakeSlack,
    tmp_path: Path,
    database_url: str,
    **extra: str,
) -> tuple[Running, str]:
    """``serve`` on a free port with its state at ``database_url``: the process and its URL."""
    port = free_port()
    env = bot_env(
        sim, slack, tmp_path / "unused.sqlite", PORT=str(port), DATABASE_URL=database_url, **extra
    )
    return start("serve", env=env), f"http://127.0.0.1:{port}"


@pytest.mark.slow  # waits out the 3 s grace period by design
@pytest.mark.postgres
@pytest.mark.parametrize("fault", ["down", "stall"])
def test_sigterm_while_postgres_is_down_or_hanging(
    fault: str,
    pg_behind_proxy: tuple[FaultProxy, str],
    sim_with_prod: DcsSimulator,
    slack: FakeSlack,
    tmp_path: Path,
    start: Callable[..., Running],
) -> None:
    proxy, database_url = pg_behind_proxy
    process, _ = serve_on_postgres(
        start, sim_with_prod, slack, tmp_path, database_url, DCS_POLL_INTERVAL="1"
    )
    wait_until(lambda: "now the poller" in process.stderr, "serve to take the lease")
    getattr(proxy, fault)()
    time.sleep(1.5)  # at least one poll cycle and lease renewal run into the fault

    stop_time(process)


@pytest.mark.postgres
def test_serve_binds_its_port_and_stops_while_postgres_hangs_at_start(
    pg_behind_proxy: tuple[FaultProxy, str],
    sim_with_prod: DcsSimulator,
    slack: FakeSlack,
    tmp_path: Path,
    start: Callable[..., Running],
) -> None:
    """/livez answers although the store cannot be opened yet; SIGTERM still ends it."""
    proxy, database_url = pg_behind_proxy
    proxy.stall()
    process, url = serve_on_postgres(start, sim_with_prod, slack, tmp_path, database_url)

    assert wait_until(lambda: livez(url), "/livez to answer") == 200
    ready = httpx.get(f"{url}/readyz", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["status"] == "starting"
    stop_time(process)


@pytest.mark.slow  # a drill: its 1 s bound is the promise, measured on a machine not saturated
@pytest.mark.postgres
@pytest.mark.parametrize("fault", ["down", "stall"])
def test_readyz_answers_within_1s_while_postgres_is_down_or_hanging(
    fault: str,
    pg_behind_proxy: tuple[FaultProxy, str],
    sim_with_prod: DcsSimulator,
    slack: FakeSlack,
    tmp_path: Path,
    start: Callable[..., Running],
) -> None:
    """Platforms' readiness checks time out after a second or two: /readyz says 503 in time,
    with the last facts it knew; /livez stays 200 (a database outage must not restart the bot)."""
    proxy, database_url = pg_behind_proxy
    process, url = serve_on_postgres(start, sim_with_prod, slack, tmp_path, database_url)

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, "/readyz 200")
    getattr(proxy, fault)()
    timings = []
    for _ in range(5):
        began = time.monotonic()
        response = httpx.get(f"{url}/readyz", timeout=5)
        timings.append(time.monotonic() - began)
        assert response.status_code == 503
        assert response.json()["status"] == "state_unavailable"
        assert livez(url) == 200
    print(f"/readyz with PostgreSQL {fault}: " + ", ".join(f"{t:.3f} s" for t in timings))
    assert max(timings) < 1.0
    stop_time(process)
