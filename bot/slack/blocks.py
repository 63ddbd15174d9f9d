"""Block Kit building blocks and Slack's text limits.

Shared by the alerts (:mod:`bot.slack.render`) and the slash-command replies. Every builder clips
its text to Slack's limit, counted conservatively in UTF-16 code units, and never inside an ``&…;``
entity or a ``<…>`` token; :func:`esc` makes a value from DCS or a user safe for mrkdwn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

#: Slack Block Kit limits (counted, conservatively, in UTF-16 code units).
MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_VALUE = 2000
MAX_TEXT = 3000  # the notification fallback; Slack truncates far later, readers much earlier
MAX_VALUE = 500  # one value from DCS, once escaped: the default clip of esc()

_DATE_TOKEN = re.compile(r"<!date\^[^|>]*\|([^>]*)>")


def esc(value: object, limit: int = MAX_VALUE) -> str:
    """``value`` as mrkdwn text: lone surrogates replaced, ``&``/``<``/``>`` escaped, then clipped
    to ``limit`` units."""
    escaped = _clean(str(value)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return fit(escaped, limit)


def units(text: str) -> int:
    """Length as Slack may count it: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` units with an ellipsis, never inside an entity or ``<…>`` token."""
    if units(text) <= limit:
        return text
    used, end = 0, len(text)
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit - 1:
            end = index
            break
    cut = text[:end]
    for opener, closer in (("&", ";"), ("<", ">")):
        start = cut.rfind(opener)
        if start != -1 and closer not in cut[start:]:
            cut = cut[:start]
    return cut + "…"


def date_token(when: datetime) -> str:
    """A Slack date token: shown in the reader's time zone, with a UTC fallback elsewhere."""
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{_fallback(when)}>"


def date_fallback(text: str) -> str:
    """``text`` with every Slack date token replaced by its fallback (for plain text)."""
    return _DATE_TOKEN.sub(r"\1", text)


def header(text: str) -> dict[str, Any]:
    """A header block: plain text, clipped to ``MAX_HEADER``."""
    return {"type": "header", "text": {"type": "plain_text", "text": fit(_clean(text), MAX_HEADER)}}


def section(text: str) -> dict[str, Any]:
    """A section block of mrkdwn, clipped to ``MAX_SECTION_TEXT``."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text, MAX_SECTION_TEXT)}}


def packed_sections(
    lines: Iterable[str], *, budget: int, separator: str = "\n"
) -> tuple[list[str], int]:
    """``lines`` packed into at most ``budget`` section texts within Slack's limit, in order:
    (the texts, how many lines they hold). Lines that do not fit are left for "and N more"."""
    sections: list[str] = []
    listed = 0
    for line in lines:
        if sections and units(sections[-1]) + units(separator) + units(line) <= MAX_SECTION_TEXT:
            sections[-1] += separator + line
        elif len(sections) < budget:
            sections.append(line)
        else:
            break
        listed += 1
    return sections, listed


def field_sections(facts: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """(label, mrkdwn value) pairs as two-column section fields, ``MAX_FIELDS`` per section."""
    fields = [
        {"type": "mrkdwn", "text": fit(f"*{label}*\n{value}", MAX_FIELD_TEXT)}
        for label, value in facts
    ]
    return [
        {"type": "section", "fields": fields[i : i + MAX_FIELDS]}
        for i in range(0, len(fields), MAX_FIELDS)
    ]


def context(*texts: str) -> dict[str, Any]:
    """A context block, one mrkdwn element per text (the first ``MAX_CONTEXT_ELEMENTS``)."""
    elements = [
        {"type": "mrkdwn", "text": fit(text, MAX_SECTION_TEXT)}
        for text in texts[:MAX_CONTEXT_ELEMENTS]
    ]
    return {"type": "context", "elements": elements}


def _fallback(when: datetime) -> str:
    try:
        return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except OverflowError:  # a time at the very edge of the calendar, in a zone east or west
        return when.strftime("%Y-%m-%d %H:%M %z")


def _clean(text: str) -> str:
    """``text`` with lone surrogates (possible in JSON, refused by Slack) replaced by ``?``."""
    return text.encode("utf-8", "replace").decode("utf-8")
