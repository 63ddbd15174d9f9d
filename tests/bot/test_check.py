"""Tests for bot.check: ``run_checks`` against the DCS simulator and the fake Slack, one line per
check, and ``dcs-tasks-bot check`` as a subprocess."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.check import run_checks
from bot.config import load_settings
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from state.sqlite import SqliteStore
from tests.bot.test_cli import PROD_ID, assert_clean, free_port, run_bot
from tests.conftest import ALERTS, DCS_TOKEN, SLACK_TOKEN, bot_env
from tests.state_faults import state_with_a_damaged_row

SECRETS = (DCS_TOKEN, SLACK_TOKEN, "signing-secret-0123456789")


@pytest.fixture
def sim(simulator: DcsSimulator) -> DcsSimulator:
    """The simulator with cache-prod and cache-stage."""
    simulator.add_instance("cache-prod", instance_id=PROD_ID)
    simulator.add_instance("cache-stage")
    return simulator


def checks(
    sim: DcsSimulator, slack: FakeSlack, tmp_path: Path, **env: str
) -> tuple[int, list[str]]:
    """Run every check with the bot environment changed by ``env`` ("" removes a variable)."""
    values = {k: v for k, v in (bot_env(sim, slack, tmp_path / "s") | env).items() if v != ""}
    lines: list[str] = []
    status = run_checks(load_settings(values), lines.append)
    for line in lines:
        for secret in SECRETS:
            assert secret not in line
    return status, lines


def test_all_checks_pass_with_one_line_each(
    sim: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """A complete configuration passes every check: status 0, one ``ok`` line per check."""
    status, lines = checks(sim, slack, tmp_path)

    assert status == 0
    assert lines == [
        "ok    configuration",
        f"ok    state: STATE_PATH={tmp_path / 's'} will be created",
        "ok    DCS credentials: DCS_AUTH_TOKEN",
        "ok    DCS reachable: 2 instances in project proj-1",
        "ok    watched instances: 2 (cache-prod, cache-stage)",
        "ok    Slack auth.test: bot dcs-tasks-bot in team Fake Workspace",
        f"ok    Slack channel {ALERTS}: the bot is a member and can post",
    ]
    assert [c.method for c in slack.calls] == ["auth.test", "conversations.info"]


@pytest.mark.parametrize(
    ("env", "fail"),
    [
        ({"DCS_AUTH_TOKEN": "wrong-token-0123456789"}, "DCS reachable: DCS answered HTTP 401"),
        ({"SLACK_BOT_TOKEN": "xoxb-wrong-0123456789"}, "Slack auth.test: invalid_auth"),
        (
            {"DCS_INSTANCES": "cache-prod,cache-nope"},
            "DCS_INSTANCES: unknown DCS instance 'cache-nope'; known instances: cache-prod, "
            "cache-stage",
        ),
        ({"DCS_AUTH_TOKEN": ""}, "DCS credentials: none set"),
        ({"DCS_ALERT_CHANNEL": ""}, "configuration: DCS_ALERT_CHANNEL: is required for `check`"),
        ({"DCS_ENDPOINT": ""}, "configuration: DCS_ENDPOINT: is required for `check`"),
    ],
    ids=["dcs-token", "slack-token", "unknown-instance", "no-credentials", "no-channel", "no-dcs"],
)
def test_a_failing_check_gives_a_fail_line_and_status_1(
    sim: DcsSimulator, slack: FakeSlack, tmp_path: Path, env: dict[str, str], fail: str
) -> None:
    """Each problem shows as one ``FAIL`` line naming it; the other checks still run."""
    status, lines = checks(sim, slack, tmp_path, **env)

    assert status == 1
    fails = [line for line in lines if line.startswith("FAIL")]
    assert len(fails) == 1
    assert fails[0].startswith(f"FAIL  {fail}")
    assert any(line.startswith("ok    Slack auth.test") for line in lines) == (
        "SLACK_BOT_TOKEN" not in env
    )


@pytest.mark.parametrize(
    ("error", "line"),
    [
        ("channel_not_found", f"FAIL  Slack channel {ALERTS}: channel_not_found"),
        ("missing_scope", f"skip  Slack channel {ALERTS}: cannot look it up without channels:read"),
    ],
)
def test_the_alert_channel_check(
    sim: DcsSimulator, slack: FakeSlack, tmp_path: Path, error: str, line: str
) -> None:
    """An alert channel Slack does not know fails; without the channels:read scope (the
    manifest does not ask for it) the membership check is skipped, not failed."""
    slack.fail_next("conversations.info", error=error)

    status, lines = checks(sim, slack, tmp_path)

    assert lines[-1] == line
    assert status == (1 if line.startswith("FAIL") else 0)


def test_unreachable_slack_fails_the_slack_check(
    sim: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """A Slack API URL where nothing listens fails the Slack check with the reason."""
    status, lines = checks(
        sim, slack, tmp_path, SLACK_API_URL=f"http://127.0.0.1:{free_port()}/api/"
    )

    assert status == 1
    assert lines[-1].startswith("FAIL  Slack auth.test: cannot reach http://127.0.0.1:")


def test_check_command_prints_the_lines_and_sets_the_status(
    sim: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """``dcs-tasks-bot check`` prints one line per check on stdout: status 0 when all pass,
    1 when one fails; no traceback, no secret."""
    env = bot_env(sim, slack, tmp_path / "s")

    good = run_bot("check", env=env, cwd=tmp_path)
    bad = run_bot("check", env=env | {"SLACK_BOT_TOKEN": "xoxb-wrong-0123456789"}, cwd=tmp_path)

    assert good.returncode == 0, good.stdout + good.stderr
    assert len(good.stdout.splitlines()) == 7
    assert all(line.startswith("ok    ") for line in good.stdout.splitlines())
    assert bad.returncode == 1
    assert "FAIL  Slack auth.test: invalid_auth" in bad.stdout.splitlines()
    assert_clean(good, *SECRETS)
    assert_clean(bad, *SECRETS, "xoxb-wrong-0123456789")


def state_line(lines: list[str]) -> str:
    """The one line of the state check."""
    [line] = [line for line in lines if line[6:].startswith("state:")]
    return line


def test_an_existing_state_is_read_and_written(
    sim: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """An existing state file passes when it can be read and written."""
    SqliteStore(tmp_path / "s").close()

    status, lines = checks(sim, slack, tmp_path)

    assert status == 0
    assert state_line(lines).startswith("ok    state: SqliteStore(")
    assert "readable and writable; 0 deliveries pending" in state_line(lines)


def test_an_unreachable_database_url_fails_the_state_check(
    sim: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """A DATABASE_URL where nothing listens is a FAIL line without the password; the other
    checks still run."""
    port = free_port()
    url = f"postgresql://bot:Db-Passw0rd-0123456789@127.0.0.1:{port}/bot"

    status, lines = checks(sim, slack, tmp_path, DATABASE_URL=url)

    assert status == 1
    line = state_line(lines)
    assert line.startswith(f"FAIL  state: PostgreSQL postgresql://bot@127.0.0.1:{port}/bot")
    assert "Db-Passw0rd" not in "\n".join(lines)
    assert lines[-1] == f"ok    Slack channel {ALERTS}: the bot is a member and can post"


@pytest.mark.parametrize(
    ("make", "fail"),
    [
        (lambda p: p.write_bytes(b"not sqlite" * 500), "is not a readable SQLite database"),
        (lambda p: state_with_a_damaged_row(p, "i-1"), "stored task t-damaged has no field"),
        (lambda p: None, "cannot be created: No such file or directory"),
    ],
    ids=["garbage", "damaged-row", "missing-directory"],
)
def test_a_broken_state_fails_the_state_check(
    sim: DcsSimulator, slack: FakeSlack, tmp_path: Path, make: Any, fail: str
) -> None:
    """A garbage file, a stored row that lost a field, a directory that does not exist: one
    FAIL line each naming the problem, status 1, the other checks still run."""
    path = tmp_path / ("nowhere/s" if "directory" in fail else "s")
    make(path)

    status, lines = checks(sim, slack, tmp_path, STATE_PATH=str(path))

    assert status == 1
    assert state_line(lines).startswith("FAIL  state: ")
    assert fail in state_line(lines)
    assert len([line for line in lines if line.startswith("FAIL")]) == 1
