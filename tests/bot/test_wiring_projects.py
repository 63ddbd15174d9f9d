"""Two projects on two simulator endpoints in one bot (bot.wiring with DCS_PROJECTS): AK/SK
signs for both, IAM tokens are fetched per project scope, and one failing project never stops
the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from bot.wiring import handler_deps
from handlers.commands import mutes
from handlers.commands.parse import MuteAlerts, Unmute, parse
from state.base import Subscription
from tests.conftest import Harness

AK, SK = "AKPROJECTS0123456789", "sk-projects-secret-0123456789"
PROD = "11111111-1111-4111-8111-111111111111"
DR = "22222222-2222-4222-8222-222222222222"


@pytest.fixture
def two_sims() -> Iterator[tuple[DcsSimulator, DcsSimulator]]:
    """Project p-de and project p-nl, each on its own endpoint, both with an instance named
    cache (so that only the region tells them apart)."""
    de = DcsSimulator(project_id="p-de", access_key=AK, secret_key=SK, iam_users={"ops": "pw"})
    nl = DcsSimulator(project_id="p-nl", access_key=AK, secret_key=SK, iam=de)
    de.iam_projects.add("p-nl")
    for sim in (de, nl):
        sim.start()
    de.add_instance("cache", instance_id=PROD)
    nl.add_instance("cache", instance_id=DR)
    yield de, nl
    for sim in (de, nl):
        sim.stop()


def _harness(
    sims: tuple[DcsSimulator, DcsSimulator], slack: FakeSlack, state: Path, **auth: str
) -> Harness:
    de, nl = sims
    projects = f"{de.project_id}@{de.url},{nl.project_id}@{nl.url}"
    # DCS_AUTH_TOKEN from the shared environment is the lowest precedence: auth picks the mode.
    return Harness(de, slack, state, DCS_PROJECTS=projects, DCS_ENDPOINT="", **auth)


AKSK = {"DCS_ACCESS_KEY": AK, "DCS_SECRET_KEY": SK}
IAM = {"OS_USERNAME": "ops", "OS_PASSWORD": "pw", "OS_USER_DOMAIN_NAME": "dom"}


@pytest.mark.parametrize("mode", ["aksk", "iam"])
def test_one_bot_alerts_for_both_projects_with_the_region_beside_the_name(
    two_sims: tuple[DcsSimulator, DcsSimulator], slack: FakeSlack, tmp_path: Path, mode: str
) -> None:
    """Both projects' new tasks are alerted, each instance shown as ``name (where)``."""
    de, nl = two_sims
    auth = AKSK if mode == "aksk" else {**IAM, "OS_AUTH_URL": de.auth_url}
    h = _harness(two_sims, slack, tmp_path / "s.sqlite", **auth)
    try:
        assert h.cycle().ok
        de.add_task(PROD, "EXTEND", "EXECUTING")
        nl.add_task(DR, "BindEip", "EXECUTING")
        result = h.cycle()
        assert result.ok, result.errors
        texts = sorted(c.params["text"] for c in h.slack_calls("chat.postMessage"))
        assert len(texts) == 2
        assert any("cache (127.0.0.1" in t for t in texts)
        signed = [r for r in nl.requests if r.path.endswith("/tasks")]
        assert signed
        header = "authorization" if mode == "aksk" else "x-auth-token"
        assert all(header in r.headers for r in signed)
    finally:
        h.close()


def test_iam_tokens_are_scoped_per_project(
    two_sims: tuple[DcsSimulator, DcsSimulator], slack: FakeSlack, tmp_path: Path
) -> None:
    """Each project gets a token scoped to itself: the second project never sees the first's."""
    de, nl = two_sims
    h = _harness(two_sims, slack, tmp_path / "s.sqlite", **IAM, OS_AUTH_URL=de.auth_url)
    try:
        assert h.cycle().ok
        de_tokens = {r.headers["x-auth-token"] for r in de.requests if "x-auth-token" in r.headers}
        nl_tokens = {r.headers["x-auth-token"] for r in nl.requests if "x-auth-token" in r.headers}
        assert de_tokens
        assert nl_tokens
        assert not de_tokens & nl_tokens
    finally:
        h.close()


def test_a_failing_project_never_stops_the_other(
    two_sims: tuple[DcsSimulator, DcsSimulator], slack: FakeSlack, tmp_path: Path
) -> None:
    """The project whose credentials are refused fails the cycle (named in the error), while
    the other project's tasks are still alerted and committed."""
    de, nl = two_sims
    h = _harness(two_sims, slack, tmp_path / "s.sqlite", **AKSK)
    try:
        assert h.cycle().ok
        nl._secret_key = "another-secret"  # the second region now refuses our signature
        de.add_task(PROD, "EXTEND", "EXECUTING")
        result = h.cycle()
        assert not result.ok
        assert [c.params["text"] for c in h.slack_calls("chat.postMessage")]
        error = h.parts.store.get_meta("last_error")
        assert "cache (127.0.0.1" in error["message"]
        assert "401" in error["message"]
    finally:
        h.close()


def test_a_project_down_from_the_start_is_reported_and_the_other_polled(
    two_sims: tuple[DcsSimulator, DcsSimulator], slack: FakeSlack, tmp_path: Path
) -> None:
    """When one project's instance list cannot be read at all, the cycle names that project
    and still alerts the other project's tasks."""
    de, nl = two_sims
    nl._secret_key = "another-secret"
    de.add_task(PROD, "EXTEND", "EXECUTING")
    h = _harness(two_sims, slack, tmp_path / "s.sqlite", **AKSK)
    try:
        result = h.cycle()
        assert result.instances == 1
        assert any(k.startswith("project ") for k in result.errors)
        assert len(h.slack_calls("chat.postMessage")) == 1
    finally:
        h.close()


def test_a_region_subscription_gets_only_that_regions_alerts(
    two_sims: tuple[DcsSimulator, DcsSimulator], slack: FakeSlack, tmp_path: Path
) -> None:
    """``subscribe`` by region or project ID routes only that project's alerts there."""
    de, nl = two_sims
    h = _harness(two_sims, slack, tmp_path / "s.sqlite", **AKSK)
    try:
        assert h.cycle().ok
        where = next(i for i in h.parts.watched.current() if i.instance_id == DR).region
        h.parts.store.add_subscription(Subscription("C0NL", f"region:{where}"))
        h.parts.store.add_subscription(Subscription("C0DE", "p-de"))
        de.add_task(PROD, "EXTEND", "EXECUTING")
        nl.add_task(DR, "BindEip", "EXECUTING")
        h.cycle()
        by_channel: dict[str, list[str]] = {}
        for call in h.slack_calls("chat.postMessage"):
            by_channel.setdefault(call.params["channel"], []).append(call.params["text"])
        assert len(by_channel["C0NL"]) == 1
        assert len(by_channel["C0DE"]) == 1
        assert by_channel["C0NL"] != by_channel["C0DE"]
    finally:
        h.close()


def test_a_region_mute_holds_only_that_regions_alerts_until_unmuted(
    two_sims: tuple[DcsSimulator, DcsSimulator], slack: FakeSlack, tmp_path: Path
) -> None:
    """``mute region:R`` (resolved by the command against the watched places) holds back the
    alerts of that region alone; ``unmute region:R`` ends it and its summary follows."""
    de, nl = two_sims
    h = _harness(two_sims, slack, tmp_path / "s.sqlite", **AKSK)
    try:
        assert h.cycle().ok
        deps = handler_deps(h.parts)
        where = next(i for i in h.parts.watched.current() if i.instance_id == DR).region
        command = parse(f"mute region:{where} for:2h failover drill")
        assert isinstance(command, MuteAlerts)
        announced = mutes.mute(deps, command, user_id="U0OPS", channel_id="C0OPS")
        assert f"every instance in {where}" in announced.text
        de.add_task(PROD, "EXTEND", "EXECUTING")
        nl.add_task(DR, "BindEip", "FAILED")
        h.cycle()
        posted = [c.params["text"] for c in h.slack_calls("chat.postMessage")]
        assert len(posted) == 1  # the other region's task only
        assert "Modifying specifications" in posted[0]

        ended = parse(f"unmute region:{where}")
        assert isinstance(ended, Unmute)
        assert "ended mute" in mutes.unmute(deps, ended, user_id="U0OPS").text
        h.cycle()
        summary = [c.params["text"] for c in h.slack_calls("chat.postMessage")][1:]
        assert len(summary) == 1
        assert "FAILED" in summary[0]
    finally:
        h.close()
