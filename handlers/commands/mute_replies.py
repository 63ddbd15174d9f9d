"""The replies of ``mute``, ``unmute``, ``mutes`` and ``report``. ``mute`` and ``unmute`` are
announced in the channel (an :class:`Announcement`); the others are ephemeral."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.slack.blocks import context, date_token, esc, section
from bot.slack.render import Message
from bot.slack.summaries import mute_target
from handlers.commands.parse import quote
from handlers.commands.replies import notice
from state.base import Mute


@dataclass(frozen=True)
class Announcement(Message):
    """A reply the whole channel sees (``response_type: in_channel``)."""

    in_channel: bool = True


def _announce(line: str, note: str) -> Announcement:
    plain = line.replace("*", "").replace("`", "")
    return Announcement(text=plain, blocks=[section(line), context(note)])


def muted(mute: Mute, names: Mapping[str, str]) -> Announcement:
    """The announcement of a new mute."""
    why = f": {esc(mute.reason)}" if mute.reason else ""
    line = (
        f":mute: <@{esc(mute.created_by)}> muted {mute_target(mute, names)} until "
        f"{date_token(mute.ends_at)} (mute {mute.id}){why}"
    )
    note = (
        "Its alerts are recorded, not posted; each channel gets a summary when it ends. "
        f"End it early with `/dcs-tasks unmute {mute.id}`."
    )
    return _announce(line, note)


def unmuted(ended: Sequence[Mute], names: Mapping[str, str], user_id: str) -> Announcement:
    """The announcement of ``unmute``."""
    what = ", ".join(f"mute {m.id} of {mute_target(m, names)}" for m in ended[:10])
    if len(ended) > 10:
        what += f" and {len(ended) - 10} more"
    line = f":bell: <@{esc(user_id)}> ended {what}."
    return _announce(line, "Alerts flow again; the summary of what was held back follows.")


def nothing_to_unmute(target: str) -> Message:
    """``unmute`` of something that is not muted."""
    return notice(f"Nothing matching {quote(target)} is muted; see `/dcs-tasks mutes`.")


def mute_lines(mutes: Sequence[Mute], names: Mapping[str, str]) -> list[str]:
    """One line per mute: what, until when, by whom and why."""
    lines = []
    for mute in mutes:
        line = (
            f"• Mute {mute.id}: {mute_target(mute, names)} until {date_token(mute.ends_at)}"
            f" · by <@{esc(mute.created_by)}>"
        )
        if mute.reason:
            line += f": {esc(mute.reason)}"
        lines.append(line)
    return lines


def mute_list(mutes: Sequence[Mute], names: Mapping[str, str]) -> Message:
    """``mutes``: the mutes in force."""
    if not mutes:
        return notice("No mute is in force. Add one with `/dcs-tasks mute INSTANCE|* for:2h`.")
    lines = mute_lines(mutes, names)
    head = f":mute: {len(mutes)} mute(s) in force:"
    blocks = [section(head)]
    for start in range(0, min(len(lines), 40 * 15), 15):
        blocks.append(section("\n".join(lines[start : start + 15])))
    text = "\n".join([head, *(line.replace("*", "") for line in lines[:15])])
    return Message(text=text[:3000], blocks=blocks[:50])
