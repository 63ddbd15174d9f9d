"""Prometheus metrics of one ``serve`` process, for ``GET /metrics``.

Aggregates only: no label carries an instance, project, channel or user. The DCS client and the
delivery stage know nothing of this module: :mod:`bot.wiring` hangs the observers on them (an
httpx transport around the DCS connection pool, a ``WebClient`` subclass, the poll runner's
``on_tick``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.pipeline.schedule import TickReport

#: The outcomes a DCS request is counted under.
DCS_OUTCOMES = ("ok", "client_error", "rate_limited", "server_error", "timeout", "network_error")
#: The outcomes a Slack Web API call is counted under.
SLACK_OUTCOMES = ("ok", "rate_limited", "error", "network_error")


class Metrics:
    """The process's metrics in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cycle_seconds = Histogram(
            "dcs_tasks_bot_poll_cycle_duration_seconds",
            "How long poll cycles took (fetch, diff and enqueue; delivery not included).",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.dcs_requests = Counter(
            "dcs_tasks_bot_dcs_requests", "DCS API requests by outcome.", ["outcome"], registry=r
        )
        self.slack_calls = Counter(
            "dcs_tasks_bot_slack_calls", "Slack Web API calls by outcome.", ["outcome"], registry=r
        )
        self.outbox_pending = Gauge(
            "dcs_tasks_bot_outbox_pending",
            "Deliveries waiting in the outbox, as of this process's last poll.",
            registry=r,
        )
        self.dropped = Counter(
            "dcs_tasks_bot_deliveries_dropped",
            "Deliveries given up for good (Slack refused them for a reason that will not pass).",
            registry=r,
        )
        self.lease_held = Gauge(
            "dcs_tasks_bot_poller_lease_held",
            "1 while this process holds the poller lease (polls and delivers), else 0.",
            registry=r,
        )
        self.last_success = Gauge(
            "dcs_tasks_bot_last_successful_poll_timestamp_seconds",
            "Unix time of this process's last poll cycle that read every watched instance.",
            registry=r,
        )
        for outcome in DCS_OUTCOMES:
            self.dcs_requests.labels(outcome)
        for outcome in SLACK_OUTCOMES:
            self.slack_calls.labels(outcome)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def on_tick(self, report: TickReport) -> None:
        """Record what one tick of the poll runner did."""
        if report.cycle_seconds is not None:
            self.cycle_seconds.observe(report.cycle_seconds)
        if report.cycle is not None and report.cycle.ok:
            self.last_success.set(report.finished_at.timestamp())
        if report.drain is not None and report.drain.dropped:
            self.dropped.inc(report.drain.dropped)
        if report.pending is not None:
            self.outbox_pending.set(report.pending)

    def watch_lease(self, held: Callable[[], bool]) -> None:
        """Read whether this process holds the poller lease at every scrape (from memory)."""
        self.lease_held.set_function(lambda: 1.0 if held() else 0.0)

    def dcs_transport(self, inner: httpx.BaseTransport) -> httpx.BaseTransport:
        """``inner`` with every request counted by outcome."""
        return _CountingTransport(inner, self.dcs_requests)


def dcs_outcome(status: int) -> str:
    """The outcome label of an HTTP status from DCS."""
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"


class _CountingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, counter: Counter) -> None:
        self._inner = inner
        self._counter = counter

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self._inner.handle_request(request)
        except httpx.TimeoutException:
            self._counter.labels("timeout").inc()
            raise
        except httpx.TransportError:
            self._counter.labels("network_error").inc()
            raise
        self._counter.labels(dcs_outcome(response.status_code)).inc()
        return response

    def close(self) -> None:
        self._inner.close()


def counting_web_client(metrics: Metrics) -> type[WebClient]:
    """A ``WebClient`` class whose every Web API call is counted by outcome."""
    counter = metrics.slack_calls

    class CountingWebClient(WebClient):
        def api_call(self, *args: Any, **kwargs: Any) -> SlackResponse:
            try:
                response = super().api_call(*args, **kwargs)
            except SlackApiError as exc:
                error = exc.response.get("error") if exc.response is not None else None
                counter.labels("rate_limited" if error == "ratelimited" else "error").inc()
                raise
            except OSError:
                counter.labels("network_error").inc()
                raise
            counter.labels("ok").inc()
            return response

    return CountingWebClient
