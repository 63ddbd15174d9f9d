"""The watched instances: DCS_INSTANCES resolved against the project's instance list.

The poll side owns the resolution and refreshes it by age (new instances of a ``*`` project are
picked up, names stay current); the Slack handlers only read what it last resolved, so command
traffic never decides when DCS is asked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Protocol

from bot.dcs.errors import DcsError
from bot.dcs.models import Instance

log = logging.getLogger(__name__)


class InstanceSource(Protocol):
    """What WatchedInstances needs of the DCS client."""

    def resolve_instances(self, wanted: Sequence[str]) -> list[Instance]:
        """IDs or names (empty: every instance) to instances."""
        ...


def _failures_of(source: InstanceSource) -> dict[str, str]:
    """The projects a multi-project source could not read (none for a one-project client)."""
    failures = getattr(source, "failures", None)
    return dict(failures) if isinstance(failures, dict) else {}


class WatchedInstances:
    """The last resolved list; on a failed refresh keeps the last good one."""

    def __init__(
        self,
        dcs: InstanceSource,
        wanted: Sequence[str],
        *,
        max_age: timedelta = timedelta(minutes=10),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dcs = dcs
        self._wanted = tuple(wanted)
        self._max_age = max_age.total_seconds()
        self._clock = clock
        self._resolved: tuple[Instance, ...] | None = None
        self._resolved_at = 0.0
        self._lock = threading.Lock()

    def resolve(self, *, force: bool = False) -> list[Instance]:
        """The poller's read: resolves again when ``max_age`` has passed since the last
        resolution (or ``force``). A failed refresh keeps the last list; raises DcsError only
        when no list has ever been resolved."""
        with self._lock:
            now = self._clock()
            due = force or self._resolved is None or now - self._resolved_at >= self._max_age
            # A project that could not be read is asked again at once, not after max_age.
            due = due or bool(_failures_of(self._dcs))
            if due:
                try:
                    self._resolved = tuple(self._dcs.resolve_instances(self._wanted))
                except DcsError as exc:
                    if self._resolved is None:
                        raise
                    log.warning("could not refresh the instance list, keeping the last: %s", exc)
                # A failed refresh is tried again after max_age too, not on every cycle.
                self._resolved_at = now
            assert self._resolved is not None
            return list(self._resolved)

    def current(self) -> list[Instance]:
        """The handlers' read: the list as last resolved, without asking DCS. Only a process
        that never resolved (a command before the first cycle) resolves once here."""
        resolved = self._resolved
        return list(resolved) if resolved is not None else self.resolve()

    def failures(self) -> dict[str, str]:
        """Projects (by label) whose instances could not be listed at the last resolution."""
        with self._lock:
            return _failures_of(self._dcs)
