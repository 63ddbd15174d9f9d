"""Tests for bot.dcs.models: DCS JSON into typed, frozen records that tolerate what DCS sends."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.dcs.errors import DcsBadResponseError
from bot.dcs.models import Task, TaskDetails, is_final, parse_time, storable
from tests.reference import REFERENCE_TASK


def test_the_reference_example_parses_field_for_field() -> None:
    """The reference page's example answer becomes a typed Task with every detail typed."""
    task = Task.from_json("i1", REFERENCE_TASK)
    assert (task.instance_id, task.id, task.name, task.status) == (
        "i1",
        "8abf6e1e72c12e7c0172c15b508500aa",
        "EXTEND",
        "SUCCESS",
    )
    assert task.created_at == datetime(2020, 6, 17, 8, 18, 6, 597000, tzinfo=UTC)
    assert task.is_final
    d = task.details
    assert (d.old_capacity, d.new_capacity) == ("0.125", "0.25")
    assert (d.old_replica_num, d.new_port, d.updated_config_length) == (1, 6379, 0)
    assert d.is_only_adjust_charging is False
    assert d.rename_commands == ()
    assert task.to_json()["instance_id"] == "i1"


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"old_port": "6380"}, {"old_port": 6380}),
        ({"old_port": "x", "new_port": True}, {}),
        ({"enable_ssl": "true", "enable_public_ip": 1}, {"enable_ssl": True}),
        ({"old_capacity": 2, "node_name": {"a": 1}}, {"old_capacity": "2"}),
        ({"rename_commands": ["flushall", None], "unknown": 5}, {"rename_commands": ("flushall",)}),
        ({"rename_commands": "flushall"}, {}),
        (None, {}),
        ("not an object", {}),
    ],
)
def test_details_keep_what_has_the_right_type_and_drop_the_rest(
    details: object, expected: dict[str, object]
) -> None:
    """Wrong types become None, numbers in strings are read, unknown keys are ignored."""
    assert TaskDetails.from_json(details).present() == expected


@pytest.mark.parametrize("bad", [None, [], "x", {"name": "EXTEND"}, {"id": None}, {"id": ""}])
def test_a_task_without_an_id_is_a_bad_response(bad: object) -> None:
    """A task that is not an object, or has no id, is malformed, not silently skipped."""
    with pytest.raises(DcsBadResponseError):
        Task.from_json("i1", bad)


def test_params_are_dropped_where_dcs_json_becomes_a_task() -> None:
    """params may carry a password: no field, raw key, JSON or repr of the Task holds it."""
    task = Task.from_json("i1", {**REFERENCE_TASK, "params": '{"password": "Hunter2"}'})

    assert not hasattr(task, "params")
    assert "params" not in task.raw
    assert "params" not in task.to_json()
    assert "Hunter2" not in repr(task) + json.dumps(task.to_json())
    assert task.to_json()["details"] == REFERENCE_TASK["details"]


@pytest.mark.parametrize(
    ("status", "final"),
    [
        ("SUCCESS", True),
        ("failed", True),
        ("CANCELED", True),
        ("DELETED", True),
        ("EXECUTING", False),
    ],
)
def test_final_statuses(status: str, final: bool) -> None:
    """SUCCESS, FAILED, CANCELLED/CANCELED and DELETED end a task, whatever the case."""
    assert is_final(status) is final


@pytest.mark.parametrize("value", [None, "", "yesterday", 5])
def test_unreadable_times_are_none(value: object) -> None:
    """A time that cannot be read is None, never an exception."""
    assert parse_time(value) is None


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain", "plain"),
        ("a\x00b", "ab"),
        ("\x00", ""),
        ("lone \ud800 surrogate", "lone ? surrogate"),
        ("ünïcødé\x00", "ünïcødé"),
    ],
)
def test_storable_removes_what_postgresql_refuses(raw: str, clean: str) -> None:
    """NUL characters go, lone surrogates become '?', everything else stays."""
    assert storable(raw) == clean


def test_task_strings_are_storable_everywhere_keys_too() -> None:
    """Every string of a task, nested ones and keys included, is cleaned; NaN becomes null."""
    task = Task.from_json(
        "i\x00d",
        {
            "id": "t\x001",
            "status": "EXEC\x00UTING",
            "name": "EXT\x00END",
            "details": {"group_name": "g\x00"},
            "ex\x00tra": [{"k\x00": "v\x00"}, float("nan")],
        },
    )
    assert (task.id, task.status, task.name) == ("t1", "EXECUTING", "EXTEND")
    assert task.details.group_name == "g"
    assert task.raw["extra"] == [{"k": "v"}, None]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"id": "t1"}, "no status"),
        ({"id": "t1", "status": None}, "no status"),
        ({"id": "t1", "status": 3}, "non-string"),
        ({"id": "t1", "status": " "}, "no status"),
        (
            {"id": "t1", "status": "SUCCESS", "x": [[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]},
            "deeper",
        ),
        ({"status": "SUCCESS"}, "no id"),
        ([], "not a JSON object"),
    ],
)
def test_malformed_tasks_are_refused_with_the_reason(data: object, words: str) -> None:
    """A task the bot cannot follow is refused at the boundary, saying why."""
    with pytest.raises(DcsBadResponseError, match=words):
        Task.from_json("i1", data)
