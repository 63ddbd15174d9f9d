"""Tests for handlers.commands.parse: the /dcs-tasks grammar, total over any text."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.commands.parse import (
    FULL_USAGE,
    USAGE,
    BotStatus,
    Help,
    ListInstances,
    ListMutes,
    ListSubscriptions,
    ListTasks,
    MuteAlerts,
    ParseError,
    Report,
    ShowTask,
    Subscribe,
    Unmute,
    Unsubscribe,
    parse,
    quote,
)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("", Help()),
        ("   ", Help()),
        ("help", Help()),
        ("HELP", Help()),
        ("list", ListTasks()),
        ("list cache-prod", ListTasks(instance="cache-prod")),
        ("cache-prod", ListTasks(instance="cache-prod")),
        ("cache-prod status:failed", ListTasks(instance="cache-prod", status="FAILED")),
        ("status:FAILED", ListTasks(status="FAILED")),
        (
            "list  cache-prod\tSTATUS:success name:BindEip since:7d limit:0",
            ListTasks(
                instance="cache-prod",
                status="SUCCESS",
                name="BindEip",
                since=timedelta(days=7),
                limit=0,
            ),
        ),
        ("list since:90m limit:1000", ListTasks(since=timedelta(minutes=90), limit=1000)),
        ("show 8abf6e1e72c1", ShowTask("8abf6e1e72c1")),
        ("instances", ListInstances()),
        ("status", BotStatus()),
        ("subscribe *", Subscribe("*")),
        (
            "subscribe cache-prod status:failed,success name:EXTEND,BindEip",
            Subscribe("cache-prod", ("FAILED", "SUCCESS"), ("EXTEND", "BindEip")),
        ),
        ("subscribe * status:,failed,", Subscribe("*", ("FAILED",))),
        ("unsubscribe *", Unsubscribe("*")),
        ("Unsubscribe cache-prod", Unsubscribe("cache-prod")),
        ("subscriptions", ListSubscriptions()),
    ],
)
def test_valid_commands(text: str, command: object) -> None:
    """Each subcommand parses into its typed command, with defaults 24h and 20."""
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "reason", "usage"),
    [
        ("list since:0", "since: must be a duration such as 90m, 24h or 7d", USAGE["list"]),
        ("list since:3y", "since: must be a duration", USAGE["list"]),
        ("list since:400d", "since: must be at most 366d", USAGE["list"]),
        ("list since:99999999999999999999w", "since: must be a duration", USAGE["list"]),
        ("list limit:1001", "limit: must be a whole number from 0 to 1000", USAGE["list"]),
        ("list limit:١٢", "limit: must be a whole number", USAGE["list"]),
        ("list limit:", "limit: needs a value, e.g. limit:50", USAGE["list"]),
        ("list status:a status:b", "status: is given twice", USAGE["list"]),
        ("list a b c d", "give one INSTANCE at most (got `a` `b` `c` …)", USAGE["list"]),
        ("status: FAILED", "status: needs a value", USAGE["list"]),
        ("show", "give exactly one TASK_ID", USAGE["show"]),
        ("show a b", "give exactly one TASK_ID (got `a` `b`)", USAGE["show"]),
        (
            "show a since:1h",
            "unknown option `since:1h` (this command takes no options)",
            USAGE["show"],
        ),
        ("subscribe", "give exactly one INSTANCE (or * for every instance)", USAGE["subscribe"]),
        ("subscribe * since:1h", "unknown option `since:1h`", USAGE["subscribe"]),
        ("unsubscribe", "give exactly one INSTANCE (or *)", USAGE["unsubscribe"]),
        ("help me", "this command takes no arguments (got `me`)", USAGE["help"]),
        ("subscriptions all", "this command takes no arguments", USAGE["subscriptions"]),
        ("lisst cache prod", "unknown command `lisst`", FULL_USAGE),
    ],
)
def test_wrong_input_gives_a_reason_and_the_usage(
    text: str, reason: str, usage: str | None
) -> None:
    """Wrong input gives a one-line reason and the usage of the subcommand concerned."""
    result = parse(text)
    assert isinstance(result, ParseError)
    assert reason in result.reason
    if usage is not None:
        assert result.usage == usage


@pytest.mark.parametrize(
    ("token", "quoted"),
    [
        ("abc", "`abc`"),
        ("<@U1>&", "`&lt;@U1&gt;&amp;`"),
        ("a`b", "`a?b`"),
        ("\x00x", "`?x`"),
        ("x" * 60, "`" + "x" * 39 + "…`"),
    ],
)
def test_quote_makes_user_text_safe_inline_code(token: str, quoted: str) -> None:
    """Echoed input is printable, escaped, without backticks, and short."""
    assert quote(token) == quoted


@given(st.text())
def test_any_text_parses_to_a_command_or_a_one_line_error(text: str) -> None:
    """Parsing never raises; an error is one line with no raw <, > or backtick from the input."""
    result = parse(text)
    if isinstance(result, ParseError):
        assert "\n" not in result.reason
        assert "<" not in result.reason
        assert ">" not in result.reason
        assert result.usage in (*USAGE.values(), FULL_USAGE)
    else:
        assert isinstance(
            result,
            Help
            | ListTasks
            | ShowTask
            | ListInstances
            | BotStatus
            | Subscribe
            | Unsubscribe
            | ListSubscriptions
            | MuteAlerts
            | Unmute
            | ListMutes
            | Report,
        )


@given(st.lists(st.sampled_from(["list", "show", "status:", "x", "since:", "limit:9", ":", "*"])))
def test_any_mix_of_grammar_words_parses(words: list[str]) -> None:
    """Text made of the grammar's own words never raises either."""
    parse(" ".join(words))
