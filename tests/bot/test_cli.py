"""Tests for bot.cli: ``dcs-tasks-bot`` run as a real subprocess (or, for commands that end on
their own, ``bot.cli.main`` in this process) against the DCS simulator and the fake Slack on
loopback, with an explicit environment (nothing inherited, so no secret leaks in)."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from bot.cli import main
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.conftest import ALERTS, DCS_TOKEN, SLACK_TOKEN, bot_env
from tests.waiting import wait_until

T = TypeVar("T")

SCRIPT = Path(sys.executable).with_name("dcs-tasks-bot")
ACCESS_KEY = "AKSIMULATOR0123456789"
SECRET_KEY = "sk-Simulator-Secret-0123456789"
IAM_USER, IAM_PASSWORD = "dcs-operator", "Iam-Passw0rd-0123456789"
PROD_ID = "11111111-1111-4111-8111-111111111111"
STAGE_ID = "22222222-2222-4222-8222-222222222222"
PARAMS_SECRET = "Sup3r-S3cret-pw!"  # a task's params: must never be printed
#: A long-running command must stop within this many seconds of SIGTERM.
STOP_WITHIN = 10.0


# --- running the command line ------------------------------------------------------------------


def bot_command(*args: str) -> list[str]:
    """The installed console script (``pip install -e .``), else ``python -m bot.cli``."""
    if SCRIPT.exists():
        return [str(SCRIPT), *args]
    return [sys.executable, "-m", "bot.cli", *args]


def run_main(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``bot.cli.main`` in this process, given exactly ``env``: what a run prints and its status.

    For commands that end on their own and need no process of their own (no signals, no exit
    code of the interpreter): it saves starting an interpreter per test, and DCS retries do not
    wait. The logging set up by the command is undone afterwards.
    """
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(list(args), environ=dict(env), sleep=lambda _: None)
            except SystemExit as exc:  # argparse's usage errors
                status = int(exc.code or 0)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return subprocess.CompletedProcess(
        ["dcs-tasks-bot", *args], status, out.getvalue(), err.getvalue()
    )


def base_env() -> dict[str, str]:
    """What every run gets besides its configuration: no variable of the test process but PATH."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONUNBUFFERED": "1",  # output is readable while the process runs
        "PYTHONIOENCODING": "utf-8",
        "COLUMNS": "200",  # rich renders wide, so no line of a message is wrapped
    }


def run_bot(
    *args: str, env: Mapping[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``dcs-tasks-bot ARGS`` to completion with exactly ``env`` (plus ``base_env``)."""
    return subprocess.run(
        bot_command(*args),
        env=base_env() | dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Running:
    """A long-running ``dcs-tasks-bot`` process whose output goes to files, readable any time."""

    _ids = itertools.count(1)

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> None:
        n = next(self._ids)
        self._out, self._err = cwd / f"stdout-{n}.txt", cwd / f"stderr-{n}.txt"
        with self._out.open("wb") as out, self._err.open("wb") as err:
            self.proc = subprocess.Popen(
                bot_command(*args), env=base_env() | dict(env), cwd=cwd, stdout=out, stderr=err
            )

    @property
    def stdout(self) -> str:
        """Everything printed on stdout so far."""
        return self._out.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        """Everything printed on stderr so far."""
        return self._err.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def wait_for_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Wait until a whole line of stdout matches ``pattern``; fail early (with the output)
        when the process ends first."""
        line = re.compile(f"^.*{pattern}.*$\n", re.MULTILINE)

        def shown() -> re.Match[str] | None:
            if match := line.search(self.stdout):
                return match
            if not self.alive():
                pytest.fail(f"exited {self.proc.returncode}:\n{self.stdout}\n{self.stderr}")
            return None

        return wait_until(shown, repr(pattern), timeout)

    def terminate(self, timeout: float = STOP_WITHIN) -> int:
        """Send SIGTERM and wait (bounded) for the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running {timeout:.0f}s after SIGTERM:\n{self.stderr}")

    def kill(self) -> None:
        """Stop the process whatever it is doing (test clean-up)."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start long-running commands; every one still running at the end is killed."""
    started: list[Running] = []

    def start(*args: str, env: Mapping[str, str]) -> Running:
        process = Running(args, env=env, cwd=tmp_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def free_port() -> int:
    """A loopback port nothing listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_clean(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    """No traceback and none of ``secrets`` anywhere in the output."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    for secret in secrets:
        assert secret not in output


def posted(slack: FakeSlack, needle: str) -> list[str]:
    """The texts of alerts in the alert channel that contain ``needle``."""
    return [m.text or "" for m in slack.messages(ALERTS) if needle in (m.text or "")]


# --- tasks -------------------------------------------------------------------------------------


def aksk_env(sim: DcsSimulator) -> dict[str, str]:
    """AK/SK request signing."""
    return {
        "DCS_ENDPOINT": sim.url,
        "DCS_PROJECT_ID": sim.project_id,
        "DCS_ACCESS_KEY": ACCESS_KEY,
        "DCS_SECRET_KEY": SECRET_KEY,
    }


def iam_env(sim: DcsSimulator) -> dict[str, str]:
    """An IAM password token; the project comes from OS_PROJECT_ID alone."""
    return {
        "DCS_ENDPOINT": sim.url,
        "OS_AUTH_URL": sim.auth_url,
        "OS_USERNAME": IAM_USER,
        "OS_PASSWORD": IAM_PASSWORD,
        "OS_USER_DOMAIN_NAME": "OTC-EU-DE-0000000000",
        "OS_PROJECT_ID": sim.project_id,
    }


@pytest.fixture
def secured() -> Iterator[DcsSimulator]:
    """A simulator that accepts only AK/SK signatures and IAM tokens of one user."""
    sim = DcsSimulator(
        project_id="0123456789abcdef0123456789abcdef",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        iam_users={IAM_USER: IAM_PASSWORD},
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.mark.parametrize(
    ("credentials", "make_env"), [("AK/SK", aksk_env), ("IAM", iam_env)], ids=["aksk", "iam"]
)
def test_tasks_json_lists_every_task_of_a_1200_task_instance(
    secured: DcsSimulator,
    tmp_path: Path,
    credentials: str,
    make_env: Callable[[DcsSimulator], dict[str, str]],
) -> None:
    """``tasks INSTANCE --json --limit 0`` prints one JSON array of all 1,200 tasks, newest
    first, each with instance_id, read with AK/SK or IAM credentials."""
    iid = secured.add_instance("cache-prod", instance_id=PROD_ID)
    ids = secured.add_tasks_bulk(iid, 1200)

    args = ["tasks", "cache-prod", "--json", "--limit", "0", "--since", "7d"]

    result = run_main(*args, env=make_env(secured))

    assert result.returncode == 0, result.stderr
    tasks = json.loads(result.stdout)
    assert [t["id"] for t in tasks] == ids
    assert {t["instance_id"] for t in tasks} == {PROD_ID}
    assert_clean(result, SECRET_KEY, IAM_PASSWORD)
    pages = [r for r in secured.requests if r.path.endswith("/tasks")]
    assert len(pages) == 2  # 1000 + 200: DCS serves at most 1000 a page
    if credentials == "AK/SK":
        assert all(r.headers["authorization"].startswith("SDK-HMAC-SHA256") for r in pages)
    else:
        assert secured.requests[0].path == "/v3/auth/tokens"  # the IAM token first
        assert all(r.headers.get("x-auth-token", "").startswith("MIIsim") for r in pages)


def test_tasks_never_shows_params(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """Neither ``--json`` nor the table prints a task's params (they may carry passwords)."""
    iid = simulator.add_instance("cache-prod", instance_id=PROD_ID)
    task_id = simulator.add_task(
        iid, "modify", "SUCCESS", params=json.dumps({"requirepass": PARAMS_SECRET})
    )
    env = bot_env(simulator, slack, tmp_path / "state.sqlite")

    as_json = run_main("tasks", "--json", env=env)
    table = run_main("tasks", env=env)

    assert [t["id"] for t in json.loads(as_json.stdout)] == [task_id]
    assert "params" not in json.loads(as_json.stdout)[0]
    assert task_id in table.stdout
    assert_clean(as_json, PARAMS_SECRET)
    assert_clean(table, PARAMS_SECRET)


@pytest.fixture
def two_instances(simulator: DcsSimulator) -> dict[str, str]:
    """cache-prod and cache-stage with a few tasks of different names, statuses and ages."""
    simulator.add_instance("cache-prod", instance_id=PROD_ID)
    simulator.add_instance("cache-stage", instance_id=STAGE_ID)
    now = datetime.now(UTC)
    return {
        "failed": simulator.add_task(
            PROD_ID, "EXTEND", "FAILED", created_at=now - timedelta(hours=1)
        ),
        "eip": simulator.add_task(
            PROD_ID, "BindEip", "SUCCESS", created_at=now - timedelta(hours=2)
        ),
        "port": simulator.add_task(
            STAGE_ID, "UpdatePort", "SUCCESS", created_at=now - timedelta(hours=3)
        ),
        "old": simulator.add_task(
            STAGE_ID, "AddReplica", "SUCCESS", created_at=now - timedelta(days=3)
        ),
    }


@pytest.mark.parametrize(
    ("args", "shown", "footer"),
    [
        ((), ["failed", "eip", "port"], None),
        (("--status", "failed"), ["failed"], None),
        (("--name", "bindeip"), ["eip"], None),
        (("--since", "7d"), ["failed", "eip", "port", "old"], None),
        (("--limit", "2"), ["failed", "eip"], "... 1 more; use --limit 0 for all"),
        (("cache-stage",), ["port"], None),
        (("--status", "EXECUTING"), [], "(no tasks)"),
    ],
    ids=["default", "status", "name", "since", "limit", "instance", "none"],
)
def test_tasks_table_filters(
    simulator: DcsSimulator,
    slack: FakeSlack,
    tmp_path: Path,
    two_instances: dict[str, str],
    args: tuple[str, ...],
    shown: list[str],
    footer: str | None,
) -> None:
    """The table shows the tasks the filters select, newest first, with instance names."""
    result = run_main("tasks", *args, env=bot_env(simulator, slack, tmp_path / "s"))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CREATED", "(UTC)", "INSTANCE", "TASK", "STATUS", "USER", "ID"]
    rows = [line for line in lines[1:] if not line.startswith(("...", "("))]
    assert [row.split()[-1] for row in rows] == [two_instances[k] for k in shown]
    for row in rows:
        assert row.split()[2] in ("cache-prod", "cache-stage")
    if footer:
        assert lines[-1] == footer
    assert_clean(result, DCS_TOKEN)


def test_tasks_without_instance_reads_the_watched_ones(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path, two_instances: dict[str, str]
) -> None:
    """Without INSTANCE, ``tasks`` reads the instances DCS_INSTANCES names, not the others."""
    env = bot_env(simulator, slack, tmp_path / "s", DCS_INSTANCES="cache-stage")

    result = run_main("tasks", "--json", "--since", "7d", env=env)

    assert result.returncode == 0, result.stderr
    assert [t["id"] for t in json.loads(result.stdout)] == [
        two_instances["port"],
        two_instances["old"],
    ]


# --- configuration errors ----------------------------------------------------------------------

FULL_DCS = {
    "DCS_ENDPOINT": "http://127.0.0.1:9",
    "DCS_PROJECT_ID": "proj-1",
    "DCS_AUTH_TOKEN": "dcs-token-secret-0123456789",
}


@pytest.mark.parametrize(
    ("args", "env", "variables"),
    [
        (("tasks",), {}, ["DCS_ENDPOINT", "DCS_PROJECT_ID", "DCS credentials"]),
        (("poll",), FULL_DCS, ["SLACK_BOT_TOKEN", "DCS_ALERT_CHANNEL"]),
        (("poll", "--dry-run"), {"DCS_PROJECT_ID": "p", "DCS_AUTH_TOKEN": "t"}, ["DCS_ENDPOINT"]),
        (("tasks",), {**FULL_DCS, "DCS_POLL_INTERVAL": "soon"}, ["DCS_POLL_INTERVAL"]),
        (("tasks",), {**FULL_DCS, "DCS_POLL_INTERVAL": "0"}, ["DCS_POLL_INTERVAL"]),
        (("tasks",), {**FULL_DCS, "DCS_LOOKBACK": "yesterday"}, ["DCS_LOOKBACK"]),
        (("tasks",), {**FULL_DCS, "DCS_ENDPOINT": "dcs.example.com"}, ["DCS_ENDPOINT"]),
        (("tasks",), {**FULL_DCS, "PORT": "http"}, ["PORT"]),
        (
            ("poll",),
            {**FULL_DCS, "DATABASE_URL": "mysql://bot:Db-Passw0rd-0123@db/bot"},
            ["DATABASE_URL"],
        ),
    ],
    ids=[
        "nothing",
        "no-slack",
        "dry-run-no-endpoint",
        "interval-text",
        "interval-too-small",
        "lookback",
        "endpoint-not-url",
        "port",
        "database-url",
    ],
)
def test_configuration_problems_exit_2_with_one_line_each(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], variables: list[str]
) -> None:
    """A missing or malformed variable stops the command with status 2 and one line per problem
    naming the variable and an example; no traceback, no secret echoed."""
    result = run_main(*args, env=env)

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == len(variables)
    for line, variable in zip(lines, variables, strict=True):
        assert line.startswith(f"configuration: {variable}")
        assert "e.g. " in line or "set DCS_ACCESS_KEY" in line
    assert_clean(result, "Db-Passw0rd-0123", FULL_DCS["DCS_AUTH_TOKEN"])


def test_bad_arguments_get_usage_and_status_2(tmp_path: Path) -> None:
    """A malformed --since or --limit is refused by the parser with the reason."""
    since = run_main("tasks", "--since", "soon", env=FULL_DCS)
    limit = run_main("tasks", "--limit", "-1", env=FULL_DCS)

    assert (since.returncode, limit.returncode) == (2, 2)
    assert "--since: use a duration such as 90m, 24h or 7d" in since.stderr
    assert "--limit: use a whole number (0 = all)" in limit.stderr
    assert_clean(since)
    assert_clean(limit)


def test_python_m_bot_cli_runs_the_command_line(tmp_path: Path) -> None:
    """``python -m bot.cli`` is the same command line as the console script."""
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--version"],
        env=base_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("dcs-tasks-bot ")


# --- DCS failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong-token", "DCS: DCS answered HTTP 401 APIGW.0301"),
        ("wrong-password", "DCS: IAM answered HTTP 401 IAM.0004"),
        ("unknown-instance", "DCS: unknown DCS instance 'cache-nope'; known instances: cache-prod"),
        ("unreachable", "DCS: DCS is unavailable: ConnectError on /v2/"),
        ("not-json", "DCS: DCS kept answering /v2/"),
    ],
)
def test_dcs_failures_end_in_one_clean_line(
    secured: DcsSimulator, tmp_path: Path, case: str, message: str
) -> None:
    """Refused credentials, an unknown instance, an unreachable endpoint or answers that are not
    JSON end the command with status 1 and one ``DCS:`` line: no traceback, no secret."""
    secured.add_instance("cache-prod", instance_id=PROD_ID)
    env = aksk_env(secured)
    args = ["tasks"]
    if case == "wrong-token":
        env = aksk_env(secured) | {"DCS_SECRET_KEY": "sk-wrong-0123456789"}
    elif case == "wrong-password":
        env = iam_env(secured) | {"OS_PASSWORD": "Wrong-Passw0rd-0123"}
    elif case == "unknown-instance":
        args.append("cache-nope")
    elif case == "unreachable":
        env["DCS_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    else:
        secured.inject("not_json", count=100)

    result = run_main(*args, env=env)

    assert result.returncode == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("DCS:")]
    assert len(errors) == 1
    assert errors[0].startswith(message)
    assert result.stderr.splitlines()[-1] == errors[0]
    assert_clean(result, SECRET_KEY, "sk-wrong-0123456789", "Wrong-Passw0rd-0123")


def test_tasks_of_an_instance_that_fails_still_lists_the_others(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path, two_instances: dict[str, str]
) -> None:
    """When one instance keeps failing, the others' tasks are printed, the failure is named on
    stderr, and the status is 1."""
    simulator.inject("500", count=100, path_contains=STAGE_ID)

    result = run_main("tasks", "--json", env=bot_env(simulator, slack, tmp_path / "s"))

    assert result.returncode == 1
    assert [t["id"] for t in json.loads(result.stdout)] == [
        two_instances["failed"],
        two_instances["eip"],
    ]
    assert f"error: {STAGE_ID}: DCS is unavailable: HTTP 500 DCS.5000" in result.stderr
    assert_clean(result, DCS_TOKEN)


# --- poll --------------------------------------------------------------------------------------


@pytest.fixture
def prod(simulator: DcsSimulator) -> str:
    """cache-prod with one resize in progress; returns the task ID."""
    simulator.add_instance("cache-prod", instance_id=PROD_ID)
    return simulator.add_task(PROD_ID, "EXTEND", "EXECUTING")


def test_poll_once_posts_alerts_and_updates_them(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path, prod: str
) -> None:
    """``poll --once`` posts the running task and exits 0; the next run, after the task ended,
    edits that message and replies in its thread with the transition."""
    env = bot_env(simulator, slack, tmp_path / "state.sqlite")

    first = run_bot("poll", "--once", env=env, cwd=tmp_path)
    simulator.set_status(prod, "SUCCESS")
    second = run_bot("poll", "--once", env=env, cwd=tmp_path)

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    alert, reply = slack.messages(ALERTS)
    assert "Modifying specifications" in (alert.text or "")
    assert "SUCCESS" in (alert.text or "")
    assert alert.edited
    assert reply.thread_ts == alert.ts
    assert "EXECUTING → SUCCESS" in (reply.text or "")
    assert_clean(first, SLACK_TOKEN, DCS_TOKEN)
    assert_clean(second, SLACK_TOKEN, DCS_TOKEN)


def test_poll_once_exits_1_when_an_instance_fails(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path, prod: str
) -> None:
    """``poll --once`` exits 1, without a traceback, when an instance keeps answering 500."""
    simulator.inject("500", count=100, path_contains=PROD_ID)

    result = run_bot("poll", "--once", env=bot_env(simulator, slack, tmp_path / "s"), cwd=tmp_path)

    assert result.returncode == 1
    assert "polling cache-prod failed: DCS is unavailable: HTTP 500" in result.stderr
    assert slack.calls_to("chat.postMessage") == []
    assert_clean(result, SLACK_TOKEN, DCS_TOKEN)


def test_dry_run_without_state_prints_and_creates_nothing(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path, prod: str
) -> None:
    """``poll --once --dry-run`` prints the alert, calls no Slack method, creates no state file."""
    state = tmp_path / "state.sqlite"
    before = set(tmp_path.iterdir())

    result = run_bot(
        "poll", "--once", "--dry-run", env=bot_env(simulator, slack, state), cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert "#C0ALERTS · post" in result.stdout
    assert "Modifying specifications" in result.stdout
    assert "1 messages; nothing posted, no state changed" in result.stdout
    assert slack.calls == []
    assert set(tmp_path.iterdir()) == before
    assert_clean(result, SLACK_TOKEN, DCS_TOKEN)


def _rows(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as db:
        return sorted(db.execute('SELECT key, value FROM "state"'))


def test_dry_run_with_state_changes_nothing(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path, prod: str
) -> None:
    """A dry run on existing state shows only what is new, posts nothing and leaves the state
    file byte for byte as it was, so the next real cycle still posts the new task."""
    state = tmp_path / "state.sqlite"
    env = bot_env(simulator, slack, state)
    assert run_bot("poll", "--once", env=env, cwd=tmp_path).returncode == 0
    simulator.add_task(PROD_ID, "BindEip", "EXECUTING")
    rows = _rows(state)
    calls, files, content = len(slack.calls), set(tmp_path.iterdir()), state.read_bytes()

    dry = run_bot("poll", "--once", "--dry-run", env=env, cwd=tmp_path)

    assert dry.returncode == 0, dry.stderr
    assert "Enabling public access" in dry.stdout
    assert "Modifying specifications" not in dry.stdout  # already announced
    assert len(slack.calls) == calls
    assert state.read_bytes() == content
    assert set(tmp_path.iterdir()) == files
    assert _rows(state) == rows
    assert run_bot("poll", "--once", env=env, cwd=tmp_path).returncode == 0
    assert posted(slack, "Enabling public access")


def test_second_poller_on_the_same_state_file_is_refused(
    simulator: DcsSimulator,
    slack: FakeSlack,
    tmp_path: Path,
    prod: str,
    running: Callable[..., Running],
) -> None:
    """While one poller runs on an SQLite STATE_PATH, another ``poll`` (or ``poll --once``)
    says so and exits non-zero without touching Slack."""
    env = bot_env(simulator, slack, tmp_path / "state.sqlite", DCS_POLL_INTERVAL="5")
    first = running("poll", env=env)
    wait_until(lambda: posted(slack, "Modifying specifications"), "the first poller's alert")

    again = run_bot("poll", env=env, cwd=tmp_path)
    once = run_bot("poll", "--once", env=env, cwd=tmp_path)

    for result in (again, once):
        assert result.returncode == 1
        assert "another poller already uses STATE_PATH=" in result.stderr
        assert "DATABASE_URL" in result.stderr
        assert_clean(result, SLACK_TOKEN)
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert first.terminate() == 0


def test_poll_stops_cleanly_on_sigterm(
    simulator: DcsSimulator,
    slack: FakeSlack,
    tmp_path: Path,
    prod: str,
    running: Callable[..., Running],
) -> None:
    """The long-running poller exits 0 soon after SIGTERM and releases the state file."""
    env = bot_env(simulator, slack, tmp_path / "state.sqlite", DCS_POLL_INTERVAL="5")
    poller = running("poll", env=env)
    wait_until(lambda: posted(slack, "Modifying specifications"), "the poller's alert")

    assert poller.terminate() == 0
    assert "received SIGTERM" in poller.stderr
    assert "Traceback" not in poller.stderr
    simulator.set_status(prod, "SUCCESS")
    after = run_bot("poll", "--once", env=env, cwd=tmp_path)  # the lock was released
    assert after.returncode == 0, after.stderr


# --- demo and simulate -------------------------------------------------------------------------


def test_demo_plays_the_story_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``demo`` needs no configuration, runs to the end with status 0 and shows the story."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # as base_env: rich renders wide, no phrase is wrapped

    result = run_main("demo", env={})

    assert result.returncode == 0, result.stderr
    for step in (
        "Modifying specifications",
        "EXECUTING → SUCCESS",
        "EXECUTING → FAILED",
        "also sent to the channel",
        "12 new DCS tasks",
        "A quiet cycle: nothing changed, nothing is posted",
        "demo finished",
    ):
        assert step in result.stdout
    assert_clean(result)
    assert list(tmp_path.iterdir()) == []  # its state lived in a scratch directory


def test_simulate_serves_the_demo_instances_until_sigterm(
    tmp_path: Path, running: Callable[..., Running]
) -> None:
    """``simulate --port N`` serves the demo project on N; the settings it prints work for
    ``tasks``; SIGTERM stops it with status 0."""
    port = free_port()
    simulator = running("simulate", "--port", str(port), env={})
    hint = simulator.wait_for_line("DCS_AUTH_TOKEN=").group(0)
    printed = dict(item.split("=", 1) for item in hint.split())

    answer = httpx.get(
        f"http://127.0.0.1:{port}/v2/{printed['DCS_PROJECT_ID']}/instances",
        headers={"X-Auth-Token": printed["DCS_AUTH_TOKEN"]},
        timeout=10,
    )
    listed = run_main("tasks", "--json", "--since", "7d", env=printed)

    assert printed["DCS_ENDPOINT"] == f"http://127.0.0.1:{port}"
    assert answer.status_code == 200
    names = {i["name"] for i in answer.json()["instances"]}
    assert names == {"cache-prod", "cache-staging", "sessions"}
    assert listed.returncode == 0, listed.stderr
    assert sorted(t["name"] for t in json.loads(listed.stdout)) == ["AddWhitelist", "UpdatePort"]
    assert simulator.terminate() == 0


def test_simulate_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    """``simulate`` on a busy port ends with one line naming the port, status 1, no traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_bot("simulate", "--port", str(port), env={}, cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("error: ")
    assert f"cannot listen on port {port}" in result.stderr
    assert_clean(result)
