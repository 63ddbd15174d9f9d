"""A terminal sink for Slack messages (``demo``, ``poll --dry-run``): Block Kit shown with rich."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.emoji import Emoji
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

_SLACK_TOKEN = re.compile(r"<([^<>]*)>")
_STYLED = re.compile(
    r"(?<!\w)\*(?P<bold>[^*\n]+)\*(?!\w)"
    r"|(?<!\w)_(?P<italic>[^_\n]+)_(?!\w)"
    r"|(?<!\w)~(?P<strike>[^~\n]+)~(?!\w)"
    r"|`(?P<code>[^`\n]+)`"
)
_STYLES = {"bold": "bold", "italic": "italic", "strike": "strike", "code": "cyan"}


def render_to_console(
    console: Console,
    *,
    channel: str,
    kind: str,
    text: str,
    blocks: Sequence[Mapping[str, Any]],
    thread_of: str | None = None,
    broadcast: bool = False,
) -> None:
    """Print one Slack message (post, update, reply or digest) to ``console`` as a panel."""
    parts: list[RenderableType] = [part for block in blocks for part in _block(block)]
    if not parts:
        parts.append(mrkdwn_to_text(text))
    title = Text(f"#{channel} · {kind}", style="bold")
    if thread_of is not None:
        title.append(f" · ↳ in thread {thread_of}")
    if broadcast:
        title.append(" · also sent to the channel")
    panel = Panel(Group(*parts), title=title, title_align="left")
    console.print(Padding(panel, (0, 0, 0, 4)) if thread_of is not None else panel)


def mrkdwn_to_text(mrkdwn: str) -> Text:
    """Slack mrkdwn as rich Text: ``*bold*`` etc. styled, dates as their fallback, emoji codes
    as emoji, ``&amp;``/``&lt;``/``&gt;`` unescaped."""
    plain = _unescape(Emoji.replace(_SLACK_TOKEN.sub(_token, mrkdwn)))
    out = Text()
    position = 0
    for match in _STYLED.finditer(plain):
        out.append(plain[position : match.start()])
        kind = match.lastgroup or "code"
        out.append(match.group(kind), style=_STYLES[kind])
        position = match.end()
    out.append(plain[position:])
    return out


def _block(block: Mapping[str, Any]) -> list[RenderableType]:
    kind = block.get("type")
    if kind == "header":
        return [Text(Emoji.replace(_text_of(block.get("text"))), style="bold underline")]
    if kind == "section":
        parts: list[RenderableType] = []
        if text := _text_of(block.get("text")):
            parts.append(mrkdwn_to_text(text))
        fields = [mrkdwn_to_text(_text_of(f)) for f in _list(block.get("fields"))]
        if fields:
            grid = Table.grid(expand=True, padding=(0, 2))
            grid.add_column(ratio=1)
            grid.add_column(ratio=1)
            for i in range(0, len(fields), 2):
                grid.add_row(*fields[i : i + 2])
            parts.append(grid)
        return parts
    if kind == "context":
        line = Text(" · ").join(mrkdwn_to_text(_text_of(e)) for e in _list(block.get("elements")))
        line.stylize("dim")
        return [line]
    if kind == "actions":
        labels = [f"[{_text_of(e.get('text'))}]" for e in _list(block.get("elements"))]
        return [Text(" ".join(labels), style="bold blue")]
    if kind == "divider":
        return [Rule(style="dim")]
    return []


def _token(match: re.Match[str]) -> str:
    """One ``<…>`` Slack token as plain text: a date's fallback, a link's label, a mention."""
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("!date^"):
        return label or target
    if target.startswith("!"):
        return "@" + target[1:]
    if target[:1] in "@#":
        return f"{target[0]}{label}" if label else target
    return label or target


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text_of(value: object) -> str:
    """The ``text`` of a Block Kit text object (or the string itself)."""
    if isinstance(value, Mapping):
        value = value.get("text")
    return value if isinstance(value, str) else ""


def _list(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []
