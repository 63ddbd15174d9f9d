"""Usual durations and stuck tasks in the poll cycle, over loopback on an injected clock; and
stuck ages on DCS's clock when the bot's is skewed from it (real clocks, a simulator set off)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.pipeline.stuck import Running, is_stuck
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from state.base import DurationStats, Mute
from tests.bot.pipeline.conftest import PROD, ClockedBot
from tests.conftest import Harness


def finish_tasks(bot: ClockedBot, name: str, minutes: list[int]) -> None:
    """Tasks of ``name`` that started and finished after the given minutes, seen by a cycle
    while running and again once finished (so the bot learns their durations)."""
    started = bot.clock() - timedelta(minutes=max(minutes) + 1)
    ids = [bot.sim.add_task(PROD, name, "EXECUTING", created_at=started) for _ in minutes]
    bot.cycle()
    for task_id, took in zip(ids, minutes, strict=True):
        bot.sim.set_status(task_id, "SUCCESS", updated_at=started + timedelta(minutes=took))
    bot.cycle()
    bot.forget()


def test_a_transition_reply_names_the_usual_duration_from_five_samples(
    clocked: ClockedBot,
) -> None:
    """With 5 finished EXTENDs of about 4 minutes, the next one's reply says "(usually 4m)"."""
    finish_tasks(clocked, "EXTEND", [3, 4, 4, 4, 5])
    task = clocked.sim.add_task(PROD, "EXTEND", "EXECUTING")
    clocked.cycle()
    clocked.clock.advance(minutes=12, seconds=4)
    clocked.sim.set_status(task, "SUCCESS")
    clocked.cycle()
    [reply] = clocked.replies()
    assert "EXECUTING → SUCCESS after 12m 4s (usually 4m)" in reply["text"]


def test_fewer_than_five_samples_name_no_usual_duration(clocked: ClockedBot) -> None:
    """Four samples are not enough to say what is usual."""
    finish_tasks(clocked, "EXTEND", [4, 4, 4, 4])
    task = clocked.sim.add_task(PROD, "EXTEND", "EXECUTING")
    clocked.cycle()
    clocked.clock.advance(minutes=2)
    clocked.sim.set_status(task, "SUCCESS")
    clocked.cycle()
    [reply] = clocked.replies()
    assert "after 2m" in reply["text"]
    assert "usually" not in reply["text"]


def test_a_stuck_task_is_warned_once_even_across_a_restart(clocked: ClockedBot) -> None:
    """Past DCS_STUCK_AFTER (30m) a running task gets one broadcast reply in its thread; later
    cycles and a restart of the bot do not repeat it."""
    clocked.sim.add_task(PROD, "BindEip", "EXECUTING")
    clocked.cycle()
    clocked.clock.advance(minutes=29)
    clocked.cycle()
    assert clocked.replies() == []

    clocked.clock.advance(minutes=2)
    clocked.cycle()
    [warning] = clocked.replies()
    assert warning["reply_broadcast"] in (True, "true", "1", 1)
    assert "Enabling public access still EXECUTING after 31m" in warning["text"]
    assert (
        warning["thread_ts"] == clocked.slack.messages(clocked.settings.alert_channel or "")[0].ts
    )

    clocked.clock.advance(minutes=30)
    clocked.cycle()
    clocked.restart()
    clocked.clock.advance(minutes=30)
    clocked.cycle()
    assert len(clocked.replies()) == 1


def test_a_kind_with_a_known_p95_is_stuck_only_past_three_times_it(clocked: ClockedBot) -> None:
    """EXTEND usually takes up to 20m: at 35m it is not stuck yet; past 60m it is, and the
    warning names the usual duration with its sample count."""
    finish_tasks(clocked, "EXTEND", [20, 20, 20, 20, 20])
    clocked.sim.add_task(PROD, "EXTEND", "EXECUTING")
    clocked.cycle()
    clocked.clock.advance(minutes=35)
    clocked.cycle()
    assert clocked.replies() == []
    clocked.clock.advance(minutes=26)
    clocked.cycle()
    [warning] = clocked.replies()
    assert "still EXECUTING after 1h 1m, usually 20m (p95 of 5)" in warning["text"]


def test_a_muted_stuck_task_is_warned_after_the_mute(clocked: ClockedBot) -> None:
    """A mute also holds back the stuck warning, which comes once the mute is over."""
    now = clocked.clock()
    clocked.parts.store.add_mute(Mute(0, "*", now, now + timedelta(hours=2), created_by="U1"))
    clocked.sim.add_task(PROD, "BindEip", "EXECUTING")
    clocked.cycle()
    clocked.clock.advance(minutes=90)
    clocked.cycle()
    assert clocked.slack_calls() == []
    clocked.clock.advance(minutes=31)
    clocked.cycle()
    assert any("still EXECUTING after 2h 1m" in c.params["text"] for c in clocked.slack_calls())


def test_is_stuck_table() -> None:
    """The rule: at least DCS_STUCK_AFTER, and more than 3x the p95 once 5 samples exist."""
    after = timedelta(minutes=30)
    run = Running.__new__(Running)

    def running(minutes: float) -> Running:
        object.__setattr__(run, "seconds", minutes * 60)
        return run

    assert not is_stuck(running(29), None, after)
    assert is_stuck(running(30), None, after)
    assert is_stuck(running(31), DurationStats(4, 60, 3600), after)  # too few samples
    assert not is_stuck(running(59), DurationStats(5, 60, 1200), after)
    assert is_stuck(running(60), DurationStats(5, 60, 1200), after)
    assert is_stuck(running(30), DurationStats(50, 60, 120), after)


def skewed_warnings(
    simulator: DcsSimulator, slack: FakeSlack, state: Path, *, skew: int, age: int
) -> list[str]:
    """The stuck warnings a bot on the real clock sends (DCS_STUCK_AFTER=15m) for a task
    ``age`` minutes old by DCS's clock, DCS's clock being ``skew`` minutes off the bot's."""
    simulator.clock = lambda: datetime.now(UTC) + timedelta(minutes=skew)
    simulator.add_instance("cache-prod", instance_id=PROD)
    created = simulator.clock() - timedelta(minutes=age)
    simulator.add_task(PROD, "BindEip", "EXECUTING", created_at=created)
    bot = Harness(simulator, slack, state, DCS_STUCK_AFTER="15m")
    try:
        bot.cycle()
        bot.cycle()
    finally:
        bot.close()
    texts = [c.params["text"] for c in bot.slack_calls("chat.postMessage")]
    return [t for t in texts if "still EXECUTING" in t]


@pytest.mark.parametrize("skew", [-20, 20])
def test_a_task_10_minutes_old_in_dcs_time_is_not_stuck_whatever_the_skew(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path, skew: int
) -> None:
    """Issue 12: with the bot's clock 20 minutes ahead of DCS's (or behind it), a task DCS
    created 10 minutes ago is not stuck after 15 minutes: its age is read on DCS's clock
    (learned from the Date header of DCS's answers), not the bot's."""
    assert skewed_warnings(simulator, slack, tmp_path / "s.sqlite", skew=skew, age=10) == []


@pytest.mark.parametrize("skew", [-20, 20])
def test_a_task_really_stuck_in_dcs_time_is_warned_whatever_the_skew(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path, skew: int
) -> None:
    """A task DCS created 16 minutes ago is stuck after 15 minutes, on time, with its age on
    DCS's clock, also when the bot's clock is 20 minutes behind DCS's."""
    [warning] = skewed_warnings(simulator, slack, tmp_path / "s.sqlite", skew=skew, age=16)
    assert re.search(r"still EXECUTING after (16m|15m 5\ds)$", warning)  # Date has whole seconds


@pytest.mark.parametrize("skew", [-20, 20])
def test_an_alert_counts_running_time_on_dcs_clock(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path, skew: int
) -> None:
    """The announcement of a task DCS created 10 minutes ago says it has run for 10 minutes,
    not 30 (bot ahead) or none (bot behind)."""
    simulator.clock = lambda: datetime.now(UTC) + timedelta(minutes=skew)
    simulator.add_instance("cache-prod", instance_id=PROD)
    created = simulator.clock() - timedelta(minutes=10)
    simulator.add_task(PROD, "BindEip", "EXECUTING", created_at=created)
    bot = Harness(simulator, slack, tmp_path / "s.sqlite")
    try:
        bot.cycle()
    finally:
        bot.close()
    [post] = bot.slack_calls("chat.postMessage")
    assert re.search(r"Running for (10m|9m 5\ds)\b", json.dumps(post.params["blocks"]))
