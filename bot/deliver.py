"""Delivery: drain the outbox into Slack, in order per channel, at least once.

Every failure is classified in one place (``classify``): *retryable* ones (network, HTTP 5xx,
rate limits, Slack's transient ``ok: false`` errors) stay in the outbox with a backed-off
``next_try_at``; *final* ones (``channel_not_found``, ``invalid_auth``...) are logged and dropped.
A delivery is removed only after Slack answered ok, so a crash between Slack's answer and
``StateStore.delivery_done`` sends it again on the next drain: a possible duplicate message is
the price of never losing one (at-least-once).
"""

from __future__ import annotations

import http.client
import logging
import math
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, FixedValueRetryIntervalCalculator
from slack_sdk.web import SlackResponse

from state.base import Delivery, StateStore

__all__ = [
    "FINAL_ERRORS",
    "RETRYABLE_ERRORS",
    "Deliverer",
    "DrainReport",
    "Outcome",
    "classify",
    "make_web_client",
]

log = logging.getLogger("bot.deliver")

#: ``ok: false`` errors that say "try again later".
RETRYABLE_ERRORS = frozenset(
    {
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "ratelimited",
        "rate_limited",
    }
)

#: ``ok: false`` errors that will not go away by retrying (any other unknown error is final too).
FINAL_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "restricted_action",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "thread_not_found",
        "unknown_method",
    }
)

_RATE_LIMITED = frozenset({"ratelimited", "rate_limited"})
_TOKEN = re.compile(r"xox[a-zA-Z]-[A-Za-z0-9-]+")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one Slack call came to, and why: ``ok``, ``retry`` later, or ``final`` (drop)."""

    kind: Literal["ok", "retry", "final"]
    reason: str
    retry_after: float | None = None


@dataclass(slots=True)
class DrainReport:
    """What one ``Deliverer.drain`` did.

    ``retried`` counts deliveries left for a later try: those that failed and those held back
    behind an earlier failed delivery to the same channel.
    """

    sent: int = 0
    retried: int = 0
    dropped: int = 0
    waited_seconds: float = 0.0


def _redact(text: str) -> str:
    return _TOKEN.sub("[redacted]", text)[:200]


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # URLError wraps the socket error
    detail = reason if reason is not None else exc
    return _redact(f"{type(exc).__name__}: {detail}")


def classify(exc: BaseException | None, response: SlackResponse | None) -> Outcome:
    """Classify the result of one Slack Web API call: the call's exception, or its response.

    Retryable: network errors, HTTP 5xx and 408, HTTP 429 or ``ratelimited`` (``retry_after``
    from ``Retry-After``, at least 1 s), and ``RETRYABLE_ERRORS``. Final: ``FINAL_ERRORS``, any
    other ``ok: false`` error or 4xx, and unexpected exceptions (a bug is not fixed by retrying).
    """
    if isinstance(exc, SlackApiError):
        response = exc.response
        exc = None
    if exc is not None:
        if isinstance(exc, OSError | http.client.HTTPException):
            return Outcome("retry", f"network: {_describe(exc)}")
        return Outcome("final", f"unexpected: {type(exc).__name__}")
    if response is None:
        raise ValueError("classify needs an exception or a response")

    status = response.status_code
    data = response.data if isinstance(response.data, dict) else {}
    error = _redact(str(data.get("error") or ""))
    retry_after = _retry_after(response.headers)
    if status == 429 or error in _RATE_LIMITED:
        return Outcome("retry", "ratelimited", max(1.0, retry_after or 0.0))
    if status >= 500 or status == 408:
        reason = f"http {status}" + (f" {error}" if error else "")
        return Outcome("retry", reason, retry_after)
    if status == 200 and (isinstance(response.data, bytes) or data.get("ok") is True):
        return Outcome("ok", "ok")
    if error in RETRYABLE_ERRORS:
        return Outcome("retry", error, retry_after)
    if error in FINAL_ERRORS:
        return Outcome("final", error)
    if error:
        return Outcome("final", f"{error} (unrecognised error)")
    return Outcome("final", f"http {status} without an error code")


def make_web_client(
    token: str,
    base_url: str,
    *,
    timeout: float = 10.0,
    connection_retries: int = 1,
    retry_interval: float = 1.0,
) -> WebClient:
    """A ``WebClient`` for delivery: ``timeout`` seconds per request, network hiccups retried.

    Retry choice: only slack-sdk's ``ConnectionErrorRetryHandler`` runs inside the call
    (``connection_retries`` quick retries after ``retry_interval`` s, for a reset keep-alive or
    a dropped connection). Rate limits and 5xx are *not* retried in the client: its
    ``RateLimitErrorRetryHandler`` sleeps the full ``Retry-After`` with an uninjectable
    ``time.sleep`` and no upper bound, and a 5xx retry would hold the drain thread. Instead they
    come back to ``Deliverer``, which waits out a ``Retry-After`` up to its budget (injectable,
    interruptible by ``stop``) and leaves anything else in the outbox with a backed-off
    ``next_try_at``, where it survives restarts and shows in ``count_pending``.
    """
    handler = ConnectionErrorRetryHandler(
        max_retry_count=connection_retries,
        interval_calculator=FixedValueRetryIntervalCalculator(retry_interval),
    )
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=max(1, math.ceil(timeout)),  # slack-sdk takes whole seconds
        retry_handlers=[handler],
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Deliverer:
    """Sends due outbox items to Slack and records the result of each in the store."""

    def __init__(
        self,
        client: WebClient,
        store: StateStore,
        *,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], object] | None = None,
        backoff_base: float = 30.0,
        backoff_max: float = 900.0,
        max_rate_limit_wait: float = 120.0,
        rng: random.Random | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """``sleep`` waits out rate limits; by default it waits on ``stop``, so a stop request
        cuts a wait short. ``max_rate_limit_wait`` bounds the total waiting of one drain."""
        self._client = client
        self._store = store
        self._clock = clock
        self._stop = stop if stop is not None else threading.Event()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._stop.wait
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_wait = max_rate_limit_wait
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()  # one drain at a time
        # channel -> (next try, id) of its delivery that failed retryably; later ones wait for it
        self._held: dict[str, tuple[datetime, int]] = {}

    def drain(self) -> DrainReport:
        """Deliver everything due, oldest first, until nothing is due or ``stop`` is set.

        Per channel, order is kept: after a retryable failure, the channel's later deliveries
        (in this drain and the following ones) are held back until the failed one's next try,
        so an update never overtakes its post.
        """
        with self._lock:
            report = DrainReport()
            seen: set[int] = set()
            while not self._stop.is_set():
                now = self._clock()
                due = [d for d in self._store.pending_deliveries(now) if d.id not in seen]
                if not due:
                    break
                for delivery in due:
                    if self._stop.is_set():
                        break
                    seen.add(delivery.id)
                    hold = self._held.get(delivery.channel)
                    if hold is not None and hold[1] != delivery.id and hold[0] > self._clock():
                        self._hold_back(delivery, *hold)
                        report.retried += 1
                        continue
                    self._held.pop(delivery.channel, None)
                    next_try = self._deliver(delivery, report)
                    if next_try is not None:
                        self._held[delivery.channel] = (next_try, delivery.id)
            return report

    def _hold_back(self, delivery: Delivery, next_try: datetime, behind: int) -> None:
        self._store.delivery_failed(
            delivery.id, f"held back behind delivery {behind} to the same channel", next_try
        )

    def _deliver(self, delivery: Delivery, report: DrainReport) -> datetime | None:
        """Send one delivery and record the outcome; return its next try when it must wait."""
        outcome, ts = self._send(delivery, report)
        what = f"delivery {delivery.id} ({delivery.kind} to {delivery.channel})"
        if outcome.kind == "ok":
            self._store.delivery_done(delivery.id, ts)
            report.sent += 1
            return None
        if outcome.kind == "final":
            log.error("dropping %s: Slack error %s", what, outcome.reason)
            self._store.delivery_failed(delivery.id, outcome.reason, None)
            report.dropped += 1
            return None
        next_try = self._clock() + timedelta(seconds=self._retry_delay(delivery, outcome))
        log.warning(
            "%s failed (attempt %d): %s; next try at %s",
            what,
            delivery.attempts + 1,
            outcome.reason,
            next_try.isoformat(timespec="seconds"),
        )
        self._store.delivery_failed(delivery.id, outcome.reason, next_try)
        report.retried += 1
        return next_try

    def _retry_delay(self, delivery: Delivery, outcome: Outcome) -> float:
        if outcome.reason == "ratelimited" and outcome.retry_after is not None:
            return outcome.retry_after
        ceiling = min(self._backoff_max, self._backoff_base * 2 ** min(delivery.attempts, 30))
        backoff = self._rng.uniform(ceiling / 2, ceiling)  # "equal jitter"
        return max(backoff, outcome.retry_after or 0.0)

    def _send(self, delivery: Delivery, report: DrainReport) -> tuple[Outcome, str | None]:
        """Make the delivery's Slack call, waiting out rate limits within the drain's budget."""
        while True:
            outcome, ts = self._call(delivery)
            if outcome.kind != "retry" or outcome.reason != "ratelimited":
                return outcome, ts
            wait = outcome.retry_after or 1.0
            if report.waited_seconds + wait > self._max_wait or self._stop.is_set():
                return outcome, ts
            log.info("Slack rate limit on %s: waiting %.0f s", delivery.channel, wait)
            self._sleep(wait)
            report.waited_seconds += wait
            if self._stop.is_set():
                return outcome, ts

    def _call(self, delivery: Delivery) -> tuple[Outcome, str | None]:
        """One Slack call; the ``ts`` returned is what ``delivery_done`` should remember."""
        blocks = [dict(b) for b in delivery.blocks] or None
        channel, text = delivery.channel, delivery.text
        try:
            if delivery.kind in ("post", "digest"):
                response = self._client.chat_postMessage(channel=channel, text=text, blocks=blocks)
                return classify(None, response), _ts(response)
            parent = self._message_ts(delivery)
            if parent is None:
                # Its post failed finally, or the task came in a digest: start a new message,
                # whose ts later updates and replies of the task will use.
                log.info(
                    "delivery %d (%s to %s): the task has no message there; posting a new one",
                    delivery.id,
                    delivery.kind,
                    channel,
                )
                response = self._client.chat_postMessage(channel=channel, text=text, blocks=blocks)
                return classify(None, response), _ts(response)
            if delivery.kind == "update":
                response = self._client.chat_update(
                    channel=channel, ts=parent, text=text, blocks=blocks
                )
            else:
                response = self._client.chat_postMessage(
                    channel=channel,
                    text=text,
                    blocks=blocks,
                    thread_ts=parent,
                    reply_broadcast=delivery.reply_broadcast,
                )
            return classify(None, response), None
        except (SlackApiError, OSError, http.client.HTTPException) as exc:
            return classify(exc, None), None
        except Exception as exc:
            log.error("delivery %d: unexpected error", delivery.id, exc_info=True)
            return classify(exc, None), None

    def _message_ts(self, delivery: Delivery) -> str | None:
        if delivery.task_id is None:
            return None
        record = self._store.find_task(delivery.task_id)
        return None if record is None else record.messages.get(delivery.channel)


def _ts(response: SlackResponse) -> str | None:
    ts = response.get("ts")
    return None if ts is None else str(ts)
