"""dcs-tasks-bot: Slack alerts and queries for DCS background tasks."""

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _source_version() -> str:
    """The version in pyproject.toml beside the package: a buildpack that installs only the
    dependencies (``uv sync --no-install-project``) runs ``python -m bot`` from the source tree."""
    try:
        with (Path(__file__).resolve().parent.parent / "pyproject.toml").open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0.0.0"


try:
    __version__ = version("dcs-tasks-bot")
except PackageNotFoundError:
    __version__ = _source_version()
