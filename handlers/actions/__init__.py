"""Interactivity: the "Refresh" and "Details" buttons of task alerts."""

from __future__ import annotations

from slack_bolt import App

from handlers.actions.details import make_task_details
from handlers.actions.refresh import make_task_refresh
from handlers.deps import Deps


def register(app: App, deps: Deps) -> None:
    """Bind the button listeners (action IDs as ``bot.slack.render.task_alert`` sets them)."""
    app.action("task_refresh")(make_task_refresh(deps))
    app.action("task_details")(make_task_details(deps))
