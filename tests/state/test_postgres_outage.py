"""The PostgreSQL store while the database restarts (Heroku Postgres maintenance), with a
loopback fault proxy in front of the real server: calls fail fast with StateError, ping()
answers within its deadline even when the server hangs, and the same store works again when
the database is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from state.base import CycleCommit, StateError
from state.postgres import PostgresStore
from tests.faultproxy import FaultProxy
from tests.postgres import PgSchema
from tests.state.conftest import FakeClock
from tests.state.test_contract import INSTANCE, post, record
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # real connect and pool timeouts

#: What "fail fast" promises: a state call while the database is down ends within this.
FAILS_WITHIN = 10.0


@pytest.fixture
def proxied(pg_schema: PgSchema, clock: FakeClock) -> Iterator[tuple[FaultProxy, PostgresStore]]:
    """A store whose every connection goes through a fault proxy."""
    proxy = FaultProxy.for_url(pg_schema.url)
    proxy.start()
    store = PostgresStore(proxy.url(pg_schema.url), schema=pg_schema.name, clock=clock)
    yield proxy, store
    proxy.up()
    store.close()
    proxy.close()


def timed(call: object) -> tuple[float, BaseException | None]:
    """How long ``call()`` took, and what it raised."""
    started = time.monotonic()
    try:
        call()  # type: ignore[operator]
    except BaseException as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def answers(store: PostgresStore) -> bool:
    """True when the store answers a ping."""
    try:
        store.ping(timeout=2)
    except StateError:
        return False
    return True


def test_calls_fail_fast_while_the_database_is_down_and_work_when_it_is_back(
    proxied: tuple[FaultProxy, PostgresStore],
) -> None:
    """A restart cuts every connection and refuses new ones: each call is a StateError within
    the bound, never a hang or another exception; afterwards the same store (its pool
    reconnected) commits and reads again, and nothing of the failed calls was written."""
    proxy, store = proxied
    store.commit_cycle(CycleCommit(tasks=[record("t1")]))

    proxy.down()
    for call in (
        lambda: store.tasks_of(INSTANCE),
        lambda: store.commit_cycle(CycleCommit(tasks=[record("t2")], deliveries=[post("t2")])),
        store.count_pending,
        lambda: store.acquire_poller("me"),
    ):
        seconds, error = timed(call)
        assert isinstance(error, StateError), error
        assert seconds < FAILS_WITHIN
    seconds, error = timed(store.ping)
    assert isinstance(error, StateError)
    assert seconds < 2.5  # ping(1.0): about a second, with room for a loaded machine

    proxy.up()
    wait_until(lambda: answers(store), "the pool to reconnect")
    assert set(store.tasks_of(INSTANCE)) == {"t1"}
    assert store.count_pending() == 0
    store.commit_cycle(CycleCommit(tasks=[record("t3")]))
    assert set(store.tasks_of(INSTANCE)) == {"t1", "t3"}


def test_ping_answers_within_a_second_when_the_database_hangs(
    proxied: tuple[FaultProxy, PostgresStore],
) -> None:
    """A server that accepts but never answers: ping(1.0) is a StateError after about a
    second, and a ping while the first still hangs fails at once instead of piling up."""
    proxy, store = proxied
    store.ping()
    proxy.stall()

    first, error = timed(lambda: store.ping(timeout=1.0))
    second, again = timed(lambda: store.ping(timeout=1.0))

    assert isinstance(error, StateError)
    assert "no answer within 1 s" in str(error)
    assert first < 2.5  # about a second, with room for a loaded machine
    assert isinstance(again, StateError)
    assert second < 2.5
