"""Tests for bot.pipeline.watch: the poller refreshes the watched list by age; handlers only
read it. Real DCS client over loopback to the simulator; the clock is injected."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from bot.dcs.auth import TokenAuth
from bot.dcs.client import DcsClient, RetryPolicy
from bot.dcs.errors import DcsError
from bot.dcs.models import Instance
from bot.pipeline.watch import WatchedInstances
from bot.testing.simulator import DcsSimulator
from tests.conftest import DCS_TOKEN

FAST = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.01)
AGE = timedelta(minutes=10)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dcs(simulator: DcsSimulator) -> Iterator[DcsClient]:
    """A DCS client for the simulator that gives up fast."""
    simulator.add_instance("cache-prod")
    with httpx.Client(base_url=simulator.url, auth=TokenAuth(DCS_TOKEN)) as http:
        yield DcsClient(http, simulator.project_id, retry=FAST, sleep=lambda _: None)


def listings(sim: DcsSimulator) -> int:
    """How many times the instance list was asked for."""
    return sum(1 for r in sim.requests if r.path.endswith("/instances"))


def names(instances: list[Instance]) -> list[str]:
    """The instances' names, sorted."""
    return sorted(i.name for i in instances)


def test_the_poller_resolves_again_once_max_age_has_passed(
    simulator: DcsSimulator, dcs: DcsClient
) -> None:
    """Within max_age the list is reused; after it, a new instance of the project is picked up."""
    clock = Clock()
    watched = WatchedInstances(dcs, (), max_age=AGE, clock=clock)
    assert names(watched.resolve()) == ["cache-prod"]
    simulator.add_instance("cache-new")

    clock.now += AGE.total_seconds() - 1
    assert names(watched.resolve()) == ["cache-prod"]
    clock.now += 1
    assert names(watched.resolve()) == ["cache-new", "cache-prod"]
    assert listings(simulator) == 2


def test_handlers_read_what_was_resolved_without_asking_dcs(
    simulator: DcsSimulator, dcs: DcsClient
) -> None:
    """current() never lists instances once the poller resolved them, however often or late."""
    clock = Clock()
    watched = WatchedInstances(dcs, (), max_age=AGE, clock=clock)
    watched.resolve()
    simulator.add_instance("cache-new")

    for _ in range(50):
        clock.now += AGE.total_seconds()
        assert names(watched.current()) == ["cache-prod"]

    assert listings(simulator) == 1


def test_handler_reads_do_not_move_the_pollers_refresh(
    simulator: DcsSimulator, dcs: DcsClient
) -> None:
    """However many commands read the list, the poller refreshes on age alone."""
    clock = Clock()
    watched = WatchedInstances(dcs, (), max_age=AGE, clock=clock)
    watched.resolve()
    for _ in range(25):
        watched.current()

    watched.resolve()
    assert listings(simulator) == 1


def test_a_command_before_any_resolution_resolves_once(
    simulator: DcsSimulator, dcs: DcsClient
) -> None:
    """A process that never resolved (no cycle yet) resolves on the first read, then reuses it."""
    watched = WatchedInstances(dcs, (), max_age=AGE, clock=Clock())

    assert names(watched.current()) == ["cache-prod"]
    assert names(watched.current()) == ["cache-prod"]
    assert listings(simulator) == 1


def test_a_failed_refresh_keeps_the_last_list_until_the_next_due_time(
    simulator: DcsSimulator, dcs: DcsClient
) -> None:
    """DCS failing at refresh time keeps the last good list and waits max_age to try again."""
    clock = Clock()
    watched = WatchedInstances(dcs, (), max_age=AGE, clock=clock)
    watched.resolve()
    simulator.add_instance("cache-new")
    simulator.inject("500", count=FAST.attempts, path_contains="/instances")

    clock.now += AGE.total_seconds()
    assert names(watched.resolve()) == ["cache-prod"]
    clock.now += 1
    assert names(watched.resolve()) == ["cache-prod"]
    clock.now += AGE.total_seconds()
    assert names(watched.resolve()) == ["cache-new", "cache-prod"]


def test_with_no_list_ever_resolved_a_failure_is_raised(
    simulator: DcsSimulator, dcs: DcsClient
) -> None:
    """The very first resolution failing is the caller's to report."""
    simulator.inject("500", count=FAST.attempts, path_contains="/instances")
    watched = WatchedInstances(dcs, (), max_age=AGE, clock=Clock())

    with pytest.raises(DcsError):
        watched.resolve()


def test_force_resolves_at_once(simulator: DcsSimulator, dcs: DcsClient) -> None:
    """resolve(force=True) asks DCS even within max_age."""
    watched = WatchedInstances(dcs, (), max_age=AGE, clock=Clock())
    watched.resolve()
    simulator.add_instance("cache-new")

    assert names(watched.resolve(force=True)) == ["cache-new", "cache-prod"]
