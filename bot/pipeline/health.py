"""The bot's health, from what the poller records: the facts behind ``/readyz`` (= ``/healthz``)
and ``status``; ``/readyz`` shows them without error text and answers in time whatever the
store does."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.dcs.models import parse_time
from bot.slack.channels import FAILING_KEY, read_failing
from state.base import StateError, StateStore

logger = logging.getLogger(__name__)

#: The meta key of the last cycle's timing: when, how long, whether it overran the interval.
CYCLE_KEY = "last_cycle"

#: A poll cycle is late once the last success is this many intervals old.
LATE_AFTER_INTERVALS = 3


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
        "last_cycle_seconds": None,
        "cycle_overran": None,
        "version": version,
        "poll_interval": poll_interval,
    }
    try:
        last_success = parse_time(store.get_meta("last_success_at"))
        body["last_error"] = _last_error(store.get_meta("last_error"))
        body["pending_deliveries"] = store.count_pending()
        body["deliveries_failing"] = len(read_failing(store.get_meta(FAILING_KEY)))
        timing = store.get_meta(CYCLE_KEY)
        if isinstance(timing, dict):
            body["last_cycle_seconds"] = timing.get("seconds")
            body["cycle_overran"] = bool(timing.get("overran"))
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


#: What ``/readyz`` shows anyone: facts and counts, never error text, IDs or names.
PUBLIC_FIELDS = (
    "status",
    "last_success_at",
    "last_cycle_failed",
    "pending_deliveries",
    "deliveries_failing",
    "last_cycle_seconds",
    "cycle_overran",
    "version",
    "poll_interval",
)

Verdict = tuple[int, dict[str, Any]]


def public_view(code: int, report: dict[str, Any]) -> Verdict:
    """``health_report``'s answer for a public endpoint: the last error becomes whether the
    last cycle failed (its text may name projects and instances: that is for ``status``)."""
    body = {key: report.get(key) for key in PUBLIC_FIELDS}
    error = report.get("last_error")
    error_at = parse_time(error.get("at")) if isinstance(error, dict) else None
    success_at = parse_time(report.get("last_success_at"))
    body["last_cycle_failed"] = error_at is not None and (
        success_at is None or error_at >= success_at
    )
    return code, body


class _Run:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.verdict: Verdict | None = None


class ReadinessProbe:
    """Runs ``check`` in a worker thread and answers within ``timeout`` seconds.

    When the check has not answered in time (a database that hangs), the answer is 503
    ``state_unavailable`` with the last facts known (``stale: true``). At most one check runs at
    a time: requests meanwhile wait for the same one, so a hanging store never piles up threads.
    """

    def __init__(self, check: Callable[[], Verdict], *, timeout: float = 0.4) -> None:
        self._check = check
        self._timeout = timeout
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._last: dict[str, Any] = {}

    def __call__(self) -> Verdict:
        """The verdict of a check, fresh if it came in time, else the stale one."""
        with self._lock:
            run = self._run
            if run is None or run.done.is_set():
                run = self._run = _Run()
                threading.Thread(target=self._work, args=(run,), name="readyz", daemon=True).start()
        if run.done.wait(self._timeout) and run.verdict is not None:
            return run.verdict
        logger.warning("readiness: the state store did not answer within %.1f s", self._timeout)
        body = dict(self._last)
        body.update(status="state_unavailable", stale=True)
        return 503, body

    def _work(self, run: _Run) -> None:
        try:
            code, body = self._check()
        except Exception:
            logger.exception("readiness check failed")
            code, body = 503, {"status": "error"}
        run.verdict = (code, body)
        with self._lock:
            self._last = body
        run.done.set()
