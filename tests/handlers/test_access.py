"""Tests for handlers.access: who may query, who may change subscriptions, and the refusals."""

from __future__ import annotations

import pytest

from bot.config import load_settings
from handlers.access import CHANNEL_REFUSAL, admin_refusal, query_refusal


@pytest.mark.parametrize(
    ("env", "user", "channel", "refusal"),
    [
        ({}, "U1", "C1", None),
        ({"DCS_ALLOWED_CHANNELS": "C1,C2"}, "U1", "C2", None),
        ({"DCS_ALLOWED_CHANNELS": "C1,C2"}, "U1", "C3", CHANNEL_REFUSAL),
        ({"DCS_ALLOWED_CHANNELS": "*"}, "U1", "C3", None),
        ({"DCS_ALLOWED_USERS": "U1"}, "U1", "C9", None),
        ({"DCS_ALLOWED_USERS": "U1,U2"}, "U3", "C9", "Only <@U1>, <@U2> may use /dcs-tasks."),
        ({"DCS_ALLOWED_USERS": "U1", "DCS_ADMIN_USERS": "U2"}, "U2", "C9", None),
        (
            {"DCS_ALLOWED_USERS": "U1", "DCS_ADMIN_USERS": "U2"},
            "U3",
            "C9",
            "Only <@U1>, <@U2> may use /dcs-tasks.",
        ),
        ({"DCS_ALLOWED_USERS": "U1", "DCS_ALLOWED_CHANNELS": "C1"}, "U1", "C2", CHANNEL_REFUSAL),
        ({"DCS_ALLOWED_USERS": "U1", "DCS_ALLOWED_CHANNELS": "C1"}, "U2", "C1", "Only <@U1>"),
        ({"DCS_ADMIN_USERS": "U1"}, "U5", "C1", None),
    ],
)
def test_query_rules(env: dict[str, str], user: str, channel: str, refusal: str | None) -> None:
    """Channel AND user must pass the rules that are set; admins count as allowed users."""
    result = query_refusal(load_settings(env), user_id=user, channel_id=channel)
    if refusal is None:
        assert result is None
    else:
        assert result is not None
        assert refusal in result


@pytest.mark.parametrize(
    ("admins", "user", "refusal"),
    [
        ("", "U1", None),
        ("U1,U2", "U2", None),
        ("U1,U2", "U3", "Only <@U1>, <@U2> may change subscriptions and mutes."),
    ],
)
def test_admin_rule(admins: str, user: str, refusal: str | None) -> None:
    """Only DCS_ADMIN_USERS (when set) may change subscriptions; the refusal names them."""
    assert admin_refusal(load_settings({"DCS_ADMIN_USERS": admins}), user_id=user) == refusal


def test_a_long_list_of_people_is_shortened() -> None:
    """A refusal names at most ten people and counts the rest."""
    users = ",".join(f"U{n}" for n in range(25))
    refusal = admin_refusal(load_settings({"DCS_ADMIN_USERS": users}), user_id="X")
    assert refusal is not None
    assert refusal.count("<@") == 10
    assert "and 15 more may change subscriptions and mutes." in refusal
