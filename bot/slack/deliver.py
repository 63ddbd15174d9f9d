"""Delivery: drain the outbox into Slack, in order per channel, at least once.

One stage, three steps per delivery: *aim* (where it lands: a new message, an edit of the task's
message, or a reply in its thread), *send* (one Slack call), *settle* (record the outcome). What an
outcome means is decided in one place, ``bot.slack.outcome``: *retryable* failures stay in the
outbox with a backed-off ``next_try_at``; *fallback* (the task's message or thread is gone) posts
the change as a new message, which later changes edit; *final* ones are logged and dropped, and a
channel that cannot be posted to at all is recorded (``bot.slack.channels``) with one notice to
the alert channel. Rate limits are per channel, as Slack's are: a 429 holds back only its channel
until ``Retry-After`` ends while the drain goes on with the other channels.

A delivery is removed only after Slack answered ok, so a crash between Slack's answer and
``StateStore.delivery_done`` sends it again on the next drain: a possible duplicate message is
the price of never losing one (at-least-once).
"""

from __future__ import annotations

import http.client
import logging
import math
import random
import threading
from bisect import insort
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, FixedValueRetryIntervalCalculator
from slack_sdk.web import SlackResponse

from bot.slack import render
from bot.slack.channels import FAILING_KEY, FailingChannel, as_meta, failing_since, read_failing
from bot.slack.outcome import (
    FINAL_ERRORS,
    RETRYABLE_ERRORS,
    Action,
    Outcome,
    classify,
)
from state.base import CycleCommit, Delivery, NewDelivery, StateStore

__all__ = [
    "FINAL_ERRORS",
    "RETRYABLE_ERRORS",
    "Aim",
    "Deliverer",
    "DrainReport",
    "Outcome",
    "aim",
    "classify",
    "make_web_client",
]

log = logging.getLogger("bot.slack.deliver")


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


@dataclass(frozen=True, slots=True)
class Aim:
    """Where a delivery lands: ``post`` a new message (which becomes the task's message in the
    channel), ``edit`` the message ``ts``, or ``reply`` in the thread of ``ts``."""

    action: Action
    ts: str | None = None


#: A new message: what a post or digest is, and what an edit or reply falls back to.
NEW_MESSAGE = Aim("post")


def aim(delivery: Delivery, message_ts: str | None) -> Aim:
    """Where ``delivery`` lands, given the ``ts`` of its task's message in its channel.

    An update or reply whose task has no message there (its post failed finally, or the task
    came in a digest) is posted as a new message.
    """
    if delivery.kind in ("post", "digest") or message_ts is None:
        return NEW_MESSAGE
    return Aim("edit" if delivery.kind == "update" else "reply", message_ts)


def make_web_client(
    token: str,
    base_url: str,
    *,
    timeout: float = 10.0,
    connection_retries: int = 1,
    retry_interval: float = 1.0,
    client_class: type[WebClient] = WebClient,
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
    return client_class(
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
        self._queues: dict[str, list[Delivery]] = {}
        self._settled: set[int] = set()
        self._limited: dict[str, datetime] = {}
        self._closed: dict[str, tuple[datetime, int]] = {}
        self._woke: datetime | None = None  # when the drain's last wait ended

    def now(self, clock: Callable[[], datetime]) -> datetime:
        """The drain's time: never before the end of its last wait, so a wait always frees
        the channel it waited for, whatever the clock says."""
        now = clock()
        return now if self._woke is None or now >= self._woke else self._woke

    def woke_at(self, when: datetime) -> None:
        """A wait ended at ``when``."""
        self._woke = when

    def knows(self, delivery: Delivery) -> bool:
        """True when the delivery is in hand or was settled in this drain."""
        if delivery.id in self._settled:
            return True
        return any(d.id == delivery.id for d in self._queues.get(delivery.channel, ()))

    def closed(self, channel: str) -> tuple[datetime, int] | None:
        """(next try, the failed delivery's id) when ``channel`` is closed for this drain."""
        return self._closed.get(channel)

    def add(self, delivery: Delivery) -> None:
        """Take a claimed delivery in hand, in id order within its channel."""
        insort(self._queues.setdefault(delivery.channel, []), delivery, key=_id)

    def skip(self, delivery: Delivery) -> None:
        """A claimed delivery this drain will not send (its channel is closed)."""
        self._settled.add(delivery.id)

    def settle(self, delivery: Delivery) -> None:
        """The delivery's outcome is recorded: out of hand, and its channel's limit ends."""
        self._queues[delivery.channel].remove(delivery)
        self._settled.add(delivery.id)
        self._limited.pop(delivery.channel, None)

    def limit(self, channel: str, until: datetime) -> None:
        """Hold ``channel`` back until ``until`` (a rate limit); its head stays in hand."""
        self._limited[channel] = until

    def close(self, channel: str, next_try: datetime, behind: int) -> list[Delivery]:
        """Close ``channel`` for this drain after a retryable failure of ``behind``; returns its
        other deliveries in hand, now out of hand, to hold back until ``next_try``."""
        self._closed[channel] = (next_try, behind)
        later = list(self._queues.get(channel, ()))
        for delivery in later:
            self.settle(delivery)
        return later

    def next_ready(self, now: datetime) -> Delivery | None:
        """The oldest head among channels neither limited past ``now`` nor closed."""
        heads = [
            queue[0]
            for channel, queue in self._queues.items()
            if queue and channel not in self._closed and self._limited.get(channel, now) <= now
        ]
        return min(heads, key=_id, default=None)

    def earliest_limit(self) -> datetime | None:
        """When the first limited channel with something in hand may be sent to again."""
        return min((t for c, t in self._limited.items() if self._queues.get(c)), default=None)

    def still_limited(self) -> list[tuple[datetime, list[Delivery]]]:
        """At the end of a drain: each limited channel's end of limit and deliveries in hand."""
        return [(until, q) for c, until in self._limited.items() if (q := self._queues.get(c))]


class Deliverer:
    """Sends due outbox items to Slack and records the result of each in the store."""

    def __init__(
        self,
        client: WebClient,
        store: StateStore,
        *,
        alert_channel: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], object] | None = None,
        backoff_base: float = 30.0,
        backoff_max: float = 900.0,
        max_rate_limit_wait: float = 120.0,
        rng: random.Random | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """``sleep`` waits for a rate-limited channel; by default it waits on ``stop``, so a stop
        request cuts a wait short. ``max_rate_limit_wait``: the most one drain waits in total.
        ``alert_channel`` gets one notice when another channel starts failing finally."""
        self._client = client
        self._store = store
        self._alert_channel = alert_channel
        self._clock = clock
        self._stop = stop if stop is not None else threading.Event()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._stop.wait
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_wait = max_rate_limit_wait
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()  # one drain at a time
        self._failing: dict[str, FailingChannel] = {}

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
            self._failing = read_failing(self._store.get_meta(FAILING_KEY))
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

    # -- the drain's bookkeeping ---------------------------------------------------------------

    def _claim(self, hand: _Hand, now: datetime, report: DrainReport) -> None:
        """Take the store's due deliveries in hand (the store keeps each channel's order)."""
        for delivery in self._store.pending_deliveries(now):
            if hand.knows(delivery):
                continue
            closed = hand.closed(delivery.channel)
            if closed is not None:
                self._hold_back(delivery, *closed)
                hand.skip(delivery)
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
        hand.woke_at(until)
        return True

    def _leave(self, hand: _Hand, report: DrainReport) -> None:
        """At the end of a drain, write down the channels still rate limited: the held delivery
        retries when the limit ends, the channel's later ones in hand are held back behind it.
        (What ``stop`` left unsent stays claimed until its claim ends.)"""
        for until, queue in hand.still_limited():
            head, *rest = queue
            log.info(
                "delivery %d (%s to %s) is rate limited; next try at %s",
                head.id,
                head.kind,
                head.channel,
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

    # -- one delivery: aim, send, settle ---------------------------------------------------------

    def _deliver(self, delivery: Delivery, hand: _Hand, report: DrainReport) -> None:
        """Send one delivery and record the outcome, or hold its channel on a rate limit."""
        outcome, ts = self._send(delivery)
        now = hand.now(self._clock)
        what = f"delivery {delivery.id} ({delivery.kind} to {delivery.channel})"
        if outcome.kind == "ok":
            self._store.delivery_done(delivery.id, ts)
            hand.settle(delivery)
            report.sent += 1
            self._channel_works(delivery.channel)
        elif outcome.kind in ("final", "fallback"):  # a failed fallback post is final
            log.error("dropping %s: Slack error %s", what, outcome.reason)
            self._store.delivery_failed(delivery.id, outcome.reason, None)
            hand.settle(delivery)
            report.dropped += 1
            if outcome.channel_failing:
                self._channel_fails(delivery.channel, outcome.reason, now)
        elif outcome.reason == "ratelimited":
            wait = outcome.retry_after or 1.0
            log.debug("Slack rate limit on %s: holding it %.0f s", delivery.channel, wait)
            hand.limit(delivery.channel, now + timedelta(seconds=wait))
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
            for later in hand.close(delivery.channel, next_try, delivery.id):
                self._hold_back(later, next_try, delivery.id)
                report.retried += 1

    def _backoff(self, delivery: Delivery, outcome: Outcome) -> float:
        ceiling = min(self._backoff_max, self._backoff_base * 2 ** min(delivery.attempts, 30))
        backoff = self._rng.uniform(ceiling / 2, ceiling)  # "equal jitter"
        return max(backoff, outcome.retry_after or 0.0)

    def _send(self, delivery: Delivery) -> tuple[Outcome, str | None]:
        """Aim and send one delivery; when its task's message is gone, post it anew. Returns
        the outcome and the ``ts`` that ``delivery_done`` should remember (a new message's)."""
        target = aim(delivery, self._message_ts(delivery))
        if target is NEW_MESSAGE and delivery.kind in ("update", "reply"):
            log.info(
                "delivery %d (%s to %s): the task has no message there; posting a new one",
                delivery.id,
                delivery.kind,
                delivery.channel,
            )
        outcome, ts = self._call(delivery, target)
        if outcome.kind != "fallback":
            return outcome, ts
        log.warning(
            "delivery %d (%s to %s): the task's message is gone (%s); posting a new one",
            delivery.id,
            delivery.kind,
            delivery.channel,
            outcome.reason,
        )
        return self._call(delivery, NEW_MESSAGE)

    def _call(self, delivery: Delivery, target: Aim) -> tuple[Outcome, str | None]:
        """One Slack call; the ``ts`` of a new message, None for an edit or reply."""
        blocks = [dict(b) for b in delivery.blocks] or None
        channel, text = delivery.channel, delivery.text
        response: SlackResponse
        try:
            if target.action == "edit":
                response = self._client.chat_update(
                    channel=channel, ts=target.ts or "", text=text, blocks=blocks
                )
                return classify(None, response, "edit"), None
            if target.action == "reply":
                response = self._client.chat_postMessage(
                    channel=channel,
                    text=text,
                    blocks=blocks,
                    thread_ts=target.ts,
                    reply_broadcast=delivery.reply_broadcast,
                )
                return classify(None, response, "reply"), None
            response = self._client.chat_postMessage(channel=channel, text=text, blocks=blocks)
            ts = response.get("ts")
            return classify(None, response, "post"), None if ts is None else str(ts)
        except (SlackApiError, OSError, http.client.HTTPException) as exc:
            return classify(exc, None, target.action), None
        except Exception as exc:
            log.error("delivery %d: unexpected error", delivery.id, exc_info=True)
            return classify(exc, None, target.action), None

    def _message_ts(self, delivery: Delivery) -> str | None:
        """The ``ts`` of the delivery's task's message in its channel, for an update or reply."""
        if delivery.kind not in ("update", "reply") or delivery.task_id is None:
            return None
        record = self._store.find_task(delivery.task_id)
        return None if record is None else record.messages.get(delivery.channel)

    # -- channels that cannot be posted to -----------------------------------------------------

    def _channel_fails(self, channel: str, error: str, now: datetime) -> None:
        """Record that ``channel`` fails finally; the first time, one notice to the alert
        channel (enqueued with the record, in one transaction)."""
        if channel in self._failing:
            return
        self._failing[channel] = FailingChannel(channel, error, failing_since(now))
        log.error(
            "channel %s cannot be posted to (%s): its alerts are dropped until the bot is "
            "invited back or its subscriptions are removed",
            channel,
            error,
        )
        notices: list[NewDelivery] = []
        if self._alert_channel and channel != self._alert_channel:
            message = render.channel_failing(channel, error)
            notices.append(NewDelivery("post", self._alert_channel, message.text, message.blocks))
        self._store.commit_cycle(
            CycleCommit(deliveries=notices, meta={FAILING_KEY: as_meta(self._failing)})
        )

    def _channel_works(self, channel: str) -> None:
        """A delivery to ``channel`` succeeded: it is no longer failing."""
        if self._failing.pop(channel, None) is not None:
            log.info("channel %s accepts alerts again", channel)
            self._store.set_meta(FAILING_KEY, as_meta(self._failing))
