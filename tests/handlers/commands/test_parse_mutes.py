"""Tests for the ``mute``, ``unmute``, ``mutes`` and ``report`` grammar of /dcs-tasks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handlers.commands.parse import (
    USAGE,
    ListMutes,
    MuteAlerts,
    ParseError,
    Report,
    Unmute,
    parse,
)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("mute *", MuteAlerts("*")),
        ("MUTE cache-prod", MuteAlerts("cache-prod", duration=timedelta(hours=1))),
        (
            "mute cache-prod name:EXTEND,BindEip for:2h resize to 8 GB",
            MuteAlerts("cache-prod", ("EXTEND", "BindEip"), timedelta(hours=2), "resize to 8 GB"),
        ),
        ("mute * planned work FOR:90m", MuteAlerts("*", (), timedelta(minutes=90), "planned work")),
        ("mute * ticket:OPS-42 for:7d", MuteAlerts("*", (), timedelta(days=7), "ticket:OPS-42")),
        ("mute * name:,EXTEND,", MuteAlerts("*", ("EXTEND",))),
        ("unmute *", Unmute("*")),
        ("unmute cache-prod", Unmute("cache-prod")),
        ("unmute 7", Unmute("7")),
        ("mutes", ListMutes()),
        ("report", Report()),
        ("report cache-prod", Report("cache-prod", timedelta(days=7))),
        ("report since:30d", Report(None, timedelta(days=30))),
        ("Report cache-prod SINCE:24h", Report("cache-prod", timedelta(hours=24))),
    ],
)
def test_valid_commands(text: str, command: object) -> None:
    """Each new subcommand parses into its typed command; a mute lasts 1h unless told, a report
    covers 7 days; words that are not name:/for: make the reason."""
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "reason", "usage"),
    [
        ("mute", "give the INSTANCE (or * for every instance) first", "mute"),
        ("mute for:2h cache-prod", "give the INSTANCE (or * for every instance) first", "mute"),
        ("mute * for:8d", "for: a mute lasts at most 7d (got `8d`)", "mute"),
        ("mute * for:soon", "for: must be a duration such as 30m, 2h or 1d (got `soon`)", "mute"),
        ("mute * for:0", "for: must be a duration", "mute"),
        ("mute * for:", "for: needs a value, e.g. for:2h", "mute"),
        ("mute * name:", "name: needs a value, e.g. name:EXTEND", "mute"),
        ("mute * for:1h for:2h", "for: is given twice", "mute"),
        ("mute * " + "x" * 201, "the reason is too long (201 characters, at most 200)", "mute"),
        ("unmute", "give exactly one INSTANCE, * or MUTE_ID", "unmute"),
        ("unmute a b", "give exactly one INSTANCE, * or MUTE_ID (got `a` `b`)", "unmute"),
        ("mutes all", "this command takes no arguments (got `all`)", "mutes"),
        ("report a b", "give one INSTANCE at most", "report"),
        ("report since:2y", "since: must be a duration", "report"),
        ("report limit:3", "unknown option `limit:3` (this command takes since:)", "report"),
    ],
)
def test_wrong_input_gives_a_reason_and_the_usage(text: str, reason: str, usage: str) -> None:
    """Wrong input gives a one-line reason and the usage of the subcommand."""
    result = parse(text)
    assert isinstance(result, ParseError)
    assert reason in result.reason
    assert result.usage == USAGE[usage]
