"""Tests for handlers.actions.click: reading a button click out of a block_actions payload."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.actions.click import ButtonClick, read_click

VALUE = json.dumps({"instance_id": "i-1", "task_id": "t-1"})


def payload(**changes: Any) -> dict[str, Any]:
    """A block_actions payload of a click on a non-ephemeral alert, with ``changes`` applied."""
    body: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U1"},
        "channel": {"id": "C1"},
        "container": {"type": "message", "message_ts": "1.1", "channel_id": "C1"},
        "message": {"ts": "1.1"},
        "actions": [{"action_id": "task_refresh", "value": VALUE}],
    }
    body.update(changes)
    return body


def test_a_click_on_an_alert() -> None:
    """Who clicked, where, on which message, about which task."""
    assert read_click(payload()) == ButtonClick("U1", "C1", "1.1", "i-1", "t-1")


def test_an_ephemeral_message_has_no_ts_to_update() -> None:
    """A click on an ephemeral message gives no message_ts."""
    body = payload(container={"message_ts": "1.1", "channel_id": "C1", "is_ephemeral": True})
    click = read_click(body)
    assert click is not None
    assert click.message_ts is None


def test_the_container_supplies_channel_and_ts_when_needed() -> None:
    """Without channel and message objects, the container's IDs are used."""
    body = payload()
    del body["channel"], body["message"]
    assert read_click(body) == ButtonClick("U1", "C1", "1.1", "i-1", "t-1")


@pytest.mark.parametrize(
    ("instance_id", "task_id"),
    [
        ("../../v2/other-project/instances", "t-1"),
        ("i-1/../../x", "t-1"),
        ("i-1?offset=9", "t-1"),
        ("i-1%2F..", "t-1"),
        ("", "t-1"),
        ("i 1", "t-1"),
        ("i-1", "t/1"),
        ("i-1", "x" * 65),
        ("-i-1", "t-1"),
    ],
)
def test_a_forged_id_is_not_a_click_of_ours(instance_id: str, task_id: str) -> None:
    """A button value whose IDs are not DCS IDs is refused before it can reach a URL."""
    value = json.dumps({"instance_id": instance_id, "task_id": task_id})
    assert read_click(payload(actions=[{"value": value}])) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"actions": []},
        {"actions": "x"},
        {"actions": [{"value": "not json"}]},
        {"actions": [{"value": json.dumps(["i-1", "t-1"])}]},
        {"actions": [{"value": json.dumps({"instance_id": "i-1"})}]},
        {"actions": [{"value": json.dumps({"instance_id": 1, "task_id": "t"})}]},
        {"actions": [{}]},
        {"user": {}},
        {"user": "U1"},
        {"channel": None, "container": {}},
    ],
)
def test_anything_else_is_not_a_click_of_ours(changes: dict[str, Any]) -> None:
    """Malformed payloads give None instead of raising."""
    assert read_click(payload(**changes)) is None
