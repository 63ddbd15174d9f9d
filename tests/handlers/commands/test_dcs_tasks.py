"""Tests for handlers.commands.dcs_tasks: every subcommand of /dcs-tasks over real, signed HTTP,
answered ephemerally through the response_url, plus wrong input, DCS failures and access rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import __version__
from bot.slack.channels import FAILING_KEY
from bot.slack.render import task_label
from handlers.commands.dcs_tasks import answer
from state.base import CycleCommit, InstanceCursor, Subscription, TaskRecord
from tests.handlers.conftest import (
    ATTEMPTS,
    CHANNEL,
    PROD_ID,
    STAGE_ID,
    USER,
    SlackStack,
    reply_text,
)

PASSWORD = "Sup3r-S3cret-pw!"  # a task's params: must never reach a reply


def blocks_text(payload: dict[str, Any]) -> str:
    """The mrkdwn/plain text of every block of a reply, joined by newlines."""
    out = []
    for block in payload.get("blocks", []):
        if "text" in block:
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e["text"] for e in block.get("elements", []) if "text" in e]
    return "\n".join(out)


def assert_within_slack_limits(payload: dict[str, Any]) -> None:
    """At most 50 blocks, at most 3000 characters in any section text, a text fallback."""
    assert payload["text"]
    assert len(payload["blocks"]) <= 50
    for block in payload["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000


def remember(stack: SlackStack, instance_id: str, task_id: str, **task: Any) -> None:
    """Store a task record as the poller would (the DCS object without params)."""
    created = datetime.now(UTC) - timedelta(hours=1)
    body = {"id": task_id, "name": "EXTEND", "status": "SUCCESS", **task}
    record = TaskRecord(
        instance_id=instance_id,
        task_id=task_id,
        name=body["name"],
        status=body["status"],
        created_at=created,
        updated_at=created,
        first_seen_at=created,
        task=body,
    )
    stack.store.commit_cycle(CycleCommit(tasks=[record]))


# --- help and wrong input ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "help", "  HELP  "])
def test_help_shows_usage_with_examples(stack: SlackStack, text: str) -> None:
    """help (and the empty command) answers ephemerally with every subcommand and examples."""
    reply = stack.command(text)
    assert reply["response_type"] == "ephemeral"
    shown = blocks_text(reply)
    for sub in ("list", "show", "instances", "status", "subscribe", "unsubscribe", "subscriptions"):
        assert f"/dcs-tasks {sub}" in shown
    assert "/dcs-tasks cache-prod status:FAILED since:7d" in shown


@pytest.mark.parametrize(
    ("text", "reason", "usage"),
    [
        ("list since:soon", "since: must be a duration", "/dcs-tasks list [INSTANCE]"),
        ("list limit:-1", "limit: must be a whole number", "/dcs-tasks list [INSTANCE]"),
        ("list a b", "give one INSTANCE at most", "/dcs-tasks list [INSTANCE]"),
        ("list colour:red", "unknown option `colour:red`", "/dcs-tasks list [INSTANCE]"),
        ("show", "give exactly one TASK_ID", "/dcs-tasks show TASK_ID"),
        (
            "subscribe",
            "give exactly one INSTANCE",
            "/dcs-tasks subscribe INSTANCE|region:R|PROJECT_ID|*",
        ),
        ("instances now", "takes no arguments", "/dcs-tasks instances"),
        ("frobnicate the cache", "unknown command `frobnicate`", "/dcs-tasks subscriptions"),
    ],
)
def test_wrong_input_gets_one_line_reason_and_usage(
    stack: SlackStack, text: str, reason: str, usage: str
) -> None:
    """Wrong input is answered with one line saying what is wrong, then the usage."""
    reply = stack.command(text)
    first, second = (block["text"]["text"] for block in reply["blocks"][:2])
    assert reason in first
    assert "\n" not in first
    assert usage in second
    assert reply["response_type"] == "ephemeral"


@pytest.mark.parametrize("text", ["<script>", "list &amp; <@U1>", "show `x`\n\t", "ünïcödé ✓ 🚀"])
def test_odd_text_is_answered_safely(stack: SlackStack, text: str) -> None:
    """Odd text gets an answer whose echo of the input is escaped (no raw <, > or &)."""
    reply = stack.command(text)
    assert_within_slack_limits(reply)
    assert "<script>" not in reply_text(reply)
    assert "<@U1>" not in reply_text(reply)


# --- list --------------------------------------------------------------------------------------


def test_list_shows_recent_tasks_of_every_watched_instance(stack: SlackStack) -> None:
    """list without an instance shows the recent tasks of all watched instances, newest first."""
    now = datetime.now(UTC)
    stack.sim.add_task(PROD_ID, "EXTEND", "SUCCESS", created_at=now - timedelta(hours=2))
    stack.sim.add_task(STAGE_ID, "BindEip", "FAILED", created_at=now - timedelta(hours=1))
    stack.sim.add_task(PROD_ID, "AddReplica", "SUCCESS", created_at=now - timedelta(days=3))
    reply = stack.command("list")
    shown = blocks_text(reply)
    assert "2 DCS tasks on all watched instances in the last 24h" in shown
    assert shown.index("Enabling public access") < shown.index("Modifying specifications")
    assert "cache-stage" in shown
    assert "cache-prod" in shown
    assert task_label("AddReplica") not in shown  # older than since:24h


@pytest.mark.parametrize("text", ["cache-prod", "list cache-prod", "list CACHE-PROD", PROD_ID])
def test_list_one_instance_by_name_or_id(stack: SlackStack, text: str) -> None:
    """An instance is named by name (any case) or ID, with or without ``list``."""
    stack.sim.add_task(PROD_ID, "EXTEND", "SUCCESS")
    stack.sim.add_task(STAGE_ID, "BindEip", "FAILED")
    shown = blocks_text(stack.command(text))
    assert "1 DCS task on *cache-prod*" in shown
    assert "Enabling public access" not in shown


def test_list_filters_by_status_name_and_since(stack: SlackStack) -> None:
    """status:, name: and since: narrow the list."""
    now = datetime.now(UTC)
    stack.sim.add_task(PROD_ID, "EXTEND", "FAILED", created_at=now - timedelta(days=2))
    stack.sim.add_task(PROD_ID, "EXTEND", "SUCCESS", created_at=now - timedelta(days=2))
    stack.sim.add_task(PROD_ID, "BindEip", "FAILED", created_at=now - timedelta(days=2))
    shown = blocks_text(stack.command("list status:failed name:extend since:7d"))
    assert "1 DCS task on all watched instances in the last 7d · status FAILED · name extend" in (
        shown
    )
    assert "Modifying specifications* FAILED" in shown


def test_list_of_unknown_instance_names_the_watched_ones(stack: SlackStack) -> None:
    """A name that is no watched instance is answered with the watched ones."""
    shown = blocks_text(stack.command("list cache-nope"))
    assert "No watched instance is called `cache-nope`" in shown
    assert "cache-prod, cache-stage" in shown


def test_long_list_stays_within_limits_and_says_how_many_more(stack: SlackStack) -> None:
    """A long list fits Slack's limits and ends "and N more — narrow it with since:/status:"."""
    stack.sim.add_tasks_bulk(PROD_ID, 130, step=timedelta(seconds=30))
    reply = stack.command("list limit:0")
    assert_within_slack_limits(reply)
    shown = blocks_text(reply)
    assert "130 DCS tasks" in shown
    assert "and 80 more — narrow it with since:/status:" in shown

    limited = blocks_text(stack.command("list limit:5"))
    assert "and 125 more — narrow it with since:/status:" in limited


def test_list_with_nothing_found_says_how_to_widen(stack: SlackStack) -> None:
    """An empty result says so and suggests since:."""
    shown = blocks_text(stack.command("list"))
    assert "0 DCS tasks" in shown
    assert "since:" in shown


# --- show --------------------------------------------------------------------------------------


def test_show_a_remembered_task_reads_it_fresh_from_dcs(stack: SlackStack) -> None:
    """show finds the instance from the store and shows DCS's current state with every detail."""
    task_id = stack.sim.add_task(
        PROD_ID,
        "EXTEND",
        "EXECUTING",
        details={"old_capacity": "0.125", "new_capacity": "0.25"},
        params=PASSWORD,
    )
    remember(stack, PROD_ID, task_id, status="EXECUTING")
    stack.sim.set_status(task_id, "SUCCESS")
    reply = stack.command(f"show {task_id}")
    shown = blocks_text(reply)
    assert task_id in shown
    assert "SUCCESS" in shown
    assert "0.125 → 0.25 GB" in shown
    assert "cache-prod" in shown
    assert PASSWORD not in reply_text(reply)
    assert "last saw" not in shown


def test_show_searches_the_watched_instances_for_an_unknown_task(stack: SlackStack) -> None:
    """A task the bot never saw is found by searching every watched instance."""
    task_id = stack.sim.add_task(STAGE_ID, "UpdatePort", "SUCCESS", details={"new_port": 6380})
    shown = blocks_text(stack.command(f"show {task_id}"))
    assert "Changing the port" in shown
    assert "cache-stage" in shown


def test_show_a_task_dcs_forgot_uses_the_last_record(stack: SlackStack) -> None:
    """A remembered task DCS no longer lists is shown as last seen, and says so."""
    remember(stack, PROD_ID, "feedfacefeedface", name="BindEip", status="FAILED")
    shown = blocks_text(stack.command("show feedfacefeedface"))
    assert "Enabling public access" in shown
    assert "As the bot last saw it. DCS no longer lists it." in shown


def test_show_an_unknown_task_says_it_was_not_found(stack: SlackStack) -> None:
    """An ID found nowhere is answered with "No task"."""
    shown = blocks_text(stack.command("show 0123456789abcdef"))
    assert "No task `0123456789abcdef`" in shown


# --- instances and status ----------------------------------------------------------------------


def test_instances_shows_live_status_and_last_poll(stack: SlackStack) -> None:
    """instances lists the watched instances with their status from DCS and their last poll."""
    stack.command("list")  # the wiring's cache now holds the instances
    stack.sim.set_instance_status(PROD_ID, "EXTENDING")
    polled = datetime.now(UTC) - timedelta(minutes=3)
    stack.store.commit_cycle(
        CycleCommit(
            cursors=[
                InstanceCursor(PROD_ID, "cache-prod", baselined=True, last_polled_at=polled),
                InstanceCursor(
                    STAGE_ID, "cache-stage", True, last_polled_at=polled, last_error="HTTP 503"
                ),
            ]
        )
    )
    shown = blocks_text(stack.command("instances"))
    assert "2 watched instances" in shown
    assert "EXTENDING" in shown
    assert "RESTARTING" in shown
    assert "Last poll: 3m" in shown
    assert "HTTP 503" in shown


def test_instances_falls_back_to_cached_status_when_dcs_fails(stack: SlackStack) -> None:
    """When DCS cannot list instances, the cached list is shown with a note naming the failure."""
    stack.command("list")
    stack.sim.inject("500", count=ATTEMPTS, path_contains="/instances")
    shown = blocks_text(stack.command("instances"))
    assert "cache-prod" in shown
    assert "DCS is not answering right now (HTTP 500, DCS.5000" in shown


def test_status_reports_health_and_version(stack: SlackStack) -> None:
    """status shows the same facts as /healthz plus the version."""
    stack.store.set_meta("last_success_at", datetime.now(UTC).isoformat())
    stack.store.set_meta("last_error", {"at": "2024-01-01T00:00:00+00:00", "message": "boom"})
    shown = blocks_text(stack.command("status"))
    assert "Healthy" in shown
    assert __version__ in shown
    assert "boom" in shown
    assert "*Pending deliveries*\n0" in shown
    assert "60s" in shown


def test_status_says_when_polls_are_late(stack: SlackStack) -> None:
    """status says polls are late once the last success is older than three intervals."""
    old = datetime.now(UTC) - timedelta(hours=1)
    stack.store.set_meta("last_success_at", old.isoformat())
    stack.started_at = old
    stack.configure()
    assert "Polls are late" in blocks_text(stack.command("status"))


# --- subscriptions -----------------------------------------------------------------------------


def test_subscribe_list_and_unsubscribe(stack: SlackStack) -> None:
    """subscribe stores a subscription for this channel; subscriptions lists it; unsubscribe
    removes it, by name or ID."""
    shown = blocks_text(stack.command("subscribe cache-prod status:failed,success name:EXTEND"))
    assert (
        "This channel now gets alerts for *cache-prod* (status FAILED, SUCCESS; name EXTEND)"
        in (shown)
    )
    assert stack.store.subscriptions(CHANNEL) == [
        Subscription(CHANNEL, PROD_ID, ("FAILED", "SUCCESS"), ("EXTEND",), created_by=USER)
    ]
    stack.command("subscribe *")
    listed = blocks_text(stack.command("subscriptions"))
    assert "*cache-prod*: status FAILED, SUCCESS; name EXTEND" in listed
    assert "*every instance*: every task" in listed
    assert "Every alert also goes to <#C0ALERTS>" in listed

    assert "no longer gets alerts for *cache-prod*" in blocks_text(
        stack.command("unsubscribe CACHE-PROD")
    )
    assert [s.instance for s in stack.store.subscriptions(CHANNEL)] == ["*"]
    assert "had no subscription" in blocks_text(stack.command(f"unsubscribe {PROD_ID}"))


def test_subscribe_posts_a_visible_confirmation_saying_who_and_what(stack: SlackStack) -> None:
    """subscribe posts in the channel who subscribed it to what, and that every alert also
    goes to the alert channel."""
    stack.command("subscribe cache-prod status:FAILED")
    (posted,) = stack.slack.messages(CHANNEL)
    assert posted.text is not None
    assert f"<@{USER}> subscribed this channel to DCS task alerts for cache-prod" in posted.text
    assert "status FAILED" in posted.text
    assert "Every alert also goes to <#C0ALERTS>" in json.dumps(posted.blocks)


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        ("not_in_channel", "Invite it first"),
        ("channel_not_found", "Add the app to the channel"),
        ("is_archived", "This channel is archived"),
    ],
)
def test_subscribe_where_the_bot_cannot_post_is_refused_and_stores_nothing(
    stack: SlackStack, error: str, fix: str
) -> None:
    """Not invited, unknown or archived: subscribe says how to fix it and stores nothing."""
    stack.slack.refuse_channel(CHANNEL, error)
    shown = blocks_text(stack.command("subscribe *"))
    assert "Not subscribed." in shown
    assert fix in shown
    assert "Nothing was stored." in shown
    assert stack.store.subscriptions() == []
    assert stack.slack.messages(CHANNEL) == []


def test_subscribe_in_a_direct_message_is_refused_and_stores_nothing(stack: SlackStack) -> None:
    """A DM cannot take alerts: subscribe there is refused before anything is posted."""
    shown = blocks_text(stack.command("subscribe *", channel="D0ALICE"))
    assert "A direct message cannot receive alerts" in shown
    assert stack.store.subscriptions() == []
    assert stack.slack.calls_to("chat.postMessage") == []


def test_status_names_the_channels_the_bot_cannot_post_to(stack: SlackStack) -> None:
    """status lists each failing channel with Slack's error; unsubscribing it clears it."""
    stack.store.add_subscription(Subscription(CHANNEL, "*"))
    stack.store.set_meta(
        FAILING_KEY, {CHANNEL: {"error": "is_archived", "since": "2024-05-01T12:00:00+00:00"}}
    )
    shown = blocks_text(stack.command("status"))
    assert "Deliveries failing: the bot cannot post to 1 channel(s)" in shown
    assert f"<#{CHANNEL}>: `is_archived` since 2024-05-01T12:00:00+00:00" in shown

    stack.command("unsubscribe *")
    assert "Deliveries failing" not in blocks_text(stack.command("status"))


def test_subscribe_to_an_unwatched_instance_is_refused(stack: SlackStack) -> None:
    """subscribe names the watched instances when the one given is not watched."""
    shown = blocks_text(stack.command("subscribe cache-nope"))
    assert "No watched instance is called `cache-nope`" in shown
    assert stack.store.subscriptions() == []


def test_subscriptions_of_a_channel_without_any(stack: SlackStack) -> None:
    """subscriptions in a channel without any says how to add one."""
    assert "has no subscriptions" in blocks_text(stack.command("subscriptions"))


# --- DCS failures ------------------------------------------------------------------------------


def test_list_when_dcs_fails_says_so_with_the_code(stack: SlackStack) -> None:
    """An instance DCS cannot serve (500 until the retries run out) is named with the code."""
    stack.command("instances")  # resolve the watched instances first
    stack.sim.inject("500", count=ATTEMPTS, path_contains=PROD_ID)
    stack.sim.add_task(STAGE_ID, "EXTEND", "SUCCESS")
    reply = stack.command("list")
    shown = blocks_text(reply)
    assert "Could not read *cache-prod*" in shown
    assert "DCS.5000" in shown
    assert "1 DCS task" in shown  # the other instance still answered
    assert "Traceback" not in reply_text(reply)


def test_show_when_dcs_refuses_gives_a_human_sentence_with_the_code(stack: SlackStack) -> None:
    """A DCS refusal is one human sentence with DCS's error code."""
    task_id = stack.sim.add_task(PROD_ID, "EXTEND", "SUCCESS")
    remember(stack, PROD_ID, task_id)
    stack.sim.inject("400", path_contains="/tasks")
    shown = blocks_text(stack.command(f"show {task_id}"))
    assert "DCS refused the request (DCS.4000: " in shown


def test_dcs_down_from_the_start_gets_a_friendly_line(stack: SlackStack) -> None:
    """When the instance list cannot be read at all, the reply is a short sentence, not an error."""
    stack.sim.inject("503", count=ATTEMPTS)
    reply = stack.command("list")
    shown = blocks_text(reply)
    assert "DCS is not answering right now (HTTP 503" in shown
    assert "Traceback" not in reply_text(reply)


def test_params_never_appear_in_any_reply(stack: SlackStack) -> None:
    """A task's params (a password here) appear in no reply of any subcommand."""
    task_id = stack.sim.add_task(PROD_ID, "modify", "SUCCESS", params=PASSWORD)
    remember(stack, PROD_ID, task_id, name="modify")
    for text in ("list", f"show {task_id}", "cache-prod name:modify", "instances", "status"):
        assert PASSWORD not in reply_text(stack.command(text))
    assert all(PASSWORD not in json.dumps(p) for p in stack.slack.response_urls)


# --- access ------------------------------------------------------------------------------------

ANY = "C0ANYWHERE"


@pytest.mark.parametrize(
    ("env", "user", "channel", "text", "refusal"),
    [
        ({}, "U0ANY", ANY, "list", None),
        ({"DCS_ALLOWED_CHANNELS": CHANNEL}, "U0ANY", CHANNEL, "list", None),
        (
            {"DCS_ALLOWED_CHANNELS": CHANNEL},
            "U0ANY",
            ANY,
            "list",
            "/dcs-tasks is not enabled in this channel; ask an admin to add it to "
            "DCS_ALLOWED_CHANNELS.",
        ),
        ({"DCS_ALLOWED_USERS": "U1,U2"}, "U2", ANY, "list", None),
        ({"DCS_ALLOWED_USERS": "U1,U2"}, "U3", ANY, "list", "Only <@U1>, <@U2> may use"),
        ({"DCS_ALLOWED_USERS": "U1", "DCS_ADMIN_USERS": "U9"}, "U9", ANY, "list", None),
        (
            {"DCS_ALLOWED_USERS": "U1", "DCS_ALLOWED_CHANNELS": CHANNEL},
            "U1",
            ANY,
            "list",
            "not enabled in this channel",
        ),
        ({"DCS_ADMIN_USERS": "U1,U2"}, "U1", ANY, "subscribe *", None),
        (
            {"DCS_ADMIN_USERS": "U1,U2"},
            "U3",
            ANY,
            "subscribe *",
            "Only <@U1>, <@U2> may change subscriptions and mutes.",
        ),
        (
            {"DCS_ADMIN_USERS": "U1"},
            "U3",
            ANY,
            "unsubscribe *",
            "Only <@U1> may change subscriptions and mutes.",
        ),
        ({"DCS_ADMIN_USERS": "U1"}, "U3", ANY, "subscriptions", None),
        ({"DCS_ADMIN_USERS": "U1"}, "U3", ANY, "list", None),
    ],
)
def test_access_rules(
    stack: SlackStack,
    env: dict[str, str],
    user: str,
    channel: str,
    text: str,
    refusal: str | None,
) -> None:
    """Allowed channels AND users limit queries; admins limit subscription changes; a refusal
    says who may."""
    stack.configure(**env)
    shown = blocks_text(stack.command(text, user=user, channel=channel))
    if refusal is None:
        assert "may " not in shown
        assert "not enabled" not in shown
    else:
        assert refusal in shown
        assert stack.store.subscriptions() == []


WORDS = st.sampled_from(
    (
        *("list", "show", "instances", "status", "subscribe", "unsubscribe", "subscriptions"),
        *("help", "cache-prod", "CACHE-STAGE", PROD_ID, "*", ":", "x:y", "status:FAILED"),
        *("status:a,b", "name:EXTEND", "since:7d", "since:0", "limit:0", "limit:3"),
    )
)

# --- any text ----------------------------------------------------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200) | st.lists(WORDS | st.text(max_size=8), max_size=6).map(" ".join))
def test_any_text_gets_a_reply_and_never_an_exception(stack: SlackStack, text: str) -> None:
    """Whatever the text (random, or the grammar's own words mixed), the reply fits Slack."""
    message = answer(stack.deps, text, user_id=USER, channel_id=CHANNEL)
    assert message.text
    assert 1 <= len(message.blocks) <= 50
    assert "Sorry, something went wrong" not in message.text


def test_an_unreadable_state_store_gets_a_friendly_line(stack: SlackStack) -> None:
    """When the state store fails (here: closed), the reply says so in one sentence."""
    stack.store.close()
    message = answer(stack.deps, "subscriptions", user_id=USER, channel_id=CHANNEL)
    assert "cannot read its state store right now" in message.text


def test_a_stalled_dcs_never_starves_help_or_buttons(stack: SlackStack) -> None:
    """Twelve ``list`` commands against a DCS that stopped answering are all acked, and then
    ``help`` and a button click still get their answers: DCS work runs in its own bounded pool,
    never in Bolt's five listener threads."""
    stack.sim.latency = 30.0
    for _ in range(12):
        body, _url = stack.command_body("list")
        assert stack.post_signed(body).status_code == 200

    assert "/dcs-tasks list" in reply_text(stack.command("help"))
    value = json.dumps({"instance_id": PROD_ID, "task_id": "a" * 32})
    url = stack.click("task_details", value, message_ts="1700000000.000100")
    assert "busy" in reply_text(stack.reply(url, wait=5.0))
