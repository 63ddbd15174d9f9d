"""Shared fixtures: the DCS simulator and the fake Slack Web API on loopback, and a harness that
wires the real pipeline against them with a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.pipeline.poll import CycleResult
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from bot.wiring import Components, build
from tests.postgres import PgSchema, reachable_url

DCS_TOKEN = "sim-token-0123456789"
SLACK_TOKEN = "xoxb-test-0123456789"
ALERTS = "C0ALERTS"


@pytest.fixture
def simulator() -> Iterator[DcsSimulator]:
    """A started DCS simulator accepting DCS_TOKEN."""
    sim = DcsSimulator(project_id="proj-1", tokens=[DCS_TOKEN])
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A started fake Slack Web API accepting SLACK_TOKEN."""
    fake = FakeSlack(token=SLACK_TOKEN)
    fake.start()
    yield fake
    fake.stop()


def bot_env(sim: DcsSimulator, slack: FakeSlack, state: Path, **extra: str) -> dict[str, str]:
    """The environment a deployed bot would have, pointed at the loopback fakes."""
    env = {
        "DCS_ENDPOINT": sim.url,
        "DCS_PROJECT_ID": sim.project_id,
        "DCS_AUTH_TOKEN": DCS_TOKEN,
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_SIGNING_SECRET": "signing-secret-0123456789",
        "SLACK_API_URL": slack.url,
        "DCS_ALERT_CHANNEL": ALERTS,
        "STATE_PATH": str(state),
    }
    env.update(extra)
    return env


class Harness:
    """The real pipeline (wiring.build) against the simulator and the fake Slack."""

    def __init__(self, sim: DcsSimulator, slack: FakeSlack, state: Path, **extra: str) -> None:
        self.sim, self.slack, self.state = sim, slack, state
        self.settings: Settings = load_settings(bot_env(sim, slack, state, **extra))
        self.parts: Components = build(self.settings)

    def cycle(self, *, deliver: bool = True) -> CycleResult:
        """One poll cycle, then (optionally) one delivery drain."""
        result = self.parts.poller.run_cycle()
        if deliver:
            assert self.parts.deliverer is not None
            self.parts.deliverer.drain()
        return result

    def restart(self) -> None:
        """Close everything and build again from the same settings (a process restart)."""
        self.parts.close()
        self.parts = build(self.settings)

    def slack_calls(self, method: str | None = None) -> list[Any]:
        """Recorded Slack calls, optionally of one method (auth.test excluded)."""
        calls = [c for c in self.slack.calls if c.method != "auth.test"]
        return [c for c in calls if method is None or c.method == method]

    def close(self) -> None:
        """Release the store and the HTTP client."""
        self.parts.close()


@pytest.fixture
def harness(simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path) -> Iterator[Harness]:
    """A wired bot with one instance ``cache-prod`` in the simulator."""
    simulator.add_instance("cache-prod", instance_id="11111111-1111-4111-8111-111111111111")
    h = Harness(simulator, slack, tmp_path / "state.sqlite")
    yield h
    h.close()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A reachable PostgreSQL URL, or a loud skip (a failure in CI)."""
    return reachable_url()


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[PgSchema]:
    """This test's own PostgreSQL schema name, dropped afterwards."""
    schema = PgSchema(pg_url)
    yield schema
    schema.drop()
