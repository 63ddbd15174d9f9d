"""``dcs-tasks-bot`` with a state store it cannot use: one clear line and a non-zero exit,
never a traceback, and never the wrong reason ("another process is the poller")."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.bot.test_cli import PROD_ID, assert_clean, base_env, bot_command, run_bot
from tests.conftest import SLACK_TOKEN, bot_env
from tests.state_faults import state_with_a_damaged_row, unprivileged


def run_unprivileged(
    *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``dcs-tasks-bot ARGS`` where file permissions bind (even when the tests run as root)."""
    return subprocess.run(
        [*unprivileged(), *bot_command(*args)],
        env=base_env() | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_poll_once_names_a_damaged_row_instead_of_blaming_another_poller(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """A stored task that lost its status makes ``poll --once`` exit 1 naming the task and the
    field, in one line without a traceback; nothing is posted."""
    simulator.add_instance("cache-prod", instance_id=PROD_ID)
    state = tmp_path / "state.sqlite"
    state_with_a_damaged_row(state, PROD_ID)

    result = run_bot("poll", "--once", env=bot_env(simulator, slack, state), cwd=tmp_path)

    assert result.returncode == 1
    assert "another process is the poller" not in result.stderr
    assert "poll cycle failed: state: stored task t-damaged has no field 'status'" in result.stderr
    assert_clean(result, SLACK_TOKEN)
    assert slack.calls_to("chat.postMessage") == []


def test_poll_once_on_a_read_only_state_file_says_so(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """A state file this user cannot write: ``poll --once`` exits 1 with one line saying the
    file is read-only, no traceback, and the file keeps its bytes."""
    simulator.add_instance("cache-prod", instance_id=PROD_ID)
    simulator.add_task(PROD_ID, "EXTEND", "EXECUTING")
    state = tmp_path / "state.sqlite"
    env = bot_env(simulator, slack, state)
    assert run_bot("poll", "--once", env=env, cwd=tmp_path).returncode == 0
    simulator.add_task(PROD_ID, "BindEip", "EXECUTING")
    state.chmod(0o444)
    before = state.read_bytes()

    result = run_unprivileged("poll", "--once", env=env, cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    assert "another process is the poller" not in result.stderr
    assert "state: state file" in result.stderr
    assert "readonly" in result.stderr
    assert_clean(result, SLACK_TOKEN)
    assert state.read_bytes() == before


def test_check_fails_a_read_only_state_file(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """``check`` on a state file this user cannot write: a FAIL line for the state, status 1."""
    simulator.add_instance("cache-prod", instance_id=PROD_ID)
    state = tmp_path / "state.sqlite"
    env = bot_env(simulator, slack, state)
    assert run_bot("poll", "--once", env=env, cwd=tmp_path).returncode == 0
    state.chmod(0o444)

    result = run_unprivileged("check", env=env, cwd=tmp_path)

    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert line.startswith(f"FAIL  state: state file {state}")
    assert "readonly" in line
    assert_clean(result, SLACK_TOKEN)
