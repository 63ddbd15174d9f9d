"""Process-level drills: real ``dcs-tasks-bot poll`` subprocesses against the DCS simulator and
the fake Slack, both hosted in the test process on loopback, and an audit of what reached Slack.

The audit compares the changes a drill made in the simulator (``Ledger``) with the messages of
the alert channel (``SlackView``): a change is *lost* when the task's message does not end
showing its final status or its thread lacks a transition; a *duplicate* is a second top-level
message for a task or the same transition replied twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bot.testing.fake_slack import FakeMessage, FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.conftest import ALERTS, bot_env
from tests.postgres import PgSchema
from tests.waiting import poll_until

#: The console script installed next to the interpreter running the tests.
BOT = Path(sys.executable).parent / "dcs-tasks-bot"
INTERVAL = 1
#: One DCS token per process, so the simulator's request log tells who polled.
TOKENS = ("drill-token-a-0123456789", "drill-token-b-0123456789", "drill-token-c-0123456789")

OPEN_STATUSES = ("CREATED", "WAITING", "EXECUTING")
NEXT_STATUS = {
    "CREATED": ("EXECUTING",),
    "WAITING": ("EXECUTING",),
    "EXECUTING": ("SUCCESS", "SUCCESS", "FAILED"),
}
FINAL_STATUSES = frozenset({"SUCCESS", "FAILED"})
TASK_NAMES = ("EXTEND", "BindEip", "AddReplica", "modify", "masterStandbySwapJob")

_SUMMARY = re.compile(r"^\*([^*]+)\* on ")
_TASK_IN_CONTEXT = re.compile(r"Task `([^`]+)`")
_TRANSITION = re.compile(r": (\S+) → (\S+)(?: after |$)")


# -- the processes -------------------------------------------------------------------------


@dataclass
class PollProcess:
    """One ``dcs-tasks-bot poll`` subprocess, its output going to ``log``."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    token: str

    @property
    def pid(self) -> int:
        """The process ID (the lease owner is ``host:pid``)."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM (what Heroku sends), then wait; returns the exit status (kill -9 if stuck)."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def output(self) -> str:
        """Everything the process wrote (stdout and stderr)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 30) -> str:
        """The last lines of its output, for assertion messages."""
        return f"--- {self.name} (pid {self.pid}) ---\n" + "\n".join(
            self.output().splitlines()[-lines:]
        )

    def cycles(self) -> int:
        """How many poll cycles it logged."""
        marker = " bot.pipeline.poll: cycle: "
        return sum(1 for line in self.output().splitlines() if marker in line)


Launcher = Callable[..., PollProcess]


def drill_env(
    sim: DcsSimulator,
    slack: FakeSlack,
    *,
    token: str,
    state_path: Path | None = None,
    database_url: str | None = None,
) -> dict[str, str]:
    """A clean environment for ``poll`` (nothing inherited but PATH and HOME)."""
    extra = {
        "DCS_AUTH_TOKEN": token,
        "DCS_POLL_INTERVAL": str(INTERVAL),
        # Every new task gets its own message: the digest is tested elsewhere, and would make
        # a backlog after a kill or an outage unaccountable task by task.
        "DCS_DIGEST_THRESHOLD": "1000",
        "LOG_LEVEL": "INFO",
    }
    env = bot_env(sim, slack, state_path or Path("unused.sqlite"), **extra)
    if state_path is None:
        del env["STATE_PATH"]
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    env["HOME"] = os.environ.get("HOME", "/tmp")
    env["LANG"] = "C.UTF-8"
    return env


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    """Start ``poll`` processes; any still running at the end is stopped (kill -9 if stuck)."""
    started: list[PollProcess] = []

    def start(env: dict[str, str], *, name: str, cwd: Path | None = None) -> PollProcess:
        workdir = cwd or tmp_path
        workdir.mkdir(parents=True, exist_ok=True)
        log = tmp_path / f"{name}-{len(started)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(BOT), "poll"], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
            )
        process = PollProcess(name, popen, log, env["DCS_AUTH_TOKEN"])
        started.append(process)
        return process

    yield start
    for process in started:
        if process.alive():
            with contextlib.suppress(subprocess.TimeoutExpired):  # it was killed instead
                process.terminate(timeout=10)


@pytest.fixture
def sim() -> Iterator[DcsSimulator]:
    """A DCS simulator accepting one token per drill process, with two instances."""
    simulator = DcsSimulator(project_id="proj-drill", tokens=TOKENS, slow_delay=0.5, seed=5)
    simulator.start()
    simulator.add_instance("cache-a")
    simulator.add_instance("cache-b")
    yield simulator
    simulator.stop()


def task_requests(sim: DcsSimulator, *, token: str | None = None, since: int = 0) -> int:
    """How many task-list requests (of one process, by token) the simulator received after
    request number ``since``."""
    return sum(
        1
        for r in sim.requests[since:]
        if r.path.endswith("/tasks") and (token is None or r.headers.get("x-auth-token") == token)
    )


def tokens_polling(sim: DcsSimulator, since: int = 0) -> Counter[str]:
    """Task-list requests after request number ``since``, counted by the token that sent them."""
    return Counter(
        r.headers.get("x-auth-token", "") for r in sim.requests[since:] if r.path.endswith("/tasks")
    )


# -- what the drill changed ----------------------------------------------------------------


@dataclass
class TaskPlan:
    """One task the drill created, with every status it was given, in order."""

    task_id: str
    instance_id: str
    statuses: list[str]
    #: len(sim.requests) when the last status was set (for ``Ledger.polled_since_change``).
    mark: int = 0

    @property
    def final(self) -> str:
        """The status it has now."""
        return self.statuses[-1]

    @property
    def transitions(self) -> list[tuple[str, str]]:
        """Each (old, new) status change, in order."""
        return list(zip(self.statuses, self.statuses[1:], strict=False))


class Ledger:
    """Makes task creations and status changes in the simulator and remembers them.

    A task is changed again only once its previous change is ``ready`` (seen by the bot): two
    changes inside one poll interval would be one transition for any poller.
    """

    def __init__(self, sim: DcsSimulator, rng: random.Random) -> None:
        self.sim = sim
        self.rng = rng
        self.plans: dict[str, TaskPlan] = {}

    @property
    def changes(self) -> int:
        """Creations plus status changes made so far."""
        return sum(len(p.statuses) for p in self.plans.values())

    def create(self, instance_id: str | None = None) -> str:
        """A new task in a not-yet-finished status."""
        iid = instance_id or self.rng.choice(self.sim.instance_ids())
        status = self.rng.choice(OPEN_STATUSES)
        task_id = self.sim.add_task(iid, self.rng.choice(TASK_NAMES), status)
        # Marked after the change: any request recorded later reads the new state.
        self.plans[task_id] = TaskPlan(task_id, iid, [status], len(self.sim.requests))
        return task_id

    def advance(self, task_id: str) -> None:
        """Move a task to its next status."""
        plan = self.plans[task_id]
        status = self.rng.choice(NEXT_STATUS[plan.final])
        self.sim.set_status(task_id, status)
        plan.statuses.append(status)
        plan.mark = len(self.sim.requests)

    def open_plans(self) -> list[TaskPlan]:
        """Tasks that have not finished."""
        return [p for p in self.plans.values() if p.final not in FINAL_STATUSES]

    def step(self, ready: set[str], *, create: int = 1, advance: int = 2, max_open: int = 8) -> int:
        """Create up to ``create`` tasks and advance up to ``advance`` ready ones; return how
        many changes were made."""
        made = 0
        candidates = [p.task_id for p in self.open_plans() if p.task_id in ready]
        for task_id in self.rng.sample(candidates, min(advance, len(candidates))):
            self.advance(task_id)
            made += 1
        for _ in range(create):
            if len(self.open_plans()) < max_open:
                self.create()
                made += 1
        return made

    def polled_since_change(self) -> set[str]:
        """Tasks whose instance was asked for its tasks after their last change (a gate for
        drills where DCS answers every request and the process is not killed)."""
        asked: set[str] = set()
        requests = self.sim.requests
        for plan in self.plans.values():
            suffix = f"/instances/{plan.instance_id}/tasks"
            if any(r.path.endswith(suffix) for r in requests[plan.mark :]):
                asked.add(plan.task_id)
        return asked


# -- what Slack shows ----------------------------------------------------------------------


def _task_id(message: FakeMessage) -> str | None:
    """The task a top-level alert is about: the button value, else the context block."""
    for block in message.blocks or []:
        if block.get("type") == "actions":
            for element in block.get("elements", []):
                try:
                    value = json.loads(element.get("value") or "")
                except ValueError:
                    continue
                if isinstance(value, dict) and value.get("task_id"):
                    return str(value["task_id"])
        if block.get("type") == "context":
            for element in block.get("elements", []):
                if found := _TASK_IN_CONTEXT.search(str(element.get("text", ""))):
                    return found[1]
    return None


def _status(message: FakeMessage) -> str | None:
    for block in message.blocks or []:
        text = block.get("text") if block.get("type") == "section" else None
        if isinstance(text, dict) and (found := _SUMMARY.match(str(text.get("text", "")))):
            return found[1]
    return None


@dataclass
class SlackView:
    """The alert channel as it now stands, read task by task."""

    #: task ID -> its top-level messages, oldest first
    tops: dict[str, list[FakeMessage]] = field(default_factory=dict)
    #: task ID -> the transitions replied in its threads, oldest first
    replies: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: messages that name no task, or replies whose parent or transition cannot be read
    strays: list[FakeMessage] = field(default_factory=list)
    messages: int = 0

    @classmethod
    def read(cls, slack: FakeSlack, channel: str = ALERTS) -> SlackView:
        """Parse the channel's messages."""
        view = cls()
        messages = slack.messages(channel)
        view.messages = len(messages)
        owner: dict[str, str] = {}
        for message in messages:
            if message.thread_ts is not None:
                continue
            task_id = _task_id(message)
            if task_id is None:
                view.strays.append(message)
                continue
            view.tops.setdefault(task_id, []).append(message)
            owner[message.ts] = task_id
        for message in messages:
            if message.thread_ts is None:
                continue
            task_id = owner.get(message.thread_ts)
            found = _TRANSITION.search(message.text or "")
            if task_id is None or found is None:
                view.strays.append(message)
                continue
            view.replies.setdefault(task_id, []).append((found[1], found[2]))
        return view

    def shows(self, plan: TaskPlan) -> bool:
        """True when the task's last change is visible: its message shows the status, and the
        last transition is in its thread."""
        tops = self.tops.get(plan.task_id)
        if not tops or _status(tops[-1]) != plan.final:
            return False
        return not plan.transitions or plan.transitions[-1] in self.replies.get(plan.task_id, [])

    def ready(self, ledger: Ledger) -> set[str]:
        """The tasks whose last change shows."""
        return {p.task_id for p in ledger.plans.values() if self.shows(p)}


@dataclass
class Audit:
    """Lost and duplicate alerts of a drill, with the counts it prints."""

    changes: int
    alerts: int
    lost: list[str]
    duplicates: list[str]
    unexpected: list[str]
    disorder: list[str]
    strays: int

    def line(self, drill: str, **extra: object) -> str:
        """One printable line of counts."""
        counts = {
            "changes": self.changes,
            "alerts": self.alerts,
            "lost": len(self.lost),
            "duplicates": len(self.duplicates),
            "unexpected": len(self.unexpected),
            "disorder": len(self.disorder),
            "strays": self.strays,
            **extra,
        }
        return f"DRILL {drill}: " + " ".join(f"{k}={v}" for k, v in counts.items())

    def problems(self) -> str:
        """Every problem found, for assertion messages."""
        return "\n".join(
            [f"lost: {x}" for x in self.lost]
            + [f"duplicate: {x}" for x in self.duplicates]
            + [f"unexpected: {x}" for x in self.unexpected]
            + [f"out of order: {x}" for x in self.disorder]
        )


def audit(ledger: Ledger, view: SlackView, tasks: Sequence[str] | None = None) -> Audit:
    """Compare the changes made (of ``tasks``, default all) with what the channel shows."""
    lost: list[str] = []
    duplicates: list[str] = []
    unexpected: list[str] = []
    disorder: list[str] = []
    alerts = 0
    wanted = ledger.plans if tasks is None else {t: ledger.plans[t] for t in tasks}
    for task_id, plan in wanted.items():
        tops = view.tops.get(task_id, [])
        got = view.replies.get(task_id, [])
        alerts += len(tops) + len(got)
        if not tops:
            lost.append(f"{task_id}: never posted ({' → '.join(plan.statuses)})")
            continue
        duplicates += [f"{task_id}: top-level message #{n}" for n in range(2, len(tops) + 1)]
        if _status(tops[-1]) != plan.final:
            lost.append(f"{task_id}: message shows {_status(tops[-1])}, not {plan.final}")
        counts = Counter(got)
        for transition in plan.transitions:
            if counts[transition] == 0:
                lost.append(f"{task_id}: no reply {' → '.join(transition)}")
            duplicates += [f"{task_id}: reply {' → '.join(transition)}"] * (counts[transition] - 1)
        unexpected += [
            f"{task_id}: reply {a} → {b}" for a, b in counts if (a, b) not in plan.transitions
        ]
        order = list(dict.fromkeys(got))
        if order != [t for t in plan.transitions if t in counts]:
            disorder.append(f"{task_id}: replies {order}, changes {plan.transitions}")
    unknown = [t for t in view.tops if t not in ledger.plans]
    unexpected += [f"{t}: a message for a task the drill never made" for t in unknown]
    return Audit(
        changes=sum(len(p.statuses) for p in wanted.values()),
        alerts=alerts,
        lost=lost,
        duplicates=duplicates,
        unexpected=unexpected,
        disorder=disorder,
        strays=len(view.strays),
    )


def settle(ledger: Ledger, slack: FakeSlack, pending: Callable[[], int], *, timeout: float) -> bool:
    """Wait until every change shows in Slack and the outbox is empty, then two more intervals
    (so that a late duplicate has its chance to appear). False on timeout."""

    def done() -> bool:
        view = SlackView.read(slack)
        return view.ready(ledger) == set(ledger.plans) and pending() == 0

    if not poll_until(done, timeout, step=0.2):
        return False
    time.sleep(2 * INTERVAL)
    return True


def sqlite_outbox(path: Path) -> list[dict[str, Any]]:
    """The outbox of a state file another process is using (read-only), oldest first."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT value FROM \"state\" WHERE key >= 'out:' AND key < 'out;' ORDER BY key"
        ).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()
    return [json.loads(value) for (value,) in rows]


def sqlite_pending(path: Path) -> Callable[[], int]:
    """Counts the outbox of a state file another process is using."""
    return lambda: len(sqlite_outbox(path))


# -- PostgreSQL ----------------------------------------------------------------------------


@dataclass
class DrillDatabase:
    """A schema of its own in the test database, named to the processes through the URL."""

    base_url: str
    schema: str

    @property
    def url(self) -> str:
        """DATABASE_URL for the processes: the schema as libpq ``options`` (search_path)."""
        joiner = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{joiner}options=-csearch_path%3D{self.schema}"

    def _query(self, query: str) -> list[tuple[Any, ...]]:
        statement = sql.SQL(query).format(schema=sql.Identifier(self.schema))
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            return conn.execute(statement).fetchall()

    def lease_owner(self) -> str | None:
        """``host:pid`` of the poller lease's owner (None when nobody holds it)."""
        try:
            rows = self._query("SELECT owner FROM {schema}.poller_lease WHERE name = 'poller'")
        except psycopg.errors.UndefinedTable:
            return None
        return str(rows[0][0]) if rows else None

    def lease_pid(self) -> int | None:
        """The pid part of the lease owner."""
        owner = self.lease_owner()
        return None if owner is None else int(owner.rsplit(":", 1)[1])

    def pending(self) -> int:
        """How many deliveries are in the outbox."""
        try:
            return int(self._query("SELECT count(*) FROM {schema}.outbox")[0][0])
        except psycopg.errors.UndefinedTable:
            return 0


@pytest.fixture
def drill_db(pg_schema: PgSchema) -> DrillDatabase:
    """An empty schema of its own (tests.postgres: dropped after the test, a loud skip when
    PostgreSQL is unreachable)."""
    pg_schema.create()
    return DrillDatabase(pg_schema.url, pg_schema.name)


def run_script(
    ledger: Ledger,
    ready: Callable[[], set[str]],
    *,
    seconds: float,
    until: Callable[[], bool] | None = None,
    every: float = 0.3,
    create: int = 1,
    advance: int = 2,
) -> int:
    """Make changes, a step every ``every`` seconds, for ``seconds`` or until ``until()`` is
    true, whichever comes first; return how many."""
    made = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until is not None and until()):
        made += ledger.step(ready(), create=create, advance=advance)
        time.sleep(every)
    return made


def slack_ready(ledger: Ledger, slack: FakeSlack) -> Callable[[], set[str]]:
    """The gate "the task's last change shows in Slack" (for drills where Slack answers)."""
    return lambda: SlackView.read(slack).ready(ledger)
