"""``dcs-tasks-bot serve``: the Bolt app (HTTP on $PORT, or Socket Mode) and the poller's
scheduler in one process. The port is bound first; SIGTERM (a dyno stop) ends it within 10 s
(:mod:`bot.lifecycle`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot import __version__
from bot.config import Settings
from bot.lifecycle import Lifecycle, claim_poller
from bot.metrics import Metrics
from bot.pipeline.health import ReadinessProbe, health_report, public_view
from bot.slack.web import HttpServer, Site, start_socket_mode
from bot.wiring import Components, build, slack_app

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    life = Lifecycle()
    life.install_signals()
    metrics = Metrics()
    site = Site(metrics.render)
    server = HttpServer(site, port=settings.port)
    try:
        port = server.start()
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on PORT={settings.port}: {exc.strerror}") from None

    def start() -> Callable[[], None]:
        parts = build(settings, stopping=life.stop, metrics=metrics)
        try:
            return _start(settings, parts, site, port)
        except BaseException:
            parts.close()
            raise

    try:
        return life.run(start)
    finally:
        server.stop(timeout=1.0)


def _start(settings: Settings, parts: Components, site: Site, port: int) -> Callable[[], None]:
    """Claim the poller, wire the Bolt app, start polling; returns what stops them again."""
    assert parts.slack is not None
    runner = parts.runner()
    claim_poller(runner, shared=bool(settings.database_url), state_path=settings.state_path)
    bolt = slack_app(parts)

    def check() -> tuple[int, dict[str, Any]]:
        return public_view(
            *health_report(
                parts.store,
                poll_interval=settings.poll_interval,
                started_at=parts.started_at,
                now=datetime.now(UTC),
                version=__version__,
            )
        )

    health = ReadinessProbe(check)

    stop_socket = None
    if settings.slack_app_token is not None:
        stop_socket = start_socket_mode(bolt, settings.slack_app_token.get_secret_value())
        site.ready(None, health)
    else:
        site.ready(bolt, health)
    mode = "Socket Mode" if stop_socket else "HTTP"
    log.info("serving on port %d (%s), polling every %ds", port, mode, settings.poll_interval)
    runner.start()

    def stop() -> None:
        if stop_socket is not None:
            stop_socket()
        runner.stop()
        parts.close()

    return stop
