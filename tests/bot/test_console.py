"""Tests for bot.console: Slack messages rendered readably in a terminal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from bot.console import mrkdwn_to_text, render_to_console
from bot.dcs.models import Task
from bot.slack.render import digest, task_alert, transition_reply

NOW = datetime(2020, 6, 17, 9, 0, 0, tzinfo=UTC)
TASK = Task.from_json(
    "5560df16-cebf-4473-95c4-d1b573c16e79",
    {
        "id": "8abf6e1e72c12e7c0172c15b508500aa",
        "name": "EXTEND",
        "user_name": "dcs_000_02",
        "status": "SUCCESS",
        "details": {
            "old_capacity": "0.125",
            "new_capacity": "0.25",
            "old_resource_spec_code": "redis.single.xu1.tiny.125",
            "new_resource_spec_code": "redis.single.xu1.tiny.256",
        },
        "created_at": "2020-06-17T08:18:06.597Z",
        "updated_at": "2020-06-17T08:18:10.106Z",
        "params": "new_password=Sup3rS3cret",
    },
)


def show(text: str, blocks: list[dict[str, Any]], **options: Any) -> str:
    console = Console(record=True, width=100)
    options = {"channel": "C0123", "kind": "post", **options}
    render_to_console(console, text=text, blocks=blocks, **options)
    return console.export_text()


def test_alert_in_the_terminal() -> None:
    """An alert shows channel, kind, emoji header, status, fields in two columns, context and
    buttons, with the Slack date shown as its fallback."""
    alert = task_alert(TASK, "cache-prod", now=NOW)
    out = show(alert.text, alert.blocks)
    lines = out.splitlines()
    assert "#C0123 · post" in lines[0]
    assert "✅ Modifying specifications" in out
    assert "SUCCESS on cache-prod (5560df16-cebf-4473-95c4-d1b573c16e79)" in out
    assert any("Capacity" in line and "Specification" in line for line in lines)
    assert "0.125 → 0.25 GB" in out
    assert "Started by dcs_000_02 · 2020-06-17 08:18 UTC · Took 3s · Task" in out
    assert "[Refresh] [Details]" in out
    for raw in ["<!date", ":white_check_mark:", "*SUCCESS*", "`", "Sup3r"]:
        assert raw not in out


def test_thread_reply_is_indented_and_marked() -> None:
    """A thread reply is indented and says which thread; a broadcast says so too."""
    reply = transition_reply(TASK, "EXECUTING", now=NOW)
    out = show(
        reply.text, reply.blocks, kind="reply", thread_of="1592381886.000100", broadcast=True
    )
    first = out.splitlines()[0]
    assert first.startswith("    ╭")
    assert "reply · ↳ in thread 1592381886.000100 · also sent to the channel" in first
    assert "✅ Modifying specifications: EXECUTING → SUCCESS after 3s" in out
    assert all(line.startswith("    ") for line in out.splitlines())


def test_top_level_message_is_not_marked_as_thread_or_broadcast() -> None:
    """A post is neither indented nor marked as a thread reply or broadcast."""
    out = show("hello", [])
    assert out.startswith("╭")
    assert "↳" not in out
    assert "also sent" not in out


def test_digest_in_the_terminal() -> None:
    """A digest shows its header and one line per task."""
    message = digest([(TASK, "cache-prod"), (TASK, None)], now=NOW)
    out = show(message.text, message.blocks, kind="digest")
    assert "#C0123 · digest" in out
    assert "🔔 2 new DCS tasks" in out
    assert out.count("8abf6e1e72c12e7c0172c15b508500aa") == 2


def test_text_is_shown_when_there_are_no_blocks() -> None:
    """A message without blocks shows its text, with mrkdwn applied."""
    out = show(":x: *Task* failed on <https://example.com|cache-prod>", [])
    assert "❌ Task failed on cache-prod" in out


def test_odd_blocks_are_skipped_without_error() -> None:
    """Unknown block types and malformed blocks are skipped; known ones still show."""
    blocks: list[dict[str, Any]] = [
        {"type": "image", "image_url": "https://example.com/x.png"},
        {"type": "section"},
        {"type": "section", "fields": "not a list"},
        {"type": "context", "elements": [None, {"type": "image"}]},
        {"type": "header", "text": {"type": "plain_text", "text": "Still here"}},
        {"type": "divider"},
    ]
    out = show("fallback", blocks)
    assert "Still here" in out
    assert "fallback" not in out


def test_rich_markup_in_values_is_shown_literally() -> None:
    """Square brackets in a message are text, not rich markup."""
    out = show("[bold red]x[/bold red] [link=https://e]y[/link]", [], channel="[red]C1")
    assert "[bold red]x[/bold red] [link=https://e]y[/link]" in out
    assert "#[red]C1" in out


@pytest.mark.parametrize(
    ("mrkdwn", "plain"),
    [
        ("*bold* and _italic_ and ~gone~ and `code`", "bold and italic and gone and code"),
        ("dcs_000_02 and 2*3*4", "dcs_000_02 and 2*3*4"),
        ("&lt;b&gt; &amp;lt; &amp;", "<b> &lt; &"),
        (
            "<!date^1592381886^{date_short_pretty} {time}|2020-06-17 08:18 UTC>",
            "2020-06-17 08:18 UTC",
        ),
        ("<@U123> <#C123|general> <#C9> <!here>", "@U123 #general #C9 @here"),
        ("<https://example.com> <https://example.com|site>", "https://example.com site"),
        (":white_check_mark: :x: :no_such_emoji: 08:18:06", "✅ ❌ :no_such_emoji: 08:18:06"),
    ],
)
def test_mrkdwn_to_text(mrkdwn: str, plain: str) -> None:
    """Slack mrkdwn becomes plain terminal text: markers dropped, tokens resolved, unescaped."""
    assert mrkdwn_to_text(mrkdwn).plain == plain


def test_mrkdwn_styles() -> None:
    """``*bold*`` becomes rich bold and ``_italic_`` rich italic, on exactly those words."""
    text = mrkdwn_to_text("a *b* _c_ d")
    styled = {(text.plain[span.start : span.end], str(span.style)) for span in text.spans}
    assert styled == {("b", "bold"), ("c", "italic")}
