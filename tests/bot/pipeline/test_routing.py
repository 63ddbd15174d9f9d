"""Tests for bot.pipeline.routing: which channels receive a task's alert."""

from __future__ import annotations

import pytest

from bot.dcs.models import Task
from bot.pipeline.routing import route
from state.base import Subscription

INSTANCE_ID = "5560df16-cebf-4473-95c4-d1b573c16e79"
TASK = Task(instance_id=INSTANCE_ID, id="t1", name="EXTEND", status="FAILED")


def sub(
    channel: str, instance: str = "*", statuses: tuple[str, ...] = (), names: tuple[str, ...] = ()
) -> Subscription:
    return Subscription(channel=channel, instance=instance, statuses=statuses, names=names)


@pytest.mark.parametrize(
    ("alert_channel", "subscriptions", "expected"),
    [
        pytest.param("CALERT", [], ["CALERT"], id="alert channel only"),
        pytest.param(None, [], [], id="nowhere"),
        pytest.param("", [sub("C1")], ["C1"], id="empty alert channel is unset"),
        pytest.param(None, [sub("C1", INSTANCE_ID)], ["C1"], id="by instance ID"),
        pytest.param(None, [sub("C1", INSTANCE_ID.upper())], ["C1"], id="by ID, any case"),
        pytest.param(None, [sub("C1", "Cache-PROD")], ["C1"], id="by name, any case"),
        pytest.param(None, [sub("C1", "*")], ["C1"], id="every instance"),
        pytest.param(None, [sub("C1", "cache-test")], [], id="other instance name"),
        pytest.param(None, [sub("C1", "another-id")], [], id="other instance ID"),
        pytest.param(None, [sub("C1", statuses=("failed",))], ["C1"], id="status filter matches"),
        pytest.param(None, [sub("C1", statuses=("SUCCESS", "FAILED"))], ["C1"], id="status list"),
        pytest.param(None, [sub("C1", statuses=("SUCCESS",))], [], id="status filter misses"),
        pytest.param(None, [sub("C1", names=("extend",))], ["C1"], id="name filter matches"),
        pytest.param(None, [sub("C1", names=("BindEip",))], [], id="name filter misses"),
        pytest.param(
            None,
            [sub("C1", "cache-prod", ("FAILED",), ("EXTEND",))],
            ["C1"],
            id="instance, status and name all match",
        ),
        pytest.param(
            None,
            [sub("C1", "cache-prod", ("FAILED",), ("BindEip",))],
            [],
            id="one filter missing is enough to miss",
        ),
        pytest.param(
            "CALERT",
            [sub("C2"), sub("C1", "cache-prod"), sub("C2", INSTANCE_ID), sub("CALERT")],
            ["CALERT", "C2", "C1"],
            id="alert channel first, then each channel once, in subscription order",
        ),
        pytest.param(
            "CALERT",
            [sub("C1", statuses=("SUCCESS",)), sub("C1", INSTANCE_ID)],
            ["CALERT", "C1"],
            id="a later matching subscription of the same channel still counts",
        ),
        pytest.param(
            "CALERT",
            [sub("C1", statuses=("SUCCESS",))],
            ["CALERT"],
            id="alert channel gets what no subscription takes",
        ),
        pytest.param(
            "CALERT",
            [sub("C1")],
            ["CALERT", "C1"],
            id="a subscription to every task never takes alerts from the alert channel",
        ),
    ],
)
def test_route(
    alert_channel: str | None, subscriptions: list[Subscription], expected: list[str]
) -> None:
    """An alert goes to the alert channel and to each matching subscription's channel, once."""
    assert route(TASK, "cache-prod", alert_channel, subscriptions) == expected


def test_subscription_by_name_needs_a_known_name() -> None:
    """A subscription by name does not match while the instance's name is unknown."""
    assert route(TASK, None, None, [sub("C1", "cache-prod")]) == []
    assert route(TASK, None, None, [sub("C1", INSTANCE_ID)]) == ["C1"]
