"""Tests for bot.slack.render: labels, layout, escaping, secrecy of params, Slack limits."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.dcs.errors import DcsBadResponseError
from bot.dcs.models import Task
from bot.slack.render import (
    TASK_LABELS,
    Message,
    digest,
    format_duration,
    instance_display,
    status_emoji,
    task_alert,
    task_details,
    task_label,
    transition_reply,
)
from tests.reference import REFERENCE_TASK

INSTANCE_ID = "5560df16-cebf-4473-95c4-d1b573c16e79"
NOW = datetime(2020, 6, 17, 9, 0, 0, tzinfo=UTC)
SECRET = "password=Sup3r-S3cret!pw"

# The reference's example task ("Listing Background Tasks", example response).
EXAMPLE: dict[str, Any] = REFERENCE_TASK

DETAIL_FIELDS = [
    *sorted(EXAMPLE["details"]),
    *["enable_public_ip", "public_ip_id", "public_ip_address", "enable_ssl"],
]


def make_task(**overrides: Any) -> Task:
    data = {**EXAMPLE, **overrides}
    return Task.from_json(INSTANCE_ID, data)


def units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def texts(message: Message) -> Iterator[tuple[str, str]]:
    """Every (kind, text) in a message: ``plain`` for plain_text, ``mrkdwn`` otherwise."""
    yield "mrkdwn", message.text
    for block in message.blocks:
        for obj in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(obj, dict):
                if obj.get("type") == "button":
                    yield "plain", obj["text"]["text"]
                    yield "value", obj["value"]
                else:
                    yield obj["type"].replace("plain_text", "plain"), obj["text"]


def everything(message: Message) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


DATE_TOKEN = re.compile(r"<!date\^-?\d+\^\{date_short_pretty\} \{time\}\|[^<>|]*>")


def assert_within_slack_limits(message: Message) -> None:
    """Block Kit limits, counted in UTF-16 units; no raw ``<``/``>`` except our date tokens."""
    json.dumps(message.blocks, ensure_ascii=False).encode("utf-8")  # sendable
    message.text.encode("utf-8")
    assert 0 < units(message.text) <= 4000
    assert 0 < len(message.blocks) <= 50
    for block in message.blocks:
        kind = block["type"]
        if kind == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < units(block["text"]["text"]) <= 150
        elif kind == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert 0 < units(block["text"]["text"]) <= 3000
            fields = block.get("fields", [])
            assert len(fields) <= 10
            assert all(0 < units(f["text"]) <= 2000 for f in fields)
        elif kind == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(0 < units(e["text"]) <= 3000 for e in block["elements"])
        elif kind == "actions":
            assert 0 < len(block["elements"]) <= 25
            for button in block["elements"]:
                assert units(button["text"]["text"]) <= 75
                assert units(button["value"]) <= 2000
                assert len(button["action_id"]) <= 255
        else:
            pytest.fail(f"unexpected block type {kind}")
    for kind, text in texts(message):
        if kind == "mrkdwn":
            bare = DATE_TOKEN.sub("", text)
            assert "<" not in bare
            assert ">" not in bare
            assert not re.search(r"&(?!amp;|lt;|gt;)", bare), "a clipped entity"


def fields_of(message: Message) -> list[str]:
    return [f["text"] for b in message.blocks for f in b.get("fields", [])]


def context_of(message: Message) -> list[str]:
    return [e["text"] for b in message.blocks if b["type"] == "context" for e in b["elements"]]


# --- labels, emoji, durations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("EXTEND", "Modifying specifications"),
        ("BindEip", "Enabling public access"),
        ("UnBindEip", "Disabling public access"),
        ("AddReplica", "Adding replicas"),
        ("DelReplica", "Deleting replicas"),
        ("AddWhitelist", "Configuring an IP whitelist"),
        ("UpdatePort", "Changing the port"),
        ("RemoveIpFromDns", "Removing IP addresses"),
        ("masterStandbySwapJob", "Master/standby switchover"),
        ("modify", "Changing the password"),
        ("RestartInstance", "RestartInstance"),
        ("extend", "extend"),
        ("", "Unnamed task"),
    ],
)
def test_task_label(name: str, label: str) -> None:
    """Each reference task name reads as the reference describes it; unknown names as they come."""
    assert task_label(name) == label


def test_task_labels_cover_the_reference_names() -> None:
    """TASK_LABELS holds exactly the ten names the reference lists."""
    assert set(TASK_LABELS) == {
        "EXTEND",
        "BindEip",
        "UnBindEip",
        "AddReplica",
        "DelReplica",
        "AddWhitelist",
        "UpdatePort",
        "RemoveIpFromDns",
        "masterStandbySwapJob",
        "modify",
    }


@pytest.mark.parametrize(
    ("status", "emoji"),
    [
        ("CREATED", ":hourglass_flowing_sand:"),
        ("WAITING", ":hourglass_flowing_sand:"),
        ("EXECUTING", ":arrows_counterclockwise:"),
        ("SUCCESS", ":white_check_mark:"),
        ("success", ":white_check_mark:"),
        ("FAILED", ":x:"),
        ("CANCELLED", ":white_circle:"),
        ("CANCELED", ":white_circle:"),
        ("DELETED", ":white_circle:"),
        ("PAUSED", ":grey_question:"),
        ("", ":grey_question:"),
    ],
)
def test_status_emoji(status: str, emoji: str) -> None:
    """Each status gets its Slack emoji code; unknown statuses a neutral one."""
    assert status_emoji(status) == emoji


@pytest.mark.parametrize(
    ("name", "shown"),
    [("cache-prod", "cache-prod"), (None, INSTANCE_ID), ("", INSTANCE_ID)],
)
def test_instance_display(name: str | None, shown: str) -> None:
    """An instance is shown by name where known, else by ID."""
    assert instance_display(INSTANCE_ID, name) == shown


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (4, "4s"),
        (4.9, "4s"),
        (59, "59s"),
        (60, "1m"),
        (184, "3m 4s"),
        (3600, "1h"),
        (7500, "2h 5m"),
        (86400, "1d"),
        (97200, "1d 3h"),
        (400 * 86400 + 3600, "400d 1h"),
        (-5, "0s"),
        (math.nan, "0s"),
        (math.inf, "0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    """Durations read as the two largest units."""
    assert format_duration(seconds) == text


# --- the alert -------------------------------------------------------------------------------


def test_alert_text_names_task_status_and_instance() -> None:
    """The notification fallback names the task in words, its status and the instance's name."""
    message = task_alert(make_task(), "cache-prod", now=NOW)
    assert message.text == ":white_check_mark: Modifying specifications SUCCESS on cache-prod"


def test_alert_text_uses_the_instance_id_without_a_name() -> None:
    """Without a known name the instance ID is shown instead."""
    message = task_alert(make_task(status="FAILED"), None, now=NOW)
    assert message.text == f":x: Modifying specifications FAILED on {INSTANCE_ID}"


def test_alert_shows_the_reference_extend_details() -> None:
    """The EXTEND example shows before → after pairs, and equal pairs as one value."""
    fields = fields_of(task_alert(make_task(), "cache-prod", now=NOW))
    assert "*Capacity*\n0.125 → 0.25 GB" in fields
    assert "*Specification*\nredis.single.xu1.tiny.125 → redis.single.xu1.tiny.256" in fields
    assert "*Cache mode*\nsingle" in fields
    assert "*Cache type*\nsingle" in fields
    assert "*Replicas*\n1" in fields
    assert "*Port*\n6379" in fields
    for fact in [
        "*Whitelist group*\ngroup1",
        "*Replica IP*\n192.192.0.1",
        "*Replica AZ*\naz01",
        "*Node*\nnode1",
        "*Source IP*\n192.192.0.0",
        "*Target IP*\n192.192.0.1",
        "*Account*\naccount1",
        "*Updated configuration length*\n0",
        "*Billing mode change only*\nno",
    ]:
        assert fact in fields
    assert not any(f.startswith("*Renamed commands*") for f in fields)  # an empty list


@pytest.mark.parametrize(
    ("details", "field"),
    [
        ({"old_capacity": "0.125"}, "*Capacity*\n0.125 GB"),
        ({"new_capacity": "2"}, "*Capacity*\n2 GB"),
        ({"old_capacity": "x", "new_capacity": "y"}, "*Capacity*\nx → y"),
        ({"old_port": 6379, "new_port": 6380}, "*Port*\n6379 → 6380"),
        ({"new_port": 6380}, "*Port*\n6380"),
        ({"old_replica_num": 2, "new_replica_num": 3}, "*Replicas*\n2 → 3"),
        ({"enable_public_ip": True}, "*Public access*\nenabled"),
        ({"public_ip_address": "10.0.0.9"}, "*Public IP*\n10.0.0.9"),
        ({"public_ip_id": "eip-1"}, "*Public IP ID*\neip-1"),
        ({"enable_ssl": False}, "*SSL*\ndisabled"),
        ({"is_only_adjust_charging": True}, "*Billing mode change only*\nyes"),
        ({"rename_commands": ["flushall", "keys"]}, "*Renamed commands*\nflushall, keys"),
    ],
)
def test_alert_detail_fields(details: dict[str, Any], field: str) -> None:
    """Each detail is labelled in words; a pair with one side shows that side alone."""
    assert fields_of(task_alert(make_task(details=details), None, now=NOW)) == [field]


def test_absent_and_null_details_are_omitted() -> None:
    """Only details with a value appear; nulls, absent keys and empty lists leave no trace."""
    details: dict[str, Any] = {key: None for key in DETAIL_FIELDS}
    details |= {"new_capacity": "4", "rename_commands": []}
    message = task_alert(make_task(details=details), None, now=NOW)
    assert fields_of(message) == ["*Capacity*\n4 GB"]
    assert "None" not in everything(message)
    assert "null" not in everything(message)


def test_alert_without_details_has_no_field_section() -> None:
    """A task without details renders header, summary, context and buttons only."""
    message = task_alert(make_task(details=None), "cache-prod", now=NOW)
    assert [b["type"] for b in message.blocks] == ["header", "section", "context", "actions"]
    assert_within_slack_limits(message)


def test_alert_layout() -> None:
    """The alert has a header with emoji and label, then status on the instance (name and ID)."""
    message = task_alert(make_task(), "cache-prod", now=NOW)
    assert message.blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": ":white_check_mark: Modifying specifications"},
    }
    assert message.blocks[1]["text"]["text"] == f"*SUCCESS* on *cache-prod* (`{INSTANCE_ID}`)"
    assert_within_slack_limits(message)


def test_alert_context_says_who_when_how_long_and_which_task() -> None:
    """Context shows the user, a Slack date with a UTC fallback, the duration and the task ID."""
    context = context_of(task_alert(make_task(), "cache-prod", now=NOW))
    epoch = int(datetime(2020, 6, 17, 8, 18, 6, 597000, tzinfo=UTC).timestamp())
    assert context == [
        "Started by *dcs_000_02*",
        f"<!date^{epoch}^{{date_short_pretty}} {{time}}|2020-06-17 08:18 UTC>",
        "Took 3s",
        "Task `8abf6e1e72c12e7c0172c15b508500aa`",
    ]


def test_alert_of_a_running_task_says_how_long_it_has_run() -> None:
    """A task still running shows how long since it started, measured against ``now``."""
    task = make_task(status="EXECUTING")
    now = datetime(2020, 6, 17, 8, 21, 10, tzinfo=UTC)
    assert "Running for 3m 3s" in context_of(task_alert(task, None, now=now))


def test_alert_context_without_user_or_times() -> None:
    """Without user and times the context still names the task ID, and nothing else."""
    task = make_task(user_name=None, user_id=None, created_at=None, updated_at=None)
    assert context_of(task_alert(task, None, now=NOW)) == [f"Task `{EXAMPLE['id']}`"]


def test_alert_buttons_carry_the_task_identity() -> None:
    """Refresh and Details buttons carry the instance and task IDs as JSON."""
    actions = task_alert(make_task(), "cache-prod", now=NOW).blocks[-1]
    assert actions["type"] == "actions"
    buttons = [(b["action_id"], b["text"]["text"]) for b in actions["elements"]]
    assert buttons == [("task_refresh", "Refresh"), ("task_details", "Details")]
    for button in actions["elements"]:
        assert json.loads(button["value"]) == {"instance_id": INSTANCE_ID, "task_id": EXAMPLE["id"]}


def test_alert_drops_buttons_whose_value_would_not_fit() -> None:
    """IDs too long for a button value leave the buttons out rather than break the message."""
    message = task_alert(make_task(id="t" * 3000), None, now=NOW)
    assert all(b["type"] != "actions" for b in message.blocks)
    assert_within_slack_limits(message)


def test_params_are_never_shown() -> None:
    """A password in ``params`` appears in no rendering, text or blocks."""
    task = make_task(name="modify", params=json.dumps({"new_password": SECRET}))
    rendered = [
        task_alert(task, "cache-prod", now=NOW),
        task_details(task, "cache-prod"),
        transition_reply(task, "EXECUTING", now=NOW),
        digest([(task, "cache-prod")], now=NOW),
    ]
    for message in rendered:
        assert "Sup3r" not in everything(message)
        assert "Changing the password" in everything(message)


def test_values_from_dcs_are_escaped() -> None:
    """``&``, ``<`` and ``>`` from DCS are escaped in mrkdwn, so no value can mention or link."""
    task = make_task(
        user_name="<!channel>",
        status="<@U123>",
        details={"group_name": "a<b>&c", "old_port": "1&2"},
    )
    rendered = [
        task_alert(task, "<https://evil|prod> & co", now=NOW),
        task_details(task, "<https://evil|prod> & co"),
        transition_reply(task, "<!here>", now=NOW),
        digest([(task, "<https://evil|prod> & co")], now=NOW),
    ]
    for message in rendered:
        assert_within_slack_limits(message)
        assert "<!channel>" not in everything(message)
        assert "<!here>" not in everything(message)
        assert "<https://evil" not in everything(message)
    alert = rendered[0]
    assert "*Whitelist group*\na&lt;b&gt;&amp;c" in fields_of(alert)
    assert "&lt;https://evil|prod&gt; &amp; co" in alert.text
    assert "Started by *&lt;!channel&gt;*" in context_of(alert)


def test_unknown_task_name_is_shown_as_it_comes() -> None:
    """An unknown task name is shown as is in the header and the text."""
    message = task_alert(make_task(name="RestartInstance", details=None), "c1", now=NOW)
    assert message.blocks[0]["text"]["text"] == ":white_check_mark: RestartInstance"
    assert message.text == ":white_check_mark: RestartInstance SUCCESS on c1"


def test_huge_values_are_clipped_within_limits() -> None:
    """Huge values from DCS are clipped with an ellipsis and every Slack limit holds."""
    huge = "<&>" * 20_000 + "\U0001f600" * 5000
    details: dict[str, Any] = {key: huge for key in DETAIL_FIELDS}
    details["rename_commands"] = [huge] * 50
    task = make_task(
        name=huge, status=huge, user_name=huge, user_id=huge, details=details, params=huge
    )
    for message in [
        task_alert(task, huge, now=NOW),
        task_details(task, huge),
        transition_reply(task, huge, now=NOW),
        digest([(task, huge)] * 200, now=NOW),
    ]:
        assert_within_slack_limits(message)
        assert "…" in everything(message)


@pytest.mark.parametrize("length", range(400, 501, 7))
def test_clipping_never_cuts_a_date_token_or_an_entity(length: int) -> None:
    """A digest line clipped near its date token drops the token whole, never half of it."""
    task = make_task(name="&" * 600)
    message = digest([(task, "<" * length)], now=NOW)
    assert_within_slack_limits(message)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_times_at_the_edge_of_the_calendar_render(when: str) -> None:
    """Times DCS could never mean, but JSON can carry, still render."""
    task = make_task(created_at=when, updated_at=when)
    for message in [task_alert(task, None, now=NOW), task_details(task, None)]:
        assert_within_slack_limits(message)
        assert when[:4].lstrip("0") in everything(message)


def test_lone_surrogates_do_not_break_rendering() -> None:
    """A lone surrogate from JSON becomes ``?`` so the message can be sent as UTF-8."""
    task = make_task(user_name="a\ud800b", details={"node_name": "\udfff"})
    message = task_alert(task, "x\ud800", now=NOW)
    assert_within_slack_limits(message)
    assert "Started by *a?b*" in context_of(message)


# --- thread replies, digests, details --------------------------------------------------------


def test_transition_reply_records_the_change_and_duration() -> None:
    """A reply reads "EXECUTING → SUCCESS after 3s" with the new status's emoji."""
    message = transition_reply(make_task(), "executing", now=NOW)
    assert (
        message.text == ":white_check_mark: Modifying specifications: EXECUTING → SUCCESS after 3s"
    )
    assert message.blocks == [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": ":white_check_mark: *Modifying specifications*: EXECUTING → *SUCCESS* "
                "after 3s",
            },
        }
    ]


def test_transition_reply_of_a_running_task_counts_to_now() -> None:
    """A change to a non-final status measures the duration up to ``now``."""
    task = make_task(status="EXECUTING", updated_at=None)
    now = datetime(2020, 6, 17, 8, 21, 10, tzinfo=UTC)
    message = transition_reply(task, "WAITING", now=now)
    assert message.text.endswith("WAITING → EXECUTING after 3m 3s")
    assert message.text.startswith(":arrows_counterclockwise:")


def test_transition_reply_without_start_time_has_no_duration() -> None:
    """Without a start time the reply states the change alone."""
    message = transition_reply(make_task(status="FAILED", created_at=None), "EXECUTING", now=NOW)
    assert message.text == ":x: Modifying specifications: EXECUTING → FAILED"


def digest_tasks(count: int) -> list[tuple[Task, str | None]]:
    names = list(TASK_LABELS)
    return [
        (
            make_task(id=f"task-{i:04d}", name=names[i % len(names)], status="SUCCESS"),
            None if i % 2 else f"cache-{i}",
        )
        for i in range(count)
    ]


def test_digest_lists_each_task() -> None:
    """A digest lists each task's label, status, instance, time and ID in one message."""
    message = digest(digest_tasks(3), now=NOW)
    assert message.text == "3 new DCS tasks (3 SUCCESS)"
    assert message.blocks[0]["text"]["text"] == ":bell: 3 new DCS tasks"
    body = "\n".join(b["text"]["text"] for b in message.blocks[1:])
    lines = body.split("\n")
    assert len(lines) == 3
    assert lines[0].startswith(":white_check_mark: *Modifying specifications* SUCCESS on *cache-0*")
    assert "|2020-06-17 08:18 UTC>" in lines[0]
    assert lines[0].endswith("`task-0000`")
    assert f"on *{INSTANCE_ID}*" in lines[1]
    assert "Enabling public access" in lines[1]
    assert_within_slack_limits(message)


def listed_ids(message: Message) -> list[str]:
    return re.findall(r"`(task-\d{4})`", everything(message))


def more_count(message: Message) -> int:
    match = re.search(r"and (\d+) more", everything(message))
    return int(match.group(1)) if match else 0


def test_digest_of_200_tasks_stays_within_limits() -> None:
    """200 tasks fit one message within Slack limits, every task listed or counted as more."""
    message = digest(digest_tasks(200), now=NOW)
    assert_within_slack_limits(message)
    ids = listed_ids(message)
    assert ids == [f"task-{i:04d}" for i in range(len(ids))]
    assert len(ids) + more_count(message) == 200


def test_digest_that_cannot_list_everything_ends_with_and_n_more() -> None:
    """When long lines fill 50 blocks the digest lists what fits and ends with "and N more"."""
    tasks = [(make_task(id=f"task-{i:04d}", name="X" * 900), "cache") for i in range(200)]
    message = digest(tasks, now=NOW)
    assert_within_slack_limits(message)
    ids = listed_ids(message)
    assert 0 < len(ids) < 200
    assert len(ids) + more_count(message) == 200
    assert message.blocks[-1]["elements"][0]["text"].endswith(f"and {200 - len(ids)} more")


def test_digest_summary_counts_statuses() -> None:
    """The digest's text counts tasks by status, most common first."""
    tasks = [
        (make_task(id=str(i), status="FAILED" if i < 2 else "SUCCESS"), None) for i in range(5)
    ]
    assert digest(tasks, now=NOW).text == "5 new DCS tasks (3 SUCCESS, 2 FAILED)"


def test_task_details_label_every_field_with_a_value() -> None:
    """Details show the task's identity, user, times, duration and every detail, labelled."""
    message = task_details(make_task(), "cache-prod")
    fields = fields_of(message)
    labels = [f.split("\n", 1)[0] for f in fields]
    assert labels == [
        "*Task ID*",
        "*Task name*",
        "*Status*",
        "*Instance*",
        "*Started by*",
        "*User ID*",
        "*Started*",
        "*Ended*",
        "*Duration*",
        "*Capacity*",
        "*Specification*",
        "*Cache mode*",
        "*Cache type*",
        "*Replicas*",
        "*Port*",
        "*Whitelist group*",
        "*Replica IP*",
        "*Replica AZ*",
        "*Node*",
        "*Source IP*",
        "*Target IP*",
        "*Account*",
        "*Updated configuration length*",
        "*Billing mode change only*",
    ]
    assert "*Task name*\n`EXTEND`" in fields
    assert "*Duration*\n3s" in fields
    assert "Capacity: 0.125 → 0.25 GB" in message.text.splitlines()
    assert "Started: 2020-06-17 08:18 UTC" in message.text.splitlines()
    assert_within_slack_limits(message)


def test_task_details_of_a_running_task() -> None:
    """A running task's update time is "Last updated" and it has no duration yet."""
    fields = fields_of(task_details(make_task(status="EXECUTING", details=None), None))
    labels = [f.split("\n", 1)[0] for f in fields]
    assert "*Last updated*" in labels
    assert "*Duration*" not in labels
    assert f"*Instance*\n`{INSTANCE_ID}`" in fields


# --- any task from any JSON ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
timestamps = st.datetimes(
    timezones=st.builds(
        timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
    )
).map(lambda d: d.isoformat())
some_text = st.text() | st.text(min_size=2000, max_size=4000)
tasks_json = st.fixed_dictionaries(
    {"id": st.text(min_size=1) | st.integers()},
    optional={
        "name": st.sampled_from([*TASK_LABELS, ""]) | some_text | json_values,
        "status": st.sampled_from(["SUCCESS", "FAILED", "EXECUTING", "x"]) | json_values,
        "user_name": some_text | json_values,
        "user_id": json_values,
        "params": json_values,
        "created_at": timestamps | json_values,
        "updated_at": timestamps | json_values,
        "enable_show": json_values,
        "details": st.dictionaries(st.sampled_from(DETAIL_FIELDS), some_text | json_values)
        | json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=tasks_json,
    instance_id=st.text(min_size=1, max_size=3000),
    name=st.none() | some_text,
    old=some_text,
)
def test_any_task_renders_within_limits(
    data: dict[str, Any], instance_id: str, name: str | None, old: str
) -> None:
    """Any task built from random JSON renders without error and within Slack limits (a record
    the model boundary refuses as malformed, e.g. without a string status, never reaches here)."""
    try:
        task = Task.from_json(instance_id, data)
    except DcsBadResponseError:
        return
    for message in [
        task_alert(task, name, now=NOW),
        task_details(task, name),
        transition_reply(task, old, now=NOW),
        digest([(task, name)] * 60, now=NOW),
    ]:
        assert_within_slack_limits(message)
