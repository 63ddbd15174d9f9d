"""What may go into a DCS URL as an ID: letters, digits and ``-``, nothing else.

Instance IDs are UUIDs and task IDs hex strings; anything else (``../``, ``?``, ``%2F``, spaces)
is refused before a URL is built, whoever supplied it (a forged button value, a typed command).
"""

from __future__ import annotations

import re

from bot.dcs.errors import DcsInvalidIdError

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


def is_dcs_id(value: object) -> bool:
    """True when ``value`` has the shape of a DCS instance, task or project ID."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def checked_id(value: str, what: str) -> str:
    """``value`` when it may go into a DCS URL; else DcsInvalidIdError (nothing is sent)."""
    if not is_dcs_id(value):
        raise DcsInvalidIdError(f"refusing a malformed {what} (not a DCS ID); nothing was sent")
    return value
