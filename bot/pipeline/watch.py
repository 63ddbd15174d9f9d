"""The watched instances: DCS_INSTANCES resolved against the project's instance list, refreshed
every few cycles so new instances of a ``*`` project are picked up and names stay current."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from bot.dcs.errors import DcsError
from bot.dcs.models import Instance

log = logging.getLogger(__name__)


class InstanceSource(Protocol):
    """What WatchedInstances needs of the DCS client."""

    def resolve_instances(self, wanted: Sequence[str]) -> list[Instance]:
        """IDs or names (empty: every instance) to instances."""
        ...


class WatchedInstances:
    """Caches the resolution; on a failed refresh keeps the last good list."""

    def __init__(self, dcs: InstanceSource, wanted: Sequence[str], *, refresh_every: int = 10):
        self._dcs = dcs
        self._wanted = tuple(wanted)
        self._refresh_every = max(1, refresh_every)
        self._calls = 0
        self._cached: list[Instance] | None = None
        self._lock = threading.Lock()

    def get(self, *, refresh: bool = False) -> list[Instance]:
        """The watched instances; resolves again every ``refresh_every`` calls.

        Raises DcsError only when no list has ever been resolved.
        """
        with self._lock:
            due = self._cached is None or refresh or self._calls % self._refresh_every == 0
            self._calls += 1
            if due:
                try:
                    self._cached = self._dcs.resolve_instances(self._wanted)
                except DcsError as exc:
                    if self._cached is None:
                        raise
                    log.warning("could not refresh the instance list, keeping the last: %s", exc)
            assert self._cached is not None
            return list(self._cached)

    def cached(self) -> list[Instance]:
        """The last resolved list without asking DCS (empty before the first resolution)."""
        with self._lock:
            return list(self._cached or [])
