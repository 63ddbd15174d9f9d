"""Channels the bot can no longer post to, as delivery found them (``channel_not_found``,
``not_in_channel``, ``is_archived``). Kept in the state store's meta, so ``/dcs-tasks status``
and the health report of any process can show them; a later successful delivery clears one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from state.base import StateStore

#: The meta key: ``{channel: {"error": ..., "since": ISO time}}``.
FAILING_KEY = "failing_channels"


@dataclass(frozen=True, slots=True)
class FailingChannel:
    """A channel whose deliveries fail finally, since when, and Slack's error."""

    channel: str
    error: str
    since: str | None


def read_failing(value: Any) -> dict[str, FailingChannel]:
    """The failing channels in a stored meta value (anything malformed is left out)."""
    if not isinstance(value, dict):
        return {}
    found = {}
    for channel, fact in value.items():
        if isinstance(channel, str) and isinstance(fact, dict):
            error, since = fact.get("error"), fact.get("since")
            found[channel] = FailingChannel(
                channel,
                error if isinstance(error, str) else "unknown error",
                since if isinstance(since, str) else None,
            )
    return found


def as_meta(failing: dict[str, FailingChannel]) -> dict[str, Any]:
    """The meta value of ``failing``."""
    return {f.channel: {"error": f.error, "since": f.since} for f in failing.values()}


def failing_channels(store: StateStore) -> list[FailingChannel]:
    """The channels the bot cannot post to, as last recorded, oldest failure first."""
    found = read_failing(store.get_meta(FAILING_KEY))
    return sorted(found.values(), key=lambda f: (f.since or "", f.channel))


def clear_failing(store: StateStore, channel: str) -> bool:
    """Forget that ``channel`` fails (its subscriptions are gone); False when it was not listed."""
    found = read_failing(store.get_meta(FAILING_KEY))
    if found.pop(channel, None) is None:
        return False
    store.set_meta(FAILING_KEY, as_meta(found))
    return True


def failing_since(now: datetime) -> str:
    """How the time a channel started failing is stored."""
    return now.isoformat(timespec="seconds")
