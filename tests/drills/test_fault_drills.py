"""Fault drills on a real ``poll`` process (SQLite state): random DCS faults over many cycles,
a Slack outage, and kill -9 at random moments, each while a script of task creations and status
changes runs. At the end nothing may be lost, and nothing duplicated beyond what at-least-once
delivery allows.

Run with ``pytest -s`` to see each drill's counts.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.drills.conftest import (
    TOKENS,
    Launcher,
    Ledger,
    PollProcess,
    SlackView,
    audit,
    drill_env,
    run_script,
    settle,
    slack_ready,
    sqlite_outbox,
    sqlite_pending,
)
from tests.waiting import poll_until

pytestmark = pytest.mark.slow

FAULT_KINDS = ["500", "429", "truncated", "slow"]  # "slow": 0.5 s, under the 10 s client timeout


def started(process: PollProcess) -> PollProcess:
    """The process, once it has logged its first cycle."""
    assert poll_until(lambda: process.cycles() > 0, 20), process.tail()
    return process


def test_poll_survives_thirty_percent_dcs_faults(
    sim: DcsSimulator, slack: FakeSlack, launch: Launcher, tmp_path: Path
) -> None:
    """Over 25+ cycles where 30% of DCS requests fail (5xx, 429, cut JSON, stalls), the process
    stays up and, once DCS recovers, every change has been alerted exactly once."""
    state = tmp_path / "state.sqlite"
    bot = started(launch(drill_env(sim, slack, token=TOKENS[0], state_path=state), name="faults"))
    ledger = Ledger(sim, random.Random(11))
    sim.set_fault_rate(0.3, FAULT_KINDS)
    first = bot.cycles()
    requests_before = len(sim.requests)

    run_script(
        ledger, slack_ready(ledger, slack), seconds=60, until=lambda: bot.cycles() - first >= 25
    )
    under_faults = bot.cycles() - first
    requests = len(sim.requests) - requests_before
    sim.clear_faults()

    assert settle(ledger, slack, sqlite_pending(state), timeout=40), bot.tail()
    result = audit(ledger, SlackView.read(slack))
    log = bot.output()
    retries = log.count("; retry ")
    failed_polls = log.count("failed: DCS")
    print(
        "\n"
        + result.line(
            "dcs-faults",
            cycles=bot.cycles(),
            cycles_under_faults=under_faults,
            dcs_requests_under_faults=requests,
            dcs_retries=retries,
            failed_instance_polls=failed_polls,
        )
    )
    assert bot.alive(), bot.tail()
    assert under_faults >= 25
    assert retries > 0, "the faults never reached the poller"
    assert result.changes >= 40
    assert (result.lost, result.duplicates, result.unexpected, result.disorder) == (
        [],
        [],
        [],
        [],
    ), result.problems()
    assert result.strays == 0
    assert "Traceback" not in log
    assert bot.terminate() == 0, bot.tail()


def test_a_slack_outage_loses_nothing_and_keeps_order(
    sim: DcsSimulator, slack: FakeSlack, launch: Launcher, tmp_path: Path
) -> None:
    """Slack answering 503 for five cycles while tasks start and change: afterwards every
    change is in Slack once, each task's message before its thread replies, replies in order."""
    state = tmp_path / "state.sqlite"
    bot = started(launch(drill_env(sim, slack, token=TOKENS[0], state_path=state), name="outage"))
    ledger = Ledger(sim, random.Random(12))
    run_script(ledger, slack_ready(ledger, slack), seconds=2)

    slack.outage(True)
    calls_before, first = len(slack.calls), bot.cycles()
    # Slack shows nothing now: a task changes again once DCS has been asked after its change.
    during = run_script(
        ledger, ledger.polled_since_change, seconds=20, until=lambda: bot.cycles() - first >= 5
    )
    outage_cycles = bot.cycles() - first
    refused = len(slack.calls) - calls_before
    slack.outage(False)
    recovered = time.monotonic()

    assert settle(ledger, slack, sqlite_pending(state), timeout=60), bot.tail()
    recovery = time.monotonic() - recovered - 2  # settle waits two intervals at the end
    result = audit(ledger, SlackView.read(slack))
    print(
        "\n"
        + result.line(
            "slack-outage",
            cycles=bot.cycles(),
            outage_cycles=outage_cycles,
            changes_during_outage=during,
            calls_refused=refused,
            recovery_s=f"{recovery:.1f}",
        )
    )
    assert outage_cycles >= 5
    assert during >= 5
    assert refused > 0, "nothing was tried during the outage"
    assert (result.lost, result.duplicates, result.unexpected, result.disorder) == (
        [],
        [],
        [],
        [],
    ), result.problems()
    assert result.strays == 0, "a reply or an update was posted as a message of its own"
    assert bot.alive(), bot.tail()


def test_kill_9_at_random_moments_loses_nothing(
    sim: DcsSimulator, slack: FakeSlack, launch: Launcher, tmp_path: Path
) -> None:
    """Ten kill -9 at random moments with changes in flight, each followed by a restart on the
    same state file: nothing is lost, and at most one message is repeated per kill."""
    rng = random.Random(13)
    env = drill_env(sim, slack, token=TOKENS[0], state_path=tmp_path / "state.sqlite")
    bot = started(launch(env, name="kill-0"))
    processes = [bot]
    ledger = Ledger(sim, random.Random(14))
    ready = slack_ready(ledger, slack)
    kills = 0

    for n in range(1, 11):
        run_script(ledger, ready, seconds=rng.uniform(0.5, 2.0))
        ledger.step(ready(), create=1, advance=2)  # in flight when the kill comes
        time.sleep(rng.uniform(0.0, 1.0))
        bot.kill()
        kills += 1
        ledger.step(ready(), create=1, advance=1)  # made while nobody polls
        bot = started(launch(env, name=f"kill-{n}"))
        processes.append(bot)
    run_script(ledger, ready, seconds=2)

    assert settle(ledger, slack, sqlite_pending(tmp_path / "state.sqlite"), timeout=40), bot.tail()
    result = audit(ledger, SlackView.read(slack))
    print("\n" + result.line("kill-9", kills=kills, cycles=sum(p.cycles() for p in processes)))
    assert (result.lost, result.unexpected, result.disorder) == ([], [], []), result.problems()
    assert len(result.duplicates) <= kills, result.problems()
    assert result.strays == 0
    assert bot.alive(), bot.tail()
    assert bot.terminate() == 0, bot.tail()


def test_a_restart_while_a_post_waits_for_its_retry_keeps_the_task_on_one_message(
    sim: DcsSimulator, slack: FakeSlack, launch: Launcher, tmp_path: Path
) -> None:
    """Slack refuses a task's first post (503, Retry-After: 5) and the process restarts before
    the retry while the task changes: the update and the reply wait for the post, so the task
    keeps one message, showing its last status."""
    state = tmp_path / "state.sqlite"
    env = drill_env(sim, slack, token=TOKENS[0], state_path=state)
    bot = started(launch(env, name="before-restart"))
    ledger = Ledger(sim, random.Random(15))
    slack.fail_next("chat.postMessage", status=503, retry_after=5)

    task = ledger.create()
    assert poll_until(lambda: any(d["attempts"] for d in sqlite_outbox(state)), 10), bot.tail()
    bot.kill()
    ledger.advance(task)
    bot = started(launch(env, name="after-restart"))

    assert settle(ledger, slack, sqlite_pending(state), timeout=30), bot.tail()
    result = audit(ledger, SlackView.read(slack))
    print("\n" + result.line("restart-before-retry", kills=1))
    assert (result.lost, result.duplicates, result.unexpected, result.disorder) == (
        [],
        [],
        [],
        [],
    ), result.problems()
    assert result.strays == 0
