"""Tests for bot.slack.blocks: escaping, clipping in UTF-16 units, dates and block builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.slack.blocks import (
    MAX_CONTEXT_ELEMENTS,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_HEADER,
    MAX_SECTION_TEXT,
    MAX_VALUE,
    context,
    date_fallback,
    date_token,
    esc,
    field_sections,
    fit,
    header,
    section,
    units,
)

WHEN = datetime(2020, 6, 17, 8, 18, 6, tzinfo=UTC)
EPOCH = int(WHEN.timestamp())
TOKEN = f"<!date^{EPOCH}^{{date_short_pretty}} {{time}}|2020-06-17 08:18 UTC>"


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        ("a<b>&c", "a&lt;b&gt;&amp;c"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("&amp;", "&amp;amp;"),
        ("a\ud800b", "a?b"),
        (None, "None"),
        (6379, "6379"),
    ],
)
def test_esc_escapes_for_mrkdwn(value: object, escaped: str) -> None:
    """``&``, ``<`` and ``>`` are escaped, lone surrogates become ``?``, non-strings are str()."""
    assert esc(value) == escaped


@pytest.mark.parametrize(
    ("value", "limit", "escaped"),
    [
        ("x" * MAX_VALUE, MAX_VALUE, "x" * MAX_VALUE),
        ("x" * 600, MAX_VALUE, "x" * (MAX_VALUE - 1) + "…"),
        ("x" * 400, 300, "x" * 299 + "…"),
        ("&" * 100, 12, "&amp;&amp;…"),
        ("<" * 3, 12, "&lt;&lt;&lt;"),
    ],
)
def test_esc_clips_the_escaped_value(value: str, limit: int, escaped: str) -> None:
    """The escaped value is clipped to the limit (``MAX_VALUE`` by default), never mid-entity."""
    assert (esc(value) if limit == MAX_VALUE else esc(value, limit)) == escaped


@pytest.mark.parametrize(
    ("text", "count"),
    [("", 0), ("abc", 3), ("é", 1), ("\U0001f600", 2), ("a\U0001f600b", 4), ("\ud800", 1)],
)
def test_units_counts_utf16_code_units(text: str, count: int) -> None:
    """Length is counted as Slack may count it: characters outside the BMP count twice."""
    assert units(text) == count


@pytest.mark.parametrize(
    ("text", "limit", "fitted"),
    [
        ("abc", 3, "abc"),
        ("abcd", 3, "ab…"),
        ("\U0001f600" * 3, 4, "\U0001f600…"),
        ("\U0001f600" * 3, 6, "\U0001f600" * 3),
        ("a&amp;b", 4, "a…"),
        ("a&amp;b", 7, "a&amp;b"),
        ("a&amp;bc", 7, "a&amp;…"),
        ("ab<!date^1^x|y>", 6, "ab…"),
        ("ab<@U1> and more", 9, "ab<@U1> …"),
    ],
)
def test_fit_clips_with_an_ellipsis(text: str, limit: int, fitted: str) -> None:
    """Text over the limit is cut with "…", in UTF-16 units, never inside an entity or token."""
    assert fit(text, limit) == fitted


@given(text=st.text(alphabet=st.sampled_from("ab&;<>\U0001f600é")), limit=st.integers(1, 40))
def test_fit_always_stays_within_the_limit(text: str, limit: int) -> None:
    """Any text fits its limit and is either unchanged or a prefix ending in "…"."""
    fitted = fit(text, limit)
    assert units(fitted) <= limit
    assert fitted == text or (fitted.endswith("…") and text.startswith(fitted[:-1]))


@pytest.mark.parametrize(
    ("when", "token"),
    [
        (WHEN, TOKEN),
        (WHEN.astimezone(timezone(timedelta(hours=8))), TOKEN),
        (
            datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))),
            "<!date^253402318740^{date_short_pretty} {time}|9999-12-31 23:59 -0500>",
        ),
    ],
)
def test_date_token(when: datetime, token: str) -> None:
    """A date token carries the epoch and a UTC fallback (the own offset at the calendar's edge)."""
    assert date_token(when) == token


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        (TOKEN, "2020-06-17 08:18 UTC"),
        (f"Started {TOKEN} by <@U1>", "Started 2020-06-17 08:18 UTC by <@U1>"),
        (f"{TOKEN} · {TOKEN}", "2020-06-17 08:18 UTC · 2020-06-17 08:18 UTC"),
        ("`id` &lt;x&gt;", "`id` &lt;x&gt;"),
    ],
)
def test_date_fallback_replaces_every_date_token(text: str, plain: str) -> None:
    """Every date token in a text becomes its fallback; everything else is left as it is."""
    assert date_fallback(text) == plain


def test_header_is_plain_text_clipped_and_sendable() -> None:
    """A header is plain text within ``MAX_HEADER``, lone surrogates replaced."""
    assert header("a\ud800") == {"type": "header", "text": {"type": "plain_text", "text": "a?"}}
    long = header("h" * 500)["text"]["text"]
    assert long == "h" * (MAX_HEADER - 1) + "…"


def test_section_is_mrkdwn_clipped() -> None:
    """A section holds one mrkdwn text within ``MAX_SECTION_TEXT``."""
    assert section("*hi*") == {"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}
    assert units(section("s" * 5000)["text"]["text"]) == MAX_SECTION_TEXT


def test_context_has_one_element_per_text_up_to_the_limit() -> None:
    """A context block has one mrkdwn element per text, at most ``MAX_CONTEXT_ELEMENTS``."""
    assert context("a", "b") == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "a"}, {"type": "mrkdwn", "text": "b"}],
    }
    many = context(*(str(n) for n in range(25)), "c" * 5000)["elements"]
    assert [e["text"] for e in many] == [str(n) for n in range(MAX_CONTEXT_ELEMENTS)]
    assert units(context("c" * 5000)["elements"][0]["text"]) == MAX_SECTION_TEXT


def test_field_sections_pack_labelled_facts() -> None:
    """Facts become "*label*\\nvalue" fields, ``MAX_FIELDS`` per section, each clipped."""
    facts = [(f"L{n}", f"v{n}") for n in range(23)] + [("Long", "x" * 5000)]
    sections = field_sections(facts)
    assert [len(s["fields"]) for s in sections] == [MAX_FIELDS, MAX_FIELDS, 4]
    assert sections[0]["fields"][0] == {"type": "mrkdwn", "text": "*L0*\nv0"}
    assert all(s["type"] == "section" for s in sections)
    assert units(sections[-1]["fields"][-1]["text"]) == MAX_FIELD_TEXT
    assert field_sections([]) == []
