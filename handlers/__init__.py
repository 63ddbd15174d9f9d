"""Slack listeners. ``register_listeners`` is the one place they are bound to the Bolt app."""

from __future__ import annotations

from slack_bolt import App

from handlers import actions, commands
from handlers.deps import Deps


def register_listeners(app: App, deps: Deps) -> None:
    """Bind every listener of the bot to ``app``."""
    commands.register(app, deps)
    actions.register(app, deps)
