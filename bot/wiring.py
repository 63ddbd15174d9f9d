"""The one place that wires everything: settings → store → DCS client → poll pipeline →
delivery → scheduler, and the Slack handlers' dependencies and Bolt app."""

from __future__ import annotations

import os
import socket
import threading
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from slack_bolt import App
from slack_sdk import WebClient

from bot import __version__
from bot.config import ConfigError, Settings
from bot.dcs.auth import AkSkAuth, IamTokenAuth, TokenAuth
from bot.dcs.client import DEFAULT_RETRY, DcsClient, RetryPolicy
from bot.dcs.limit import AdaptiveLimit
from bot.dcs.projects import REGION_PLACEHOLDER, Project, ProjectClients
from bot.dcs.transport import StdlibTransport
from bot.metrics import Metrics, counting_web_client
from bot.pipeline.poll import Poller
from bot.pipeline.report import ScheduledReport
from bot.pipeline.schedule import PollRunner
from bot.pipeline.watch import WatchedInstances
from bot.slack.deliver import Deliverer, make_web_client
from bot.slack.web import build_bolt_app
from handlers import register_listeners
from handlers.deps import Deps
from handlers.offload import USER_DCS_DEADLINE
from state import open_store
from state.base import StateStore

#: Requests in flight to DCS at most: the poller's workers, and the adaptive limit's ceiling.
MAX_IN_FLIGHT = 32


def owner_id() -> str:
    """Who holds the poller lease: host and process, readable in the database."""
    return f"{socket.gethostname()}:{os.getpid()}"


def dcs_auth(
    settings: Settings,
    client_factory: Callable[[], httpx.Client] | None = None,
    *,
    project: Project | None = None,
) -> httpx.Auth | None:
    """The auth for ``settings.dcs_auth_mode`` (AK/SK > IAM password > token), or None.

    ``client_factory`` makes the client IAM tokens are fetched with (not the DCS client).
    With DCS_PROJECTS, an IAM token is scoped to ``project`` and fetched from OS_AUTH_URL with
    its ``{region}`` replaced by the project's region.
    """
    mode = settings.dcs_auth_mode
    if mode == "aksk" and settings.access_key and settings.secret_key:
        return AkSkAuth(
            settings.access_key.get_secret_value(), settings.secret_key.get_secret_value()
        )
    if mode == "iam" and settings.os_auth_url and settings.os_username and settings.os_password:
        project_id = settings.os_project_id
        project_name = settings.os_project_name
        if not project_id and not project_name:
            project_id = settings.project_id
        auth_url = settings.os_auth_url
        if settings.dcs_projects and project is not None:
            project_id, project_name = project.project_id, None
            auth_url = auth_url.replace(REGION_PLACEHOLDER, project.region or "")
        return IamTokenAuth(
            auth_url,
            settings.os_username,
            settings.os_password.get_secret_value(),
            settings.os_user_domain_name,
            project_id=project_id,
            project_name=project_name,
            client=client_factory() if client_factory else None,
        )
    if mode == "token" and settings.auth_token:
        return TokenAuth(settings.auth_token.get_secret_value())
    return None


def environment_proxy(url: str) -> str | None:
    """The proxy that ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` name for ``url`` (either
    case), unless ``NO_PROXY`` exempts its host: as curl, httpx and slack-sdk read them."""
    target = httpx.URL(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(target.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(target.host):  # NO_PROXY
        return None
    return proxy


def make_http_client(
    settings: Settings,
    *,
    project: Project | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 10.0,
    metrics: Metrics | None = None,
) -> httpx.Client:
    """The ``httpx.Client`` for DCS: the project's endpoint (default: the first project's) as
    base URL, the configured auth, timeouts; with ``metrics``, every request is counted by
    outcome."""
    project = project or next(iter(settings.projects), None)
    if project is None:
        raise ConfigError(
            ["DCS_ENDPOINT: is required, e.g. DCS_ENDPOINT=https://dcs.eu-de.otc.t-systems.com"]
        )
    if transport is None:
        proxy = environment_proxy(project.endpoint)
        # The lean transport costs a third less CPU per request than httpcore's (make bench,
        # "HTTP layer") but speaks only directly; behind a proxy, httpx's own transport.
        # The poller keeps up to 32 requests in flight, 64 connections stay idle.
        transport = (
            httpx.HTTPTransport(proxy=proxy, limits=httpx.Limits(max_keepalive_connections=64))
            if proxy
            else StdlibTransport(max_idle=64)
        )
    if metrics is not None:
        transport = metrics.dcs_transport(transport)
    return httpx.Client(
        base_url=project.endpoint,
        auth=dcs_auth(settings, project=project),
        timeout=httpx.Timeout(timeout),
        transport=transport,
        headers={"User-Agent": f"dcs-tasks-bot/{__version__}", "Accept": "application/json"},
        follow_redirects=False,
    )


@dataclass
class Components:
    """Everything a command needs, built once from the settings."""

    settings: Settings
    store: StateStore
    http: ExitStack
    dcs: ProjectClients
    watched: WatchedInstances
    poller: Poller
    slack: WebClient | None = None
    deliverer: Deliverer | None = None
    metrics: Metrics | None = None
    report: ScheduledReport | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def runner(self) -> PollRunner:
        """The scheduler around this poller and deliverer."""
        assert self.deliverer is not None
        runner = PollRunner(
            self.poller,
            self.deliverer,
            self.store,
            owner=owner_id(),
            interval=self.settings.poll_interval,
            stopping=self.stopping,
            on_tick=self.metrics.on_tick if self.metrics else None,
            report=self.report,
        )
        if self.metrics is not None:
            self.metrics.watch_lease(lambda: runner.is_leader)
        return runner

    def close(self) -> None:
        """Release connections and files."""
        self.http.close()
        self.store.close()


def open_state(settings: Settings, *, state_path: Path | None = None) -> StateStore:
    """The state store the settings name: PostgreSQL when DATABASE_URL is set, else SQLite."""
    url = settings.database_url.get_secret_value() if settings.database_url else None
    interval = float(settings.poll_interval)
    # The leader renews every interval/3 (bot.pipeline.schedule); a dead leader's lease lapses
    # after 1.5 intervals, so a standby takes over within two, freeing the dead leader's claims.
    return open_store(
        state_path=state_path or settings.state_path,
        database_url=url,
        lease_seconds=1.5 * interval,
        claim_seconds=max(30.0, 2 * interval),
    )


def dcs_client(
    settings: Settings,
    *,
    transport: httpx.BaseTransport | None = None,
    stop: threading.Event | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], object] | None = None,
    metrics: Metrics | None = None,
    limit: AdaptiveLimit | None = None,
) -> tuple[ExitStack, ProjectClients]:
    """One HTTP client and DCS client per watched project, behind one ProjectClients (``stop``
    ends their retrying: the default ``sleep`` waits on it); closing the ExitStack closes the
    HTTP clients. ``limit``: the requests in flight shared by all projects (default: adaptive,
    at most MAX_IN_FLIGHT)."""
    projects = settings.projects
    if not projects:
        raise ConfigError(
            ["DCS_PROJECT_ID: is required, e.g. DCS_PROJECT_ID=0123456789abcdef0123456789abcdef"]
        )
    if limit is None:  # one for all projects
        limit = AdaptiveLimit(initial=MAX_IN_FLIGHT, maximum=MAX_IN_FLIGHT)
    with ExitStack() as stack:
        clients = []
        for project in projects:
            http = stack.enter_context(
                make_http_client(settings, project=project, transport=transport, metrics=metrics)
            )
            dcs = DcsClient(
                http, project.project_id, retry=retry, sleep=sleep, stop=stop, limit=limit
            )
            clients.append((project, dcs))
        return stack.pop_all(), ProjectClients(clients, limit=limit)


def build(
    settings: Settings,
    *,
    with_slack: bool = True,
    store: StateStore | None = None,
    transport: httpx.BaseTransport | None = None,
    stopping: threading.Event | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], object] | None = None,
    metrics: Metrics | None = None,
    limit: AdaptiveLimit | None = None,
) -> Components:
    """Build the components; ``with_slack=False`` for commands that never post.

    ``stopping``, once set, ends DCS retries and delivery waits (the process is stopping).
    ``metrics``: count DCS requests, Slack calls and what each tick did. ``limit``: see
    :func:`dcs_client`.
    """
    stopping = stopping if stopping is not None else threading.Event()
    store = store or open_state(settings)
    try:
        http, dcs = dcs_client(
            settings,
            transport=transport,
            stop=stopping,
            retry=retry,
            sleep=sleep,
            metrics=metrics,
            limit=limit,
        )
        # Resolved again every ten cycles: names stay current, new instances are picked up.
        watched = WatchedInstances(
            dcs, settings.instances, max_age=timedelta(seconds=10 * settings.poll_interval)
        )
        poller = Poller(
            dcs,
            store,
            watched,
            alert_channel=settings.alert_channel,
            lookback=settings.lookback,
            digest_threshold=settings.digest_threshold,
            retention=settings.retention,
            stuck_after=settings.stuck_after,
            scope=settings.project_id or "",
            interval=float(settings.poll_interval),
        )
        parts = Components(
            settings, store, http, dcs, watched, poller, stopping=stopping, metrics=metrics
        )
        if settings.report_schedule and settings.alert_channel:
            parts.report = ScheduledReport(store, settings.report_schedule, settings.alert_channel)
        if with_slack and settings.slack_bot_token is not None:
            parts.slack = make_web_client(
                settings.slack_bot_token.get_secret_value(),
                settings.slack_api_url,
                client_class=counting_web_client(metrics) if metrics else WebClient,
            )
            # Retries follow the poll interval (a 1 s poller retries within seconds, not
            # minutes), capped at the Deliverer's defaults of 30 s doubling up to 15 min.
            interval = float(settings.poll_interval)
            parts.deliverer = Deliverer(
                parts.slack,
                store,
                alert_channel=settings.alert_channel,
                stop=parts.stopping,
                backoff_base=min(30.0, interval),
                backoff_max=min(900.0, 15 * interval),
                # A drain waits out rate limits for at most one interval, so it never holds
                # the next poll back by more; what is left goes out on the next tick.
                max_rate_limit_wait=min(120.0, interval),
            )
        return parts
    except BaseException:
        store.close()
        raise


def handler_deps(parts: Components) -> Deps:
    """What the Slack handlers are given: the store, the DCS client, and the watched instances
    as the poller last resolved them."""
    return Deps(
        settings=parts.settings,
        store=parts.store,
        dcs=parts.dcs.with_deadline(USER_DCS_DEADLINE),
        watched=parts.watched.current,
        clock=lambda: datetime.now(UTC),
        version=__version__,
        started_at=parts.started_at,
    )


def slack_app(parts: Components, deps: Deps | None = None) -> App:
    """The Bolt app (signatures verified) with every listener registered on ``deps``."""
    assert parts.slack is not None
    bolt = build_bolt_app(parts.settings, parts.slack)
    register_listeners(bolt, deps or handler_deps(parts))
    return bolt
