"""dcs-tasks-bot: Slack alerts and queries for DCS background tasks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dcs-tasks-bot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
