"""Socket Mode end to end on loopback: the real ``serve`` with SLACK_APP_TOKEN set, the fake
Slack answering ``apps.connections.open`` with a ``ws://`` URL to a local Socket Mode server
that sends ``hello`` and ``slash_commands`` envelopes, checks the ack and the reply, and asks
for a reconnect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.bot.test_cli import PROD_ID, Running, assert_clean, free_port, run_bot, wait_until
from tests.conftest import DCS_TOKEN, SLACK_TOKEN, bot_env
from tests.slack_requests import command_body
from tests.socket_mode import SocketModeServer

APP_TOKEN = "xapp-1-A0DCSTASKS-0123456789-abcdef0123456789"


@pytest.fixture
def socket_server() -> Iterator[SocketModeServer]:
    server = SocketModeServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def app_slack(socket_server: SocketModeServer) -> Iterator[FakeSlack]:
    """A fake Slack that knows the app token and hands out the Socket Mode server's URL."""
    fake = FakeSlack(token=SLACK_TOKEN, app_token=APP_TOKEN)
    fake.socket_mode_url = socket_server.url
    fake.start()
    yield fake
    fake.stop()


def socket_env(sim: DcsSimulator, slack: FakeSlack, state: Path, **extra: str) -> dict[str, str]:
    """serve in Socket Mode: an app token, no signing secret."""
    sim.add_instance("cache-prod", instance_id=PROD_ID)
    env = bot_env(sim, slack, state, PORT=str(free_port()), SLACK_APP_TOKEN=APP_TOKEN, **extra)
    del env["SLACK_SIGNING_SECRET"]
    return env


def command_payload(slack: FakeSlack, text: str) -> tuple[dict[str, Any], str]:
    """A ``/dcs-tasks`` payload as Socket Mode carries it, and its response_url."""
    response_url = slack.response_url()
    body = command_body(text, user="U0ALICE", channel="C0QUERIES", response_url=response_url)
    return dict(parse_qsl(body)), response_url


def run_command(
    server: SocketModeServer, slack: FakeSlack, text: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send ``/dcs-tasks text`` over the socket: the ack frame and the ephemeral reply."""
    payload, response_url = command_payload(slack, text)
    envelope_id = server.slash_command(payload)
    ack = server.wait_for_ack(envelope_id)
    replies = wait_until(lambda: slack.responses_to(response_url), f"a reply to {text!r}")
    return ack, replies[0]


def test_slash_command_over_socket_mode_is_acked_and_answered(
    simulator: DcsSimulator,
    app_slack: FakeSlack,
    socket_server: SocketModeServer,
    tmp_path: Path,
) -> None:
    process = Running(
        ["serve"], env=socket_env(simulator, app_slack, tmp_path / "s.sqlite"), cwd=tmp_path
    )
    try:
        wait_until(lambda: socket_server.connections, "the app to connect")

        ack, reply = run_command(socket_server, app_slack, "help")

        assert set(ack) <= {"envelope_id", "payload"}
        assert reply["response_type"] == "ephemeral"
        assert "/dcs-tasks" in str(reply)
        opened = app_slack.calls_to("apps.connections.open")
        assert [call.token for call in opened] == [APP_TOKEN]
    finally:
        status = process.terminate()
    assert status == 0
    assert "Traceback" not in process.stderr
    assert APP_TOKEN not in process.stderr + process.stdout
    assert "did not finish" not in process.stderr  # the socket's wait does not hold SIGTERM


def test_a_disconnect_asking_for_a_refresh_reconnects(
    simulator: DcsSimulator,
    app_slack: FakeSlack,
    socket_server: SocketModeServer,
    tmp_path: Path,
) -> None:
    """Slack's ``disconnect`` (reason ``refresh_requested``) is followed by a new
    ``apps.connections.open`` and a new connection, on which commands work as before."""
    process = Running(
        ["serve"], env=socket_env(simulator, app_slack, tmp_path / "s.sqlite"), cwd=tmp_path
    )
    try:
        wait_until(lambda: socket_server.connections, "the app to connect")
        socket_server.send({"type": "disconnect", "reason": "refresh_requested"})
        wait_until(lambda: socket_server.connections >= 2, "the app to reconnect")

        _, reply = run_command(socket_server, app_slack, "help")

        assert reply["response_type"] == "ephemeral"
        assert len(app_slack.calls_to("apps.connections.open")) >= 2
    finally:
        status = process.terminate()
    assert status == 0
    assert "Traceback" not in process.stderr
    assert "did not finish" not in process.stderr


@pytest.mark.parametrize("token", ["xapp-1-A0WRONG-000-revoked0123456789", "not-an-app-token"])
def test_a_wrong_or_revoked_app_token_is_one_configuration_line_and_exit_2(
    simulator: DcsSimulator, app_slack: FakeSlack, tmp_path: Path, token: str
) -> None:
    """Not a crash loop: exit 2 (configuration), one clear line, no traceback, no token shown."""
    env = socket_env(simulator, app_slack, tmp_path / "s.sqlite")
    env["SLACK_APP_TOKEN"] = token

    result = run_bot("serve", env=env, cwd=tmp_path, timeout=60)

    assert result.returncode == 2, result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("configuration:")]
    assert len(problems) == 1
    assert "SLACK_APP_TOKEN" in problems[0]
    assert "Traceback" not in result.stderr
    assert_clean(result, token, SLACK_TOKEN, DCS_TOKEN)
