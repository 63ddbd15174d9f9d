"""Tests for bot.metrics: DCS requests and Slack calls counted by outcome through the observers
wiring hangs on them (real loopback HTTP), ticks recorded, and the exposition text."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
from slack_sdk.errors import SlackApiError

from bot.config import load_settings
from bot.metrics import Metrics, counting_web_client
from bot.pipeline.schedule import TickReport
from bot.slack.deliver import DrainReport, make_web_client
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from bot.wiring import make_http_client
from tests.conftest import DCS_TOKEN, SLACK_TOKEN, bot_env


def sample(metrics: Metrics, name: str, outcome: str | None = None) -> float:
    labels = {"outcome": outcome} if outcome else {}
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_dcs_requests_are_counted_by_outcome(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    metrics = Metrics()
    settings = load_settings(bot_env(simulator, slack, tmp_path / "s.sqlite"))
    simulator.inject("503")
    simulator.inject("429")
    with make_http_client(settings, metrics=metrics) as http:
        path = f"/v2/{simulator.project_id}/instances"
        statuses = [http.get(path).status_code for _ in range(3)]
    assert statuses == [503, 429, 200]
    assert sample(metrics, "dcs_tasks_bot_dcs_requests_total", "server_error") == 1
    assert sample(metrics, "dcs_tasks_bot_dcs_requests_total", "rate_limited") == 1
    assert sample(metrics, "dcs_tasks_bot_dcs_requests_total", "ok") == 1


def test_a_dcs_request_that_cannot_connect_is_a_network_error(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    metrics = Metrics()
    env = bot_env(simulator, slack, tmp_path / "s.sqlite", DCS_ENDPOINT="http://127.0.0.1:9")
    with (
        make_http_client(load_settings(env), metrics=metrics) as http,
        contextlib.suppress(httpx.TransportError),
    ):
        http.get("/v2/p/instances")
    assert sample(metrics, "dcs_tasks_bot_dcs_requests_total", "network_error") == 1


def test_slack_calls_are_counted_by_outcome(slack: FakeSlack) -> None:
    metrics = Metrics()
    client = make_web_client(SLACK_TOKEN, slack.url, client_class=counting_web_client(metrics))
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    slack.fail_next("chat.postMessage", error="channel_not_found", count=1)
    for _ in range(3):
        with contextlib.suppress(SlackApiError):
            client.chat_postMessage(channel="C0ALERTS", text="hello")
    assert sample(metrics, "dcs_tasks_bot_slack_calls_total", "rate_limited") == 1
    assert sample(metrics, "dcs_tasks_bot_slack_calls_total", "error") == 1
    assert sample(metrics, "dcs_tasks_bot_slack_calls_total", "ok") == 1


def test_a_tick_records_duration_depth_drops_and_the_last_success() -> None:
    metrics = Metrics()
    finished = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    metrics.on_tick(
        TickReport(
            leader=True,
            cycle=None,
            cycle_seconds=0.75,
            drain=DrainReport(sent=3, dropped=2),
            pending=5,
            finished_at=finished,
        )
    )
    metrics.watch_lease(lambda: True)

    assert sample(metrics, "dcs_tasks_bot_poll_cycle_duration_seconds_sum") == 0.75
    assert sample(metrics, "dcs_tasks_bot_deliveries_dropped_total") == 2
    assert sample(metrics, "dcs_tasks_bot_outbox_pending") == 5
    assert sample(metrics, "dcs_tasks_bot_poller_lease_held") == 1
    assert sample(metrics, "dcs_tasks_bot_last_successful_poll_timestamp_seconds") == 0  # failed


def test_render_is_prometheus_text_with_outcome_labels_only() -> None:
    text, content_type = Metrics().render()

    assert content_type.startswith("text/plain")
    labels = {
        part.split("=")[0]
        for line in text.decode().splitlines()
        if "{" in line and not line.startswith("#")
        for part in line.split("{", 1)[1].split("}")[0].split(",")
    }
    assert labels <= {"outcome", "le"}
    assert DCS_TOKEN not in text.decode()
