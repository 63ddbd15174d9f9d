"""One bad task or instance never stops polling (issue 10.3): the real Poller over loopback HTTP
to the DCS simulator, on both real stores (SQLite file and PostgreSQL)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.dcs.client import DcsClient, RetryPolicy
from bot.pipeline.poll import CycleResult, Poller
from bot.pipeline.watch import WatchedInstances
from bot.testing.simulator import DcsSimulator
from tests.state.conftest import (  # noqa: F401  # fixtures used by name
    AnyStore,
    StoreFactory,
    clock,
    make_store,
    postgres_factory,
    sqlite_factory,
)

BAD = "11111111-1111-4111-8111-111111111111"
GOOD = "22222222-2222-4222-8222-222222222222"
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NUL = "\x00"


class Bot:
    """A poller on the simulator and one store; the clock moves a minute per cycle."""

    def __init__(self, sim: DcsSimulator, store: AnyStore) -> None:
        self.sim, self.store, self.now = sim, store, NOW
        self.http = httpx.Client(base_url=sim.url, timeout=5.0)
        retry = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.002)
        self.dcs = DcsClient(self.http, sim.project_id, retry=retry, rng=random.Random(1))
        self.poller = Poller(
            self.dcs,
            store,
            WatchedInstances(self.dcs, ()),
            alert_channel="C0ALERTS",
            lookback=timedelta(hours=24),
            clock=lambda: self.now,
        )

    def cycle(self) -> CycleResult:
        self.now += timedelta(minutes=1)
        return self.poller.run_cycle()

    def texts(self, result: CycleResult) -> list[str]:
        return [d.text for d in result.commit.deliveries]


@pytest.fixture
def bot(make_store: StoreFactory) -> Iterator[Bot]:  # noqa: F811  # the imported fixture
    sim = DcsSimulator(project_id="p1", clock=lambda: NOW)
    sim.start()
    sim.add_instance("cache-bad", instance_id=BAD)
    sim.add_instance("cache-good", instance_id=GOOD)
    b = Bot(sim, make_store())
    yield b
    b.http.close()
    sim.stop()


def test_nul_characters_in_any_field_are_stored_and_polling_goes_on(bot: Bot) -> None:
    """A task with NUL in every string field (keys too) is stored once, cleaned, and the
    following cycles still alert for every instance (PostgreSQL refuses NUL in text and jsonb)."""
    dirty = bot.sim.add_task(
        BAD,
        f"EXT{NUL}END",
        "EXECUTING",
        user_name=f"ali{NUL}ce",
        details={"old_capacity": f"1{NUL}", "group_name": f"g{NUL}", "node_name": "\ud800x"},
        extra={f"ex{NUL}tra": [f"a{NUL}", {"deep": f"b{NUL}"}], "status": f"EXECUTING{NUL}"},
    )
    bot.cycle()  # the first cycle: baseline; running tasks are announced
    first = bot.cycle()
    assert first.ok, first.errors
    bot.sim.add_task(GOOD, "BindEip", "EXECUTING")
    bot.sim.set_extra(dirty, {"status": f"SUC{NUL}CESS"})

    result = bot.cycle()

    assert result.ok, result.errors
    texts = bot.texts(result)
    assert any("Enabling public access" in t for t in texts)
    assert any("SUCCESS" in t for t in texts)
    record = bot.store.find_task(dirty)
    assert record is not None
    assert record.status == "SUCCESS"
    assert NUL not in repr(record.task)
    assert record.task["extra"] == ["a", {"deep": "b"}]


@pytest.mark.parametrize("status", [None, 5, {"x": 1}, "", ["EXECUTING"]])
def test_a_task_without_a_string_status_is_skipped_and_reported(
    bot: Bot, status: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A task whose status goes missing or non-string alerts nothing (no false transition),
    the cycle result names its instance, a log line says why, the rest is polled as usual."""
    task_id = bot.sim.add_task(BAD, "EXTEND", "EXECUTING")
    bot.cycle()
    bot.sim.set_extra(task_id, {"status": status})
    bot.sim.add_task(GOOD, "BindEip", "EXECUTING")

    result = bot.cycle()

    assert result.ok
    assert list(result.malformed) == [BAD]
    assert task_id in result.malformed[BAD]
    assert [t for t in bot.texts(result) if "EXTEND" in t or "specifications" in t] == []
    assert any("Enabling public access" in t for t in bot.texts(result))
    assert any("malformed" in r.getMessage() and BAD in r.getMessage() for r in caplog.records)
    record = bot.store.find_task(task_id)
    assert record is not None
    assert record.status == "EXECUTING"

    bot.sim.set_extra(task_id, {"status": "FAILED"})
    later = bot.cycle()
    assert later.malformed == {}
    assert any("EXECUTING → FAILED" in t for t in bot.texts(later))


def test_a_task_nested_too_deep_is_skipped_alone(bot: Bot) -> None:
    """A task with 50 levels of nesting is skipped; its neighbours are alerted."""
    nested: Any = "bottom"
    for _ in range(50):
        nested = {"n": nested}
    bot.cycle()
    deep = bot.sim.add_task(BAD, "EXTEND", "EXECUTING", extra={"n": nested})
    bot.sim.add_task(BAD, "BindEip", "EXECUTING")

    result = bot.cycle()

    assert result.ok
    assert deep in result.malformed[BAD]
    assert len(result.commit.deliveries) == 1
    assert bot.store.find_task(deep) is None


@pytest.mark.parametrize("kind", ["deep", "huge", "not_json"])
def test_a_body_that_cannot_be_read_fails_that_instance_only(bot: Bot, kind: str) -> None:
    """JSON nested 100,000 deep, 17 MB, or not JSON from one instance: that instance is in the
    cycle's errors, the other is polled and alerted, and the next cycle is whole again."""
    bot.cycle()
    bot.sim.inject(kind, count=10, path_contains=BAD)
    bot.sim.add_task(GOOD, "BindEip", "EXECUTING")

    result = bot.cycle()

    assert list(result.errors) == [BAD]
    assert any("Enabling public access" in t for t in bot.texts(result))
    bot.sim.clear_faults()
    assert bot.cycle().ok
