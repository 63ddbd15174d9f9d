"""The bot's health, from what the poller records: the facts behind ``/healthz`` and ``status``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.slack.channels import FAILING_KEY, read_failing
from state.base import StateError, StateStore

logger = logging.getLogger(__name__)

#: A poll cycle is late once the last success is this many intervals old.
LATE_AFTER_INTERVALS = 3


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _last_error(value: object) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {"at": value.get("at"), "message": value.get("message")}


def health_report(
    store: StateStore, *, poll_interval: int, started_at: datetime, now: datetime, version: str
) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body of ``/healthz``.

    200 while the last successful cycle is younger than 3 poll intervals, or while this process
    started less than 3 intervals ago and has not completed a cycle yet (the first is still due);
    503 otherwise, and when the state store cannot be read. ``deliveries_failing`` counts the
    channels the bot can no longer post to (a count only: the channels are in ``status``).
    """
    late_after = timedelta(seconds=LATE_AFTER_INTERVALS * poll_interval)
    body: dict[str, Any] = {
        "status": "ok",
        "last_success_at": None,
        "last_error": None,
        "pending_deliveries": None,
        "deliveries_failing": None,
        "version": version,
        "poll_interval": poll_interval,
    }
    try:
        last_success = _parse_iso(store.get_meta("last_success_at"))
        body["last_error"] = _last_error(store.get_meta("last_error"))
        body["pending_deliveries"] = store.count_pending()
        body["deliveries_failing"] = len(read_failing(store.get_meta(FAILING_KEY)))
    except StateError as exc:
        logger.warning("health: the state store cannot be read (%s)", type(exc).__name__)
        body["status"] = "state_unavailable"
        return 503, body
    body["last_success_at"] = last_success.isoformat() if last_success else None
    if last_success is not None and now - last_success < late_after:
        return 200, body
    first_due = last_success is None or last_success < started_at
    if first_due and now - started_at < late_after:
        body["status"] = "starting"
        return 200, body
    body["status"] = "late"
    return 503, body
