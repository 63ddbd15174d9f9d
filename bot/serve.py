"""``dcs-tasks-bot serve``: the Bolt app (HTTP on $PORT, or Socket Mode) and the poller's
scheduler in one process. SIGTERM (Heroku's dyno stop) drains and exits within 10 s."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from typing import Any

from bot import __version__
from bot.config import Settings
from bot.pipeline.health import health_report
from bot.slack.web import HttpServer, build_bolt_app, make_wsgi_app, start_socket_mode
from bot.wiring import build
from handlers import register_listeners
from handlers.deps import Deps
from state.base import PollerLockedError

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    # Installed before anything starts, so a SIGTERM during start-up is not lost.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parts = build(settings)
    assert parts.slack is not None
    try:
        runner = parts.runner()
        if not runner.heartbeat() and not settings.database_url:
            raise PollerLockedError(
                f"another poller already uses STATE_PATH={settings.state_path}; "
                "set DATABASE_URL so several processes can share state"
            )
        deps = Deps(
            settings=settings,
            store=parts.store,
            dcs=parts.dcs,
            watched=parts.watched.get,
            clock=lambda: datetime.now(UTC),
            version=__version__,
            started_at=parts.started_at,
        )
        bolt = build_bolt_app(settings, parts.slack)
        register_listeners(bolt, deps)

        def health() -> tuple[int, dict[str, Any]]:
            return health_report(
                parts.store,
                poll_interval=settings.poll_interval,
                started_at=parts.started_at,
                now=datetime.now(UTC),
                version=__version__,
            )

        stop_socket = None
        if settings.slack_app_token is not None:
            server = HttpServer(make_wsgi_app(None, health), port=settings.port)
            stop_socket = start_socket_mode(bolt, settings.slack_app_token.get_secret_value())
        else:
            server = HttpServer(make_wsgi_app(bolt, health), port=settings.port)
        try:
            port = server.start()
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot listen on PORT={settings.port}: {exc.strerror}"
            ) from None
        mode = "Socket Mode" if stop_socket else "HTTP"
        log.info("serving on port %d (%s), polling every %ds", port, mode, settings.poll_interval)
        runner.start()
        while not stop.wait(1.0):
            pass
        server.stop()
        if stop_socket is not None:
            stop_socket()
        runner.stop()
        log.info("stopped")
        return 0
    finally:
        parts.close()
