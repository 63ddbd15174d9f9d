"""``dcs-tasks-bot check``: validate the configuration, reach DCS and Slack; a line per check."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.dcs.errors import DcsError
from bot.slack.deliver import make_web_client
from bot.wiring import dcs_client, open_state
from state.base import StateError

AUTH_NAMES = {"aksk": "AK/SK signing", "iam": "IAM password token", "token": "DCS_AUTH_TOKEN"}


class _Report:
    def __init__(self, out: Callable[[str], object]) -> None:
        self.out = out
        self.failed = 0

    def ok(self, what: str) -> None:
        self.out(f"ok    {what}")

    def fail(self, what: str) -> None:
        self.failed += 1
        self.out(f"FAIL  {what}")

    def skip(self, what: str) -> None:
        self.out(f"skip  {what}")


def run_checks(settings: Settings, out: Callable[[str], object]) -> int:
    """Run every check and print one line each; 0 when all passed, else 1."""
    report = _Report(out)
    problems = settings.problems_for("check")
    if problems:
        for problem in problems:
            report.fail(f"configuration: {problem}")
    else:
        report.ok("configuration")
    _check_state(settings, report)
    _check_dcs(settings, report)
    _check_slack(settings, report)
    return 1 if report.failed else 0


def _check_state(settings: Settings, report: _Report) -> None:
    """Open the state store, read what a poll cycle reads, and write one meta value."""
    path = settings.state_path
    if settings.database_url is None and not path.exists():
        # Not created by a check: only show that it can be.
        try:
            with tempfile.TemporaryFile(dir=path.parent):
                pass
        except OSError as exc:
            report.fail(f"state: STATE_PATH={path} cannot be created: {exc.strerror or exc}")
            return
        report.ok(f"state: STATE_PATH={path} will be created")
        return
    try:
        store = open_state(settings)
    except StateError as exc:
        report.fail(f"state: {exc}")
        return
    try:
        store.ping()
        cursors = store.cursors()
        store.open_tasks(list(cursors))
        pending = store.count_pending()
        store.set_meta("last_check_at", datetime.now(UTC).isoformat())
    except StateError as exc:
        report.fail(f"state: {exc}")
        return
    finally:
        with contextlib.suppress(StateError):
            store.close()
    report.ok(f"state: {store!r} readable and writable; {pending} deliveries pending")


def _check_dcs(settings: Settings, report: _Report) -> None:
    mode = settings.dcs_auth_mode
    if mode is None:
        report.fail(
            "DCS credentials: none set (DCS_ACCESS_KEY/DCS_SECRET_KEY, OS_*, DCS_AUTH_TOKEN)"
        )
        return
    report.ok(f"DCS credentials: {AUTH_NAMES[mode]}")
    if not settings.projects:
        report.skip("DCS reachable: DCS_ENDPOINT and DCS_PROJECT_ID (or DCS_PROJECTS) are needed")
        return
    http, dcs = dcs_client(settings)
    with http:
        try:
            instances = dcs.list_instances()
        except DcsError:
            instances = []
        failures = dcs.failures
        several = len(dcs.projects) > 1
        for project in dcs.projects:
            label = dcs.label(project)
            where = f"project {project.project_id}" + (f" ({label})" if several else "")
            if label in failures:
                report.fail(f"DCS reachable: {where + ': ' if several else ''}{failures[label]}")
                continue
            count = sum(1 for i in instances if i.project_id in (None, project.project_id))
            report.ok(f"DCS reachable: {count} instances in {where}")
        if failures:
            return
        try:
            watched = dcs.resolve_instances(settings.instances)
        except DcsError as exc:
            report.fail(f"DCS_INSTANCES: {exc}")
            return
        names = ", ".join(i.label for i in watched[:10]) + (" ..." if len(watched) > 10 else "")
        report.ok(f"watched instances: {len(watched)} ({names or 'none'})")


def _check_slack(settings: Settings, report: _Report) -> None:
    if settings.slack_bot_token is None:
        report.skip("Slack: SLACK_BOT_TOKEN is not set")
        return
    client = make_web_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
    try:
        auth = client.auth_test()
    except SlackApiError as exc:
        report.fail(f"Slack auth.test: {exc.response.get('error', 'failed')}")
        return
    except OSError as exc:
        report.fail(f"Slack auth.test: cannot reach {settings.slack_api_url} ({exc})")
        return
    report.ok(f"Slack auth.test: bot {auth.get('user')} in team {auth.get('team')}")
    channel = settings.alert_channel
    if not channel:
        report.skip("Slack channel: DCS_ALERT_CHANNEL is not set")
        return
    try:
        info = client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = exc.response.get("error", "failed")
        if error == "missing_scope":
            report.skip(f"Slack channel {channel}: cannot look it up without channels:read")
        else:
            report.fail(f"Slack channel {channel}: {error}")
        return
    except OSError as exc:
        report.fail(f"Slack channel {channel}: {exc}")
        return
    conversation = info.get("channel") or {}
    if conversation.get("is_member") or conversation.get("is_im"):
        report.ok(f"Slack channel {channel}: the bot is a member and can post")
    else:
        report.fail(f"Slack channel {channel}: invite the bot first (/invite @dcs-tasks-bot)")
