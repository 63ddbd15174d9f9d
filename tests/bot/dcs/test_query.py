"""run_query filters, sorts and limits tasks of several instances, reporting failing ones."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.dcs.client import DcsClient, RetryPolicy
from bot.dcs.models import Instance
from bot.dcs.query import QueryResult, TaskQuery, run_query
from bot.testing.simulator import DcsSimulator

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
FAST = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.01)


@pytest.fixture
def sim() -> Iterator[DcsSimulator]:
    with DcsSimulator(project_id="p1", clock=lambda: NOW) as simulator:
        yield simulator


@pytest.fixture
def client(sim: DcsSimulator) -> Iterator[DcsClient]:
    with httpx.Client(base_url=sim.url, timeout=5) as http:
        yield DcsClient(http, "p1", retry=FAST, sleep=lambda _: None, rng=random.Random(0))


@pytest.fixture
def two(sim: DcsSimulator) -> dict[str, str]:
    """Two instances with tasks an hour apart, alternating between them; returns name → id."""
    a = sim.add_instance("cache-a")
    b = sim.add_instance("cache-b")
    rows = [
        (a, "EXTEND", "SUCCESS", 1),
        (b, "BindEip", "FAILED", 2),
        (a, "modify", "SUCCESS", 3),
        (b, "EXTEND", "EXECUTING", 4),
        (a, "AddWhitelist", "FAILED", 5),
        (b, "EXTEND", "SUCCESS", 30),  # older than a day
    ]
    ids = {}
    for n, (iid, name, status, hours) in enumerate(rows):
        ids[f"t{n}"] = sim.add_task(
            iid, name, status, created_at=NOW - timedelta(hours=hours), task_id=f"{n:032x}"
        )
    return {"a": a, "b": b} | ids


def instances(sim: DcsSimulator) -> list[Instance]:
    return [Instance(instance_id=iid, name=iid) for iid in sim.instance_ids()]


def ids_of(result: QueryResult) -> list[str]:
    return [t.id for t in result.tasks]


@pytest.mark.parametrize(
    ("query", "expected", "total"),
    [
        (TaskQuery(), ["t0", "t1", "t2", "t3", "t4"], 5),
        (TaskQuery(since=timedelta(days=2)), ["t0", "t1", "t2", "t3", "t4", "t5"], 6),
        (TaskQuery(since=timedelta(hours=2, minutes=30)), ["t0", "t1"], 2),
        (TaskQuery(status="failed"), ["t1", "t4"], 2),
        (TaskQuery(name="extend"), ["t0", "t3"], 2),
        (TaskQuery(name="EXTEND", status="Executing"), ["t3"], 1),
        (TaskQuery(limit=2), ["t0", "t1"], 5),
        (TaskQuery(limit=0), ["t0", "t1", "t2", "t3", "t4"], 5),
        (TaskQuery(status="CANCELLED"), [], 0),
    ],
)
def test_filters_limit_and_order(
    sim: DcsSimulator,
    client: DcsClient,
    two: dict[str, str],
    query: TaskQuery,
    expected: list[str],
    total: int,
) -> None:
    """Status and name match case-insensitively; tasks come newest first, cut at the limit."""
    result = run_query(client, instances(sim), query, now=NOW)
    assert ids_of(result) == [two[key] for key in expected]
    assert result.total == total
    assert result.errors == {}


def test_sends_the_window_to_dcs(sim: DcsSimulator, client: DcsClient, two: dict[str, str]) -> None:
    """Each instance is asked for tasks from now - since up to now."""
    run_query(client, instances(sim), TaskQuery(since=timedelta(hours=6)), now=NOW)
    queries = [r.query for r in sim.requests if r.path.endswith("/tasks")]
    assert len(queries) == 2
    assert {(q["start_time"], q["end_time"]) for q in queries} == {
        ("20240501060000", "20240501120000")
    }


def test_one_failing_instance_is_reported_and_the_rest_returned(
    sim: DcsSimulator, client: DcsClient, two: dict[str, str]
) -> None:
    """An instance DCS cannot answer for lands in errors; the others' tasks still come back."""
    gone = "5560df16-cebf-4473-95c4-d1b573c16e79"
    sim.inject("503", count=10, path_contains=two["b"])
    wanted = [*instances(sim), Instance(instance_id=gone, name=gone)]
    result = run_query(client, wanted, TaskQuery(), now=NOW)
    assert ids_of(result) == [two["t0"], two["t2"], two["t4"]]
    assert set(result.errors) == {two["b"], gone}
    assert "404" in result.errors[gone]
    assert "503" in result.errors[two["b"]]


def test_duplicate_instances_are_fetched_once(
    sim: DcsSimulator, client: DcsClient, two: dict[str, str]
) -> None:
    """Naming an instance twice neither fetches nor counts it twice."""
    a = Instance(instance_id=two["a"], name="cache-a")
    result = run_query(client, [a, a], TaskQuery(), now=NOW)
    assert result.total == 3
    assert len([r for r in sim.requests if r.path.endswith("/tasks")]) == 1


def test_no_instances_gives_an_empty_result(client: DcsClient) -> None:
    """With nothing to ask, the answer is empty and nothing fails."""
    assert run_query(client, [], TaskQuery(), now=NOW) == QueryResult(tasks=[], total=0, errors={})


def test_many_instances_are_all_fetched(sim: DcsSimulator, client: DcsClient) -> None:
    """More instances than worker threads are all fetched, each task once."""
    for n in range(9):
        iid = sim.add_instance(f"cache-{n}")
        sim.add_task(iid, "EXTEND", "SUCCESS", created_at=NOW - timedelta(minutes=n + 1))
    result = run_query(client, instances(sim), TaskQuery(limit=0), now=NOW)
    assert result.total == 9
    created = [t.created_at for t in result.tasks]
    assert created == [NOW - timedelta(minutes=n + 1) for n in range(9)]


@pytest.mark.parametrize(
    "kwargs", [{"limit": -1}, {"since": timedelta(0)}, {"since": timedelta(hours=-1)}]
)
def test_invalid_query_is_refused(kwargs: dict[str, object]) -> None:
    """A negative limit or a non-positive window is a ValueError."""
    with pytest.raises(ValueError, match=r"limit|since"):
        TaskQuery(**kwargs)  # type: ignore[arg-type]
