"""``dcs-tasks-bot demo``: the whole pipeline on the built-in DCS simulator and a fake Slack,
each Slack message rendered in the terminal. No credentials, no network beyond loopback."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from bot.config import Settings, load_settings
from bot.console import render_to_console
from bot.dcs.models import Instance
from bot.pipeline.report import ScheduledReport
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from bot.wiring import Components, build
from state.base import Mute

DEMO_TOKEN = "demo-token"  # noqa: S105  # the simulator's own, not a secret
DEMO_SLACK_TOKEN = "xoxb-demo"  # noqa: S105  # the fake Slack's own
ALERT_CHANNEL = "C0DEMOALERTS"
EXTEND_DETAILS = {
    "old_capacity": "0.125",
    "new_capacity": "0.25",
    "old_resource_spec_code": "redis.single.xu1.tiny.125",
    "new_resource_spec_code": "redis.single.xu1.tiny.256",
    "old_cache_mode": "single",
    "new_cache_mode": "single",
}


@contextmanager
def demo_simulator(port: int = 0) -> Iterator[DcsSimulator]:
    """A started simulator with three instances and a little history (also ``simulate``)."""
    sim = DcsSimulator(project_id="demo-project", tokens=[DEMO_TOKEN])
    sim.start(port=port)
    try:
        prod = sim.add_instance("cache-prod", instance_id="5560df16-cebf-4473-95c4-d1b573c16e79")
        sim.add_instance("cache-staging", instance_id="7a1c2e3f-0000-4000-8000-00000000beef")
        sim.add_instance(
            "sessions", instance_id="9b8a7c6d-1111-4111-8111-000000000042", engine="Memcached"
        )
        past = datetime.now(UTC) - timedelta(hours=3)
        sim.add_task(
            prod, "AddWhitelist", "SUCCESS", details={"group_name": "office"}, created_at=past
        )
        sim.add_task(
            prod,
            "UpdatePort",
            "SUCCESS",
            details={"old_port": 6379, "new_port": 6380},
            created_at=past + timedelta(minutes=20),
        )
        yield sim
    finally:
        sim.stop()


def _history(sim: DcsSimulator, instance_id: str) -> None:
    """Resizes (about 4 minutes each) and replica additions (about 1 minute) of the last day:
    the first cycle records them silently, and the bot learns how long they usually take."""
    for n, took in enumerate((3.5, 4, 4, 3.8, 4, 4)):
        for name, scale in (("EXTEND", 1.0), ("AddReplica", 0.25)):
            created = datetime.now(UTC) - timedelta(hours=20 - 2 * n, minutes=len(name))
            task_id = sim.add_task(instance_id, name, "EXECUTING", created_at=created)
            end = created + timedelta(minutes=took * scale)
            sim.set_status(task_id, "SUCCESS", updated_at=end)


def run_demo(
    console: Console, *, pause: float = 0.6, sleep: Callable[[float], object] = time.sleep
) -> int:
    """Play the scripted story and render every Slack call, ``sleep(pause)`` after each step
    so a reader can follow; 0 when it ran through."""
    with (
        demo_simulator() as sim,
        FakeSlack(token=DEMO_SLACK_TOKEN) as slack,
        tempfile.TemporaryDirectory() as scratch,
    ):
        parts = build(demo_settings(sim, slack, Path(scratch)))
        try:
            story = _Story(console, parts, slack, lambda: sleep(pause))
            ids = {i.name: i.instance_id for i in sim_instances(parts)}
            _history(sim, ids["cache-prod"])
            for title, action in demo_script(sim, ids, parts):
                story.step(title, action)
        finally:
            parts.close()
        _summary(console, slack)
    return 0


def demo_settings(sim: DcsSimulator, slack: FakeSlack, scratch: Path) -> Settings:
    """The settings of a bot pointed at the demo's simulator and fake Slack."""
    return load_settings(
        {
            "DCS_ENDPOINT": sim.url,
            "DCS_PROJECT_ID": sim.project_id,
            "DCS_AUTH_TOKEN": DEMO_TOKEN,
            "SLACK_BOT_TOKEN": DEMO_SLACK_TOKEN,
            "SLACK_API_URL": slack.url,
            "DCS_ALERT_CHANNEL": ALERT_CHANNEL,
            "STATE_PATH": str(scratch / "demo.sqlite"),
            "DCS_DIGEST_THRESHOLD": "10",
            "DCS_STUCK_AFTER": "4m",  # the demo's minutes stand for a real deployment's hours
        }
    )


def demo_script(
    sim: DcsSimulator, ids: dict[str, str], parts: Components
) -> list[tuple[str, Callable[[], object]]]:
    """The story: each step's title and what it does (to the simulator, or as an operator
    would in Slack) before a cycle runs."""
    started: dict[str, str] = {}
    store = parts.store
    mutes: list[Mute] = []

    def mute_staging() -> None:
        now = datetime.now(UTC)
        reason = "failover test, OPS-42"
        mutes.append(
            store.add_mute(
                Mute(
                    0,
                    ids["cache-staging"],
                    now,
                    now + timedelta(hours=1),
                    reason=reason,
                    created_by="U0CAROL",
                    channel=ALERT_CHANNEL,
                )
            )
        )
        swap = sim.add_task(ids["cache-staging"], "masterStandbySwapJob", "EXECUTING")
        started["muted"] = swap

    def unmute_staging() -> None:
        store.end_mute(mutes[0].id, datetime.now(UTC), "U0CAROL")

    def hang_replica() -> None:
        sim.add_task(
            ids["cache-prod"],
            "AddReplica",
            "EXECUTING",
            details={"new_replica_num": 2, "old_replica_num": 1},
            user_name="alice",
            created_at=datetime.now(UTC) - timedelta(minutes=4, seconds=30),
        )

    def weekly_report() -> None:
        now = datetime.now(UTC)
        ScheduledReport(store, f"{now.minute} {now.hour} * * *", ALERT_CHANNEL).run()

    def announce_running() -> None:
        details = {"node_name": "node-2"}
        sim.add_task(ids["sessions"], "RemoveIpFromDns", "EXECUTING", details=details)

    def start_resize() -> None:
        started["resize"] = sim.add_task(
            ids["cache-prod"],
            "EXTEND",
            "EXECUTING",
            details=EXTEND_DETAILS,
            user_name="alice",
            created_at=datetime.now(UTC) - timedelta(minutes=4, seconds=12),
        )

    def start_swap() -> None:
        started["swap"] = sim.add_task(
            ids["cache-staging"],
            "masterStandbySwapJob",
            "EXECUTING",
            user_name="bob",
            created_at=datetime.now(UTC) - timedelta(seconds=95),
        )

    def burst() -> None:
        for n in range(12):
            sim.add_task(
                ids["sessions"],
                "AddWhitelist",
                "SUCCESS",
                details={"group_name": f"team-{n}"},
                user_name="automation",
            )

    return [
        (
            "First cycle: history is recorded silently, a running task is announced",
            announce_running,
        ),
        ("cache-prod is resized from 0.125 GB to 0.25 GB", start_resize),
        (
            "The resize succeeds: the message is edited, the thread records it",
            lambda: sim.set_status(started["resize"], "SUCCESS"),
        ),
        ("A master/standby switchover starts on cache-staging", start_swap),
        (
            "The switchover fails: the thread reply is broadcast to the channel",
            lambda: sim.set_status(started["swap"], "FAILED"),
        ),
        ("A burst of 12 whitelist edits: one digest instead of 12 messages", burst),
        (
            "/dcs-tasks mute cache-staging for:1h failover test, OPS-42 — a switchover starts: "
            "held back",
            mute_staging,
        ),
        (
            "The muted switchover fails: still held back",
            lambda: sim.set_status(started["muted"], "FAILED"),
        ),
        ("/dcs-tasks unmute cache-staging: one summary, the failure named", unmute_staging),
        (
            "A replica addition has run 4½ min, usually 1 (demo: DCS_STUCK_AFTER=4m): warned once",
            hang_replica,
        ),
        ("It is still running: the warning is not repeated", lambda: None),
        ("DCS_REPORT_SCHEDULE comes round: the week's report", weekly_report),
        ("A quiet cycle: nothing changed, nothing is posted", lambda: None),
    ]


def _summary(console: Console, slack: FakeSlack) -> None:
    """The closing line: how many Slack calls and messages the story made."""
    console.print(Rule("demo finished"))
    console.print(
        f"{len(slack.calls)} Slack API calls, "
        f"{len(slack.messages(ALERT_CHANNEL))} messages in {ALERT_CHANNEL}. "
        "Run `dcs-tasks-bot simulate` to poke the simulator yourself."
    )


def sim_instances(parts: Components) -> list[Instance]:
    """The watched instances as the bot resolves them."""
    return parts.watched.resolve(force=True)


class _Story:
    def __init__(
        self, console: Console, parts: Components, slack: FakeSlack, pause: Callable[[], object]
    ):
        self._console, self._parts, self._slack, self._pause = console, parts, slack, pause
        self._shown = 0

    def step(self, title: str, action: Callable[[], object]) -> None:
        self._console.print(Rule(title))
        action()
        self._parts.poller.run_cycle()
        assert self._parts.deliverer is not None
        self._parts.deliverer.drain()
        calls = self._slack.calls[self._shown :]
        self._shown = len(self._slack.calls)
        shown = 0
        for call in calls:
            if call.method not in ("chat.postMessage", "chat.update"):
                continue
            shown += 1
            params = call.params
            thread = params.get("thread_ts")
            render_to_console(
                self._console,
                channel=str(params.get("channel")),
                kind="update" if call.method == "chat.update" else ("reply" if thread else "post"),
                text=str(params.get("text", "")),
                blocks=_blocks(params.get("blocks")),
                thread_of=str(thread) if thread else None,
                broadcast=bool(params.get("reply_broadcast")),
            )
        if not shown:
            self._console.print("[dim](no Slack calls)[/dim]")
        self._pause()


def _blocks(value: object) -> list[dict[str, object]]:
    import json

    if isinstance(value, str):
        value = json.loads(value)
    return list(value) if isinstance(value, list) else []
