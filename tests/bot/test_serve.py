"""Tests for bot.serve: ``dcs-tasks-bot serve`` as a real subprocess (Bolt over HTTP and the
poller in one process) against the DCS simulator and the fake Slack, sent requests signed
exactly as Slack signs them."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import __version__
from bot.config import load_settings
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.bot.test_cli import (
    PROD_ID,
    STAGE_ID,
    Running,
    assert_clean,
    free_port,
    posted,
    run_bot,
)
from tests.conftest import DCS_TOKEN, SLACK_TOKEN, bot_env
from tests.slack_requests import command_body, post_signed
from tests.waiting import wait_until

SIGNING_SECRET = "signing-secret-0123456789"  # what tests.conftest.bot_env sets
USER, CHANNEL, SUBS = "U0ALICE", "C0QUERIES", "C0SUBSCRIBED"
#: Poll interval of the shared serve: /healthz turns 503 after 3 intervals without a success,
#: so this leaves a busy machine room; alerts arrive within about one interval.
INTERVAL = "3"


@dataclass
class Served:
    """A running ``serve`` process and the fakes it talks to."""

    process: Running
    url: str
    sim: DcsSimulator
    slack: FakeSlack
    resize: str  # the ID of a finished EXTEND on cache-prod
    http: httpx.Client

    def post_signed(
        self, body: str, *, timestamp: int | None = None, secret: str = SIGNING_SECRET
    ) -> httpx.Response:
        """POST ``body`` to /slack/events with Slack's signature headers."""
        return post_signed(
            self.http, f"{self.url}/slack/events", body, secret=secret, timestamp=timestamp
        )

    def command_body(self, text: str, *, channel: str = CHANNEL) -> tuple[str, str]:
        """A ``/dcs-tasks`` body as Slack sends it, and its fresh response_url."""
        response_url = self.slack.response_url()
        body = command_body(text, user=USER, channel=channel, response_url=response_url)
        return body, response_url

    def command(self, text: str, *, channel: str = CHANNEL) -> dict[str, Any]:
        """Run ``/dcs-tasks text``: assert the empty 200 ack; return the ephemeral reply."""
        body, response_url = self.command_body(text, channel=channel)
        response = self.post_signed(body)
        assert response.status_code == 200
        assert response.text == ""
        reply = wait_until(lambda: self.slack.responses_to(response_url), f"a reply to {text!r}")
        assert len(reply) == 1
        assert reply[0]["response_type"] == "ephemeral"
        return reply[0]


def readable(payload: dict[str, Any]) -> str:
    """Everything a user could read in a reply: its text and blocks, as JSON."""
    return json.dumps(payload, ensure_ascii=False)


def healthz(url: str) -> tuple[int, dict[str, Any]]:
    """GET /healthz: status code and JSON body."""
    response = httpx.get(f"{url}/healthz", timeout=10)
    return response.status_code, response.json()


def wait_for_first_cycle(url: str, process: Running) -> dict[str, Any]:
    """Wait until /healthz answers and shows a successful cycle; return its body."""

    def ready() -> dict[str, Any] | None:
        if not process.alive():
            pytest.fail(f"serve exited {process.proc.returncode}:\n{process.stderr}")
        try:
            code, body = healthz(url)
        except httpx.TransportError:
            return None
        return body if code == 200 and body.get("last_success_at") else None

    return wait_until(ready, "/healthz to show the first successful cycle")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One ``serve`` process for the module: cache-prod (with a finished resize) and cache-stage,
    polled every second."""
    sim = DcsSimulator(project_id="proj-1", tokens=[DCS_TOKEN])
    sim.start()
    sim.add_instance("cache-prod", instance_id=PROD_ID)
    sim.add_instance("cache-stage", instance_id=STAGE_ID)
    resize = sim.add_task(
        PROD_ID,
        "EXTEND",
        "SUCCESS",
        details={"old_capacity": "0.125", "new_capacity": "0.25"},
        created_at=datetime.now(UTC) - timedelta(hours=1),
    )
    slack = FakeSlack(token=SLACK_TOKEN)
    slack.start()
    work = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = bot_env(sim, slack, work / "state.sqlite", PORT=str(port), DCS_POLL_INTERVAL=INTERVAL)
    process = Running(["serve"], env=env, cwd=work)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_first_cycle(url, process)
        with httpx.Client(timeout=10) as http:
            yield Served(process, url, sim, slack, resize, http)
    finally:
        process.kill()
        slack.stop()
        sim.stop()


# --- health and the poller ---------------------------------------------------------------------


def test_healthz_reports_the_last_successful_cycle(served: Served) -> None:
    """/healthz answers 200 JSON with the last successful poll, no error and the version."""
    code, body = healthz(served.url)

    assert code == 200
    assert body["status"] == "ok"
    last = datetime.fromisoformat(body["last_success_at"])
    assert datetime.now(UTC) - last < timedelta(minutes=5)
    assert body["last_cycle_failed"] is False
    assert body["pending_deliveries"] == 0
    assert body["deliveries_failing"] == 0
    assert body["version"] == __version__
    assert body["poll_interval"] == int(INTERVAL)


@pytest.mark.parametrize("path", ["/readyz", "/livez"])
def test_readyz_is_healthz_and_livez_answers(served: Served, path: str) -> None:
    response = served.http.get(served.url + path)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    if path == "/readyz":
        assert response.json().keys() == healthz(served.url)[1].keys()


def test_readyz_shows_a_failed_cycle_without_its_text_or_any_id(served: Served) -> None:
    """A failing instance: the public body says the last cycle failed, and names nothing."""
    served.sim.inject("400", count=1000, path_contains=STAGE_ID)  # not retried: fails at once
    try:
        body = wait_until(
            lambda: (b := healthz(served.url)[1])["last_cycle_failed"] and b, "a failed cycle"
        )
    finally:
        served.sim.clear_faults()
    shown = json.dumps(body)
    for private in (STAGE_ID, PROD_ID, "cache-stage", served.sim.project_id, "DCS"):
        assert private not in shown


METRIC_NAMES = (
    "dcs_tasks_bot_poll_cycle_duration_seconds_count",
    "dcs_tasks_bot_dcs_requests_total",
    "dcs_tasks_bot_slack_calls_total",
    "dcs_tasks_bot_outbox_pending",
    "dcs_tasks_bot_deliveries_dropped_total",
    "dcs_tasks_bot_poller_lease_held",
    "dcs_tasks_bot_last_successful_poll_timestamp_seconds",
)


def test_metrics_in_prometheus_text_with_aggregates_only(served: Served) -> None:
    served.command("help")  # at least one Slack call and one request
    response = served.http.get(f"{served.url}/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {
        line.split(" ")[0]: float(line.rsplit(" ", 1)[1])
        for line in response.text.splitlines()
        if line and not line.startswith("#")
    }
    names = {name.split("{")[0] for name in samples}
    assert set(METRIC_NAMES) <= names
    assert samples['dcs_tasks_bot_dcs_requests_total{outcome="ok"}'] >= 1
    assert samples["dcs_tasks_bot_poller_lease_held"] == 1
    assert samples["dcs_tasks_bot_poll_cycle_duration_seconds_count"] >= 1
    assert samples["dcs_tasks_bot_last_successful_poll_timestamp_seconds"] > 1.7e9
    for private in (PROD_ID, STAGE_ID, "cache-prod", served.sim.project_id, CHANNEL, USER):
        assert private not in response.text


def test_slack_requests_are_logged_one_line_each_without_the_body(served: Served) -> None:
    served.command("list cache-prod")

    lines = [line for line in served.process.stderr.splitlines() if "request method=" in line]
    assert lines
    assert all(" path=/slack/events status=200 ms=" in line for line in lines)
    for private in ("cache-prod", USER, CHANNEL, "response_url"):
        assert not any(private in line for line in lines)


def test_boot_has_no_bolt_token_warning(served: Served) -> None:
    """SLACK_BOT_TOKEN is in serve's environment, which made Bolt warn at every boot."""
    assert "will be unused" not in served.process.stderr
    assert "WARNING" not in served.process.stderr.split("serving on port")[0]


def test_the_poller_inside_serve_alerts_a_new_task(served: Served) -> None:
    """A task started in DCS while serve runs is posted to the alert channel by its poller."""
    served.sim.add_task(STAGE_ID, "masterStandbySwapJob", "EXECUTING", user_name="bob")

    alert = wait_until(lambda: posted(served.slack, "Master/standby switchover"), "the alert")

    assert "cache-stage" in alert[0]


def test_unknown_paths_get_404(served: Served) -> None:
    """Anything but the two routes is 404, and GET /slack/events is not served."""
    assert served.http.get(f"{served.url}/").status_code == 404
    assert served.http.get(f"{served.url}/slack/events").status_code == 404


# --- the slash command, signed as Slack signs it ------------------------------------------------


@pytest.mark.parametrize("text", ["", "help"])
def test_help(served: Served, text: str) -> None:
    """help (and the empty command) answers with the usage of every subcommand."""
    reply = readable(served.command(text))

    for sub in ("list", "show TASK_ID", "instances", "status", "subscribe", "subscriptions"):
        assert f"/dcs-tasks {sub}" in reply


def test_list_shows_recent_tasks(served: Served) -> None:
    """list names the resize on cache-prod; a filter that matches nothing says so."""
    listed = readable(served.command("list cache-prod"))
    failed = readable(served.command("list cache-prod status:FAILED"))

    assert "Modifying specifications" in listed
    assert served.resize in listed
    assert "0 DCS tasks" in failed


def test_show_gives_every_detail_of_a_task(served: Served) -> None:
    """show TASK_ID answers with the task, its status and its capacity change."""
    shown = readable(served.command(f"show {served.resize}"))

    assert served.resize in shown
    assert "SUCCESS" in shown
    assert "0.125 → 0.25 GB" in shown
    assert "cache-prod" in shown


def test_instances_lists_the_watched_instances(served: Served) -> None:
    """instances names both watched instances with their status."""
    shown = readable(served.command("instances"))

    assert "2 watched instances" in shown
    assert "cache-prod" in shown
    assert "cache-stage" in shown
    assert "RUNNING" in shown


def test_status_reports_the_bots_health(served: Served) -> None:
    """status says the polls are on time and gives the version."""
    shown = readable(served.command("status"))

    assert "Healthy" in shown
    assert __version__ in shown


def test_subscribe_routes_alerts_to_the_channel_until_unsubscribed(served: Served) -> None:
    """subscribe stores a route the running poller follows; subscriptions lists it;
    unsubscribe removes it."""
    subscribed = readable(served.command("subscribe cache-prod status:FAILED", channel=SUBS))
    listed = readable(served.command("subscriptions", channel=SUBS))
    served.sim.add_task(PROD_ID, "DelReplica", "FAILED")
    routed = wait_until(lambda: served.slack.messages(SUBS), "the alert in the subscribed channel")
    removed = readable(served.command("unsubscribe cache-prod", channel=SUBS))
    after = readable(served.command("subscriptions", channel=SUBS))

    assert "This channel now gets alerts for *cache-prod* (status FAILED)" in subscribed
    assert "*cache-prod*: status FAILED" in listed
    assert "FAILED" in (routed[0].text or "")
    assert "no longer gets alerts for *cache-prod*" in removed
    assert "has no subscriptions" in after


# --- signatures --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["wrong secret", "stale"])
def test_bad_or_stale_signatures_get_401_and_nothing_else(served: Served, how: str) -> None:
    """A request with a wrong signature, or signed more than 5 minutes ago, gets 401; the
    command is not run (nothing is posted to its response_url)."""
    body, response_url = served.command_body("list")
    signed: dict[str, Any] = (
        {"secret": "not-the-signing-secret"}
        if how == "wrong secret"
        else {"timestamp": int(time.time()) - 6 * 60}
    )

    response = served.post_signed(body, **signed)
    served.command("help")  # a good request after it is answered, so the bad one was not

    assert response.status_code == 401, how
    assert served.slack.responses_to(response_url) == []


def test_unsigned_request_gets_401(served: Served) -> None:
    """A request without the signature headers gets 401."""
    body, response_url = served.command_body("list")

    response = served.http.post(
        f"{served.url}/slack/events",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 401
    assert served.slack.responses_to(response_url) == []


# --- starting and stopping ---------------------------------------------------------------------


@pytest.fixture
def serve_env(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> Callable[..., dict[str, str]]:
    """The serve environment on a fresh port, with cache-prod in the simulator."""
    simulator.add_instance("cache-prod", instance_id=PROD_ID)

    def make(**extra: str) -> dict[str, str]:
        extra.setdefault("PORT", str(free_port()))
        return bot_env(simulator, slack, tmp_path / "state.sqlite", DCS_POLL_INTERVAL="1", **extra)

    return make


def test_serve_stops_cleanly_on_sigterm(
    serve_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    """serve exits 0 within 10 s of SIGTERM, without a traceback, and stops listening."""
    env = serve_env()
    process = Running(["serve"], env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_for_first_cycle(url, process)
        status = process.terminate(timeout=10)
    finally:
        process.kill()

    assert status == 0
    assert "received SIGTERM" in process.stderr
    assert "Traceback" not in process.stderr
    with pytest.raises(httpx.TransportError):
        healthz(url)
    for secret in (SIGNING_SECRET, SLACK_TOKEN, DCS_TOKEN):
        assert secret not in process.stderr + process.stdout


def test_serve_without_signing_secret_in_http_mode_exits_2(
    serve_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    """HTTP mode needs SLACK_SIGNING_SECRET: one configuration line naming it, status 2."""
    env = serve_env()
    del env["SLACK_SIGNING_SECRET"]

    result = run_bot("serve", env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "configuration: SLACK_SIGNING_SECRET: is required for `serve`, "
        "e.g. SLACK_SIGNING_SECRET=8f742231b10e8888abcd99yyyzzz85a5"
    ]
    assert_clean(result, SLACK_TOKEN, DCS_TOKEN)


def test_socket_mode_needs_no_signing_secret(
    serve_env: Callable[..., dict[str, str]],
) -> None:
    """With SLACK_APP_TOKEN set, serve's configuration is complete without a signing secret
    (Socket Mode itself needs Slack, so it is not started here)."""
    env = serve_env(SLACK_APP_TOKEN="xapp-1-A0123-4567-abcdef")
    del env["SLACK_SIGNING_SECRET"]

    settings = load_settings(env)

    assert settings.socket_mode
    assert settings.problems_for("serve") == []


def test_serve_on_a_port_in_use_says_so(
    serve_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    """serve on a busy PORT ends with one line naming it, status 1, no traceback."""
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))  # noqa: S104 - serve listens on every interface
        busy.listen()
        port = busy.getsockname()[1]
        result = run_bot("serve", env=serve_env(PORT=str(port)), cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("error: ")
    assert f"cannot listen on PORT={port}" in result.stderr
    assert_clean(result, SIGNING_SECRET, SLACK_TOKEN, DCS_TOKEN)


def test_serve_refuses_a_state_file_another_poller_holds(
    serve_env: Callable[..., dict[str, str]], slack: FakeSlack, tmp_path: Path
) -> None:
    """serve on an SQLite STATE_PATH that a running poller holds says so and exits 1."""
    env = serve_env()
    poller = Running(["poll"], env=env, cwd=tmp_path)
    try:
        wait_until(lambda: "now the poller" in poller.stderr, "the poller to take the lock")
        result = run_bot("serve", env=env, cwd=tmp_path)
    finally:
        poller.kill()

    assert result.returncode == 1
    assert "another poller already uses STATE_PATH=" in result.stderr
    assert_clean(result, SIGNING_SECRET, SLACK_TOKEN, DCS_TOKEN)
