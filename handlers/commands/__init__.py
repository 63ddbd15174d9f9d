"""Slash commands: ``/dcs-tasks``."""

from __future__ import annotations

from slack_bolt import App

from handlers.commands.dcs_tasks import make_dcs_tasks
from handlers.deps import Deps


def register(app: App, deps: Deps) -> None:
    """Bind the slash command listeners."""
    app.command("/dcs-tasks")(make_dcs_tasks(deps))
