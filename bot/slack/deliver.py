"""Delivery: drain the outbox into Slack, in order per channel, at least once.

Every failure is classified in one place (``classify``): *retryable* ones (network, HTTP 5xx,
rate limits, Slack's transient ``ok: false`` errors) stay in the outbox with a backed-off
``next_try_at``; *final* ones (``channel_not_found``, ``invalid_auth``...) are logged and dropped.
Rate limits are per channel, as Slack's are: a 429 holds back its channel until ``Retry-After``
ends while the drain goes on with the other channels.
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
from bisect import insort
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

log = logging.getLogger("bot.slack.deliver")

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

    ``retried`` counts deliveries left for a later try: those that failed (or were still rate
    limited when the drain ended) and those held back behind an earlier one to the same channel.
    ``waited_seconds``: how long the drain slept because every channel it had deliveries for
    was rate limited.
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
    ``time.sleep`` and no upper bound, blocking every other channel, and a 5xx retry would hold
    the drain thread. Instead they come back to ``Deliverer``, which holds back only the
    rate-limited channel until its ``Retry-After`` ends (waiting, within its budget, only when
    no other channel has anything to send) and leaves anything else in the outbox with a
    backed-off ``next_try_at``, where it survives restarts and shows in ``count_pending``.
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


def _id(delivery: Delivery) -> int:
    return delivery.id


class _Hand:
    """What one drain has in hand: the deliveries it claimed and has not settled, oldest first
    per channel, and the channels it may not send to now.

    A channel is *limited* until its Retry-After ends (its head delivery stays in hand and is
    tried again then), or *closed* for the rest of the drain after another retryable failure.
    """

    def __init__(self) -> None:
        self.queues: dict[str, list[Delivery]] = {}
        self.settled: set[int] = set()
        self.limited: dict[str, datetime] = {}
        self.closed: dict[str, tuple[datetime, int]] = {}
        self.woke: datetime | None = None  # when the drain's last wait ended

    def now(self, clock: Callable[[], datetime]) -> datetime:
        """The drain's time: never before the end of its last wait, so a wait always frees
        the channel it waited for, whatever the clock says."""
        now = clock()
        return now if self.woke is None or now >= self.woke else self.woke

    def knows(self, delivery: Delivery) -> bool:
        """True when the delivery is in hand or was settled in this drain."""
        if delivery.id in self.settled:
            return True
        return any(d.id == delivery.id for d in self.queues.get(delivery.channel, ()))

    def add(self, delivery: Delivery) -> None:
        """Take a claimed delivery in hand, in id order within its channel."""
        insort(self.queues.setdefault(delivery.channel, []), delivery, key=_id)

    def settle(self, delivery: Delivery) -> None:
        """The delivery's outcome is recorded: out of hand, and its channel's limit ends."""
        self.queues[delivery.channel].remove(delivery)
        self.settled.add(delivery.id)
        self.limited.pop(delivery.channel, None)

    def next_ready(self, now: datetime) -> Delivery | None:
        """The oldest head among channels neither limited past ``now`` nor closed."""
        heads = [
            queue[0]
            for channel, queue in self.queues.items()
            if queue and channel not in self.closed and self.limited.get(channel, now) <= now
        ]
        return min(heads, key=_id, default=None)

    def earliest_limit(self) -> datetime | None:
        """When the first limited channel with something in hand may be sent to again."""
        return min((t for c, t in self.limited.items() if self.queues.get(c)), default=None)


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
        """``sleep`` waits for a rate-limited channel; by default it waits on ``stop``, so a stop
        request cuts a wait short. ``max_rate_limit_wait``: the most one drain waits in total."""
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

    def drain(self) -> DrainReport:
        """Deliver everything due, oldest first, until nothing is due or ``stop`` is set.

        Rate limits are per channel: a 429 holds back only its channel, until its Retry-After
        ends, while the other channels go on; when every channel with something to send is
        held, the drain sleeps until the first of them may send again, within
        ``max_rate_limit_wait`` seconds in all. A held delivery is tried again from memory, so
        a rate limit is no failed attempt; only when the drain ends with the channel still
        held is it written to the outbox (``ratelimited``, next try when the limit ends).

        Per channel, order is kept: a delivery is sent only after the earlier ones of its
        channel were settled, and after a retryable failure the channel's later deliveries
        are held back until the failed one's next try, so an update never overtakes its post.
        ``stop`` ends the drain after the current delivery, or cuts a wait short.
        """
        with self._lock:
            report = DrainReport()
            hand = _Hand()
            while not self._stop.is_set():
                now = hand.now(self._clock)
                delivery = hand.next_ready(now)
                if delivery is None:
                    self._claim(hand, now, report)
                    delivery = hand.next_ready(now)
                if delivery is not None:
                    self._deliver(delivery, hand, report)
                elif not self._wait(hand, report):
                    break
            self._leave(hand, report)
            if report.waited_seconds:
                log.info(
                    "Slack rate limits: waited %.1f s in this drain (%d sent)",
                    report.waited_seconds,
                    report.sent,
                )
            return report

    def _claim(self, hand: _Hand, now: datetime, report: DrainReport) -> None:
        """Take the store's due deliveries in hand (the store keeps each channel's order)."""
        for delivery in self._store.pending_deliveries(now):
            if hand.knows(delivery):
                continue
            closed = hand.closed.get(delivery.channel)
            if closed is not None:
                self._hold_back(delivery, *closed)
                hand.settled.add(delivery.id)
                report.retried += 1
                continue
            hand.add(delivery)

    def _wait(self, hand: _Hand, report: DrainReport) -> bool:
        """Sleep until the first limited channel may send again; False when there is none, or
        the wait would pass the drain's budget, or ``stop`` was set meanwhile."""
        until = hand.earliest_limit()
        if until is None:
            return False
        wait = max(0.0, (until - hand.now(self._clock)).total_seconds())
        if report.waited_seconds + wait > self._max_wait:
            return False
        log.debug("every channel with deliveries is rate limited: waiting %.1f s", wait)
        self._sleep(wait)
        if self._stop.is_set():
            return False
        report.waited_seconds += wait
        hand.woke = until
        return True

    def _leave(self, hand: _Hand, report: DrainReport) -> None:
        """At the end of a drain, write down the channels still rate limited: the held delivery
        retries when the limit ends, the channel's later ones in hand are held back behind it.
        (What ``stop`` left unsent stays claimed until its claim ends.)"""
        for channel, until in hand.limited.items():
            queue = hand.queues.get(channel)
            if not queue:
                continue
            head, *rest = queue
            log.info(
                "delivery %d (%s to %s) is rate limited; next try at %s",
                head.id,
                head.kind,
                channel,
                until.isoformat(timespec="seconds"),
            )
            self._store.delivery_failed(head.id, "ratelimited", until)
            for delivery in rest:
                self._hold_back(delivery, until, head.id)
            report.retried += len(queue)

    def _hold_back(self, delivery: Delivery, next_try: datetime, behind: int) -> None:
        self._store.delivery_failed(
            delivery.id, f"held back behind delivery {behind} to the same channel", next_try
        )

    def _deliver(self, delivery: Delivery, hand: _Hand, report: DrainReport) -> None:
        """Send one delivery and record the outcome, or hold its channel on a rate limit."""
        outcome, ts = self._call(delivery)
        now = hand.now(self._clock)
        what = f"delivery {delivery.id} ({delivery.kind} to {delivery.channel})"
        if outcome.kind == "ok":
            self._store.delivery_done(delivery.id, ts)
            hand.settle(delivery)
            report.sent += 1
        elif outcome.kind == "final":
            log.error("dropping %s: Slack error %s", what, outcome.reason)
            self._store.delivery_failed(delivery.id, outcome.reason, None)
            hand.settle(delivery)
            report.dropped += 1
        elif outcome.reason == "ratelimited":
            wait = outcome.retry_after or 1.0
            log.debug("Slack rate limit on %s: holding it %.0f s", delivery.channel, wait)
            hand.limited[delivery.channel] = now + timedelta(seconds=wait)
        else:
            next_try = now + timedelta(seconds=self._backoff(delivery, outcome))
            log.warning(
                "%s failed (attempt %d): %s; next try at %s",
                what,
                delivery.attempts + 1,
                outcome.reason,
                next_try.isoformat(timespec="seconds"),
            )
            self._store.delivery_failed(delivery.id, outcome.reason, next_try)
            hand.settle(delivery)
            report.retried += 1
            hand.closed[delivery.channel] = (next_try, delivery.id)
            for later in list(hand.queues[delivery.channel]):
                self._hold_back(later, next_try, delivery.id)
                hand.settle(later)
                report.retried += 1

    def _backoff(self, delivery: Delivery, outcome: Outcome) -> float:
        ceiling = min(self._backoff_max, self._backoff_base * 2 ** min(delivery.attempts, 30))
        backoff = self._rng.uniform(ceiling / 2, ceiling)  # "equal jitter"
        return max(backoff, outcome.retry_after or 0.0)

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
