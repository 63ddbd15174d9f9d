"""Who may use ``/dcs-tasks`` and its buttons, and who may change subscriptions.

Each rule that is set must pass (channel AND user); an unset rule is no limit. Admins
(``DCS_ADMIN_USERS``) count as allowed users. A refusal is one line that says who may.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.config import Settings

_MENTION_MAX = 10

CHANNEL_REFUSAL = (
    "/dcs-tasks is not enabled in this channel; ask an admin to add it to DCS_ALLOWED_CHANNELS."
)


def _mentions(users: Sequence[str]) -> str:
    unique = list(dict.fromkeys(users))
    shown = ", ".join(f"<@{user}>" for user in unique[:_MENTION_MAX])
    rest = len(unique) - _MENTION_MAX
    return f"{shown} and {rest} more" if rest > 0 else shown


def query_refusal(settings: Settings, *, user_id: str, channel_id: str) -> str | None:
    """Why ``user_id`` may not query in ``channel_id``, or None when they may."""
    if settings.allowed_channels and channel_id not in settings.allowed_channels:
        return CHANNEL_REFUSAL
    allowed = (*settings.allowed_users, *settings.admin_users)
    if settings.allowed_users and user_id not in allowed:
        return f"Only {_mentions(allowed)} may use /dcs-tasks."
    return None


def admin_refusal(settings: Settings, *, user_id: str) -> str | None:
    """Why ``user_id`` may not change subscriptions or mutes, or None when they may."""
    if settings.admin_users and user_id not in settings.admin_users:
        return f"Only {_mentions(settings.admin_users)} may change subscriptions and mutes."
    return None
