"""Scale-out drills: several real ``poll`` processes on one PostgreSQL database (one polls, the
others stand by and take over after a kill -9), a restart from an empty working directory, and
the refusal of a second poller on one SQLite file (that one is in tests/bot/test_cli.py).

Run with ``pytest -s`` to see the counts and the measured failover times.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.drills.conftest import (
    INTERVAL,
    TOKENS,
    DrillDatabase,
    Launcher,
    Ledger,
    PollProcess,
    SlackView,
    audit,
    drill_env,
    run_script,
    settle,
    slack_ready,
    task_requests,
    tokens_polling,
)
from tests.waiting import poll_until

#: Generous: the lease lapses 1.5 intervals after the last renewal, and the standby's next
#: cycle follows within about one interval (plus up to 1 s of scheduler jitter).
FAILOVER_BOUND = 5 * INTERVAL


def tails(*processes: PollProcess) -> str:
    """The end of each process's output, for assertion messages."""
    return "\n".join(p.tail() for p in processes)


def wait_for_leader(db: DrillDatabase, sim: DcsSimulator, *processes: PollProcess) -> PollProcess:
    """The process holding the lease, once it has polled."""

    def polled() -> bool:
        pid = db.lease_pid()
        return any(p.pid == pid and task_requests(sim, token=p.token) > 0 for p in processes)

    assert poll_until(polled, 20), tails(*processes)
    pid = db.lease_pid()
    return next(p for p in processes if p.pid == pid)


def kill_and_measure(
    db: DrillDatabase, sim: DcsSimulator, leader: PollProcess, standby: PollProcess
) -> tuple[float, float]:
    """kill -9 the leader; return the seconds until the lease changed owner and until the
    standby's first DCS request."""
    mark = len(sim.requests)
    killed = time.monotonic()
    leader.kill()
    took_lease: float | None = None
    polled: float | None = None
    deadline = killed + 30
    while (took_lease is None or polled is None) and time.monotonic() < deadline:
        now = time.monotonic()
        if took_lease is None and db.lease_pid() == standby.pid:
            took_lease = now - killed
        if polled is None and task_requests(sim, token=standby.token, since=mark) > 0:
            polled = now - killed
        time.sleep(0.02)
    assert took_lease is not None, "the standby never took the lease\n" + tails(standby)
    assert polled is not None, "the standby never polled\n" + tails(standby)
    return took_lease, polled


@pytest.mark.postgres
@pytest.mark.slow
def test_two_pollers_on_one_database_alert_each_change_exactly_once(
    sim: DcsSimulator, slack: FakeSlack, drill_db: DrillDatabase, launch: Launcher
) -> None:
    """Two poll processes share PostgreSQL: only the lease holder polls, and each change is
    alerted exactly once."""
    env = {t: drill_env(sim, slack, token=t, database_url=drill_db.url) for t in TOKENS[:2]}
    a = launch(env[TOKENS[0]], name="a")
    b = launch(env[TOKENS[1]], name="b")
    leader = wait_for_leader(drill_db, sim, a, b)
    standby = b if leader is a else a
    ledger = Ledger(sim, random.Random(1))

    run_script(ledger, slack_ready(ledger, slack), seconds=8)

    assert settle(ledger, slack, drill_db.pending, timeout=30), tails(a, b)
    result = audit(ledger, SlackView.read(slack))
    polling = tokens_polling(sim)  # since both started
    print(
        "\n"
        + result.line(
            "scaleout-two-pollers",
            cycles=leader.cycles(),
            standby_cycles=standby.cycles(),
            task_requests_leader=polling[leader.token],
            task_requests_standby=polling[standby.token],
        )
    )
    assert result.changes >= 15
    assert (result.lost, result.duplicates, result.unexpected, result.disorder) == (
        [],
        [],
        [],
        [],
    ), result.problems()
    assert result.strays == 0
    assert set(polling) == {leader.token}, "both processes polled"
    assert standby.cycles() == 0
    assert drill_db.lease_pid() == leader.pid
    assert a.alive(), tails(a)
    assert b.alive(), tails(b)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_standby_takes_over_after_the_leader_is_killed(
    sim: DcsSimulator, slack: FakeSlack, drill_db: DrillDatabase, launch: Launcher
) -> None:
    """kill -9 of the polling process: a standby takes the lease and polls within a few
    intervals (twice in a row), and changes made after each kill are alerted once."""
    env = {t: drill_env(sim, slack, token=t, database_url=drill_db.url) for t in TOKENS}
    processes = [launch(env[TOKENS[0]], name="a"), launch(env[TOKENS[1]], name="b")]
    leader = wait_for_leader(drill_db, sim, *processes)
    ledger = Ledger(sim, random.Random(2))
    ready = slack_ready(ledger, slack)
    run_script(ledger, ready, seconds=3)
    assert settle(ledger, slack, drill_db.pending, timeout=30), tails(*processes)
    before_kills = set(ledger.plans)

    measured: list[tuple[float, float]] = []
    for round_ in range(2):
        standby = next(p for p in processes if p is not leader and p.alive())
        measured.append(kill_and_measure(drill_db, sim, leader, standby))
        leader = standby
        run_script(ledger, ready, seconds=3)
        if round_ == 0:  # a fresh standby for the second kill
            processes.append(launch(env[TOKENS[2]], name="c"))
            time.sleep(2 * INTERVAL)  # it starts and stands by
            assert processes[-1].alive(), tails(processes[-1])

    assert settle(ledger, slack, drill_db.pending, timeout=40), tails(*processes)
    after_kills = [t for t in ledger.plans if t not in before_kills]
    changed_after = [t for t in before_kills if len(ledger.plans[t].statuses) > 1]
    result = audit(ledger, SlackView.read(slack))
    print(
        "\n"
        + result.line(
            "scaleout-failover",
            kills=2,
            tasks_created_after_kills=len(after_kills),
            failover_lease_s="/".join(f"{lease:.2f}" for lease, _ in measured),
            failover_first_poll_s="/".join(f"{poll:.2f}" for _, poll in measured),
        )
    )
    assert after_kills
    assert changed_after
    assert (result.lost, result.duplicates, result.unexpected, result.disorder) == (
        [],
        [],
        [],
        [],
    ), result.problems()
    assert result.strays == 0
    for lease, poll in measured:
        assert lease < FAILOVER_BOUND
        assert poll < FAILOVER_BOUND
    assert leader.alive(), tails(leader)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_restart_in_an_empty_directory_realerts_nothing(
    sim: DcsSimulator,
    slack: FakeSlack,
    drill_db: DrillDatabase,
    launch: Launcher,
    tmp_path: Path,
) -> None:
    """State lives in PostgreSQL, not the working directory: a new process elsewhere posts
    nothing for tasks already alerted, and carries on updating their messages."""
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first = launch(
        drill_env(sim, slack, token=TOKENS[0], database_url=drill_db.url),
        name="first",
        cwd=first_dir,
    )
    wait_for_leader(drill_db, sim, first)
    ledger = Ledger(sim, random.Random(3))
    run_script(ledger, slack_ready(ledger, slack), seconds=3)
    assert settle(ledger, slack, drill_db.pending, timeout=30), tails(first)
    assert first.terminate() == 0, tails(first)
    unfinished = ledger.open_plans()
    assert unfinished, "a restart without state would re-announce unfinished tasks"
    calls_before = len(slack.calls)

    second = launch(
        drill_env(sim, slack, token=TOKENS[1], database_url=drill_db.url),
        name="second",
        cwd=second_dir,
    )
    instances = len(sim.instance_ids())
    assert poll_until(lambda: task_requests(sim, token=second.token) >= 3 * instances, 20)
    time.sleep(INTERVAL)  # the third cycle's deliveries
    new_calls = slack.calls[calls_before:]

    ledger.advance(unfinished[0].task_id)
    assert settle(ledger, slack, drill_db.pending, timeout=20), tails(second)
    result = audit(ledger, SlackView.read(slack))
    print("\n" + result.line("scaleout-restart-empty-dir", calls_after_restart=len(new_calls)))
    assert new_calls == []
    assert (result.lost, result.duplicates, result.unexpected) == ([], [], []), result.problems()
    assert list(first_dir.iterdir()) == []
    assert list(second_dir.iterdir()) == []


@pytest.mark.postgres
@pytest.mark.slow
def test_deliveries_a_killed_leader_had_in_hand_go_out_once_and_in_order(
    sim: DcsSimulator, slack: FakeSlack, drill_db: DrillDatabase, launch: Launcher
) -> None:
    """kill -9 of the leader while it waits out a Slack rate limit with new alerts claimed:
    the standby sends them at once, before the updates that follow, each once."""
    env = {t: drill_env(sim, slack, token=t, database_url=drill_db.url) for t in TOKENS[:2]}
    a, b = launch(env[TOKENS[0]], name="a"), launch(env[TOKENS[1]], name="b")
    leader = wait_for_leader(drill_db, sim, a, b)
    standby = b if leader is a else a
    ledger = Ledger(sim, random.Random(4))
    slack.fail_next("chat.postMessage", status=429, retry_after=10)

    tasks = [ledger.create() for _ in range(3)]
    assert poll_until(lambda: len(slack.calls) > 0, 10), tails(leader)
    held = drill_db.pending()
    lease, poll = kill_and_measure(drill_db, sim, leader, standby)
    for task in tasks:
        ledger.advance(task)

    # Far within the 30 s claims the dead leader took: they were freed with its lease.
    assert settle(ledger, slack, drill_db.pending, timeout=20), tails(standby)
    result = audit(ledger, SlackView.read(slack))
    print(
        "\n"
        + result.line(
            "scaleout-kill-with-claims",
            kills=1,
            deliveries_in_hand=held,
            failover_lease_s=f"{lease:.2f}",
            failover_first_poll_s=f"{poll:.2f}",
        )
    )
    assert held >= 1, "the leader had nothing in hand when it was killed"
    assert (result.lost, result.duplicates, result.unexpected, result.disorder) == (
        [],
        [],
        [],
        [],
    ), result.problems()
    assert result.strays == 0
