"""Tests for bot.dcs.limit: the AIMD limit on DCS requests in flight, alone and shared by two
DcsClients against two simulators that answer 429."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from bot.dcs.client import DcsClient, RetryPolicy
from bot.dcs.limit import AdaptiveLimit
from bot.testing.simulator import DcsSimulator

FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.002)


def answer(limit: AdaptiveLimit, status: int) -> None:
    """One request through the limit, answered with ``status``."""
    with limit.slot() as slot:
        slot.answered(status)


def test_a_429_halves_the_limit_and_answers_raise_it_one_per_round() -> None:
    """Multiplicative decrease on a 429, additive increase (about +1 per `limit` answers)."""
    limit = AdaptiveLimit(initial=16, maximum=32)
    answer(limit, 429)
    assert limit.limit == 8
    for _ in range(9):
        answer(limit, 200)
    assert limit.limit == 9
    for _ in range(1000):
        answer(limit, 200)
    assert limit.limit == 32


def test_the_429s_of_one_round_cut_the_limit_once() -> None:
    """Requests already in flight when the limit dropped do not drop it again."""
    limit = AdaptiveLimit(initial=16)
    held = [limit.slot() for _ in range(4)]
    slots = [h.__enter__() for h in held]
    for h, slot in zip(held, slots, strict=True):
        slot.answered(429)
        h.__exit__(None, None, None)
    assert limit.limit == 8
    assert limit.decreases == 1
    answer(limit, 429)  # a request issued after the cut: a new round
    assert limit.limit == 4


def test_the_limit_never_falls_below_its_minimum_and_no_answer_teaches_nothing() -> None:
    """Many 429s stop at ``minimum``; a request that got no answer changes nothing."""
    limit = AdaptiveLimit(initial=4, minimum=2)
    for _ in range(10):
        answer(limit, 429)
    assert limit.limit == 2
    with limit.slot():
        pass  # a timeout: no answer
    assert limit.limit == 2


def test_a_request_beyond_the_limit_waits_for_a_place() -> None:
    """With the limit reached, the next request starts only once one in flight settles."""
    limit = AdaptiveLimit(initial=1, maximum=1)
    first = limit.slot()
    first.__enter__()
    entered = threading.Event()

    def second() -> None:
        with limit.slot() as slot:
            entered.set()
            slot.answered(200)

    worker = threading.Thread(target=second)
    worker.start()
    assert not entered.wait(0.2)
    assert limit.in_flight == 1
    first.__exit__(None, None, None)
    worker.join(10)
    assert entered.is_set()


@pytest.fixture
def two() -> Iterator[tuple[DcsSimulator, DcsSimulator]]:
    """Two projects' simulators with one instance each."""
    sims = (DcsSimulator(project_id="p1"), DcsSimulator(project_id="p2"))
    for sim in sims:
        sim.start()
        sim.add_instance("cache", instance_id=f"{sim.project_id}-i")
    yield sims
    for sim in sims:
        sim.stop()


def test_a_429_from_one_project_slows_every_client_sharing_the_limit(
    two: tuple[DcsSimulator, DcsSimulator],
) -> None:
    """The limit is the poller's, not the instance's: a 429 that one project's client meets
    lowers the requests in flight the other client may have, and both still read their tasks."""
    limit = AdaptiveLimit(initial=32)
    throttled, other = two
    throttled.inject("429", count=2)
    with (
        httpx.Client(base_url=throttled.url) as h1,
        httpx.Client(base_url=other.url) as h2,
    ):
        first = DcsClient(h1, "p1", retry=FAST, sleep=lambda _: None, limit=limit)
        second = DcsClient(h2, "p2", retry=FAST, sleep=lambda _: None, limit=limit)
        assert first.list_tasks("p1-i") == []
        lowered = limit.limit
        assert second.list_tasks("p2-i") == []
    assert lowered < 32
    assert limit.decreases == 2
