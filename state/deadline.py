"""Probes with a deadline: a database that hangs makes a probe fail on time, never wait.

``/readyz`` must answer within a second even when PostgreSQL hangs (a network split, a server
that accepts connections but never answers), so the probe runs on a daemon thread and the
caller waits for it at most ``timeout`` seconds. At most one probe runs at a time: while an
earlier one still hangs, the next fails at once instead of piling up threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from state.base import StateError


class Probe:
    """Runs ``check`` on a thread of its own and waits at most ``timeout`` seconds for it."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._running: threading.Thread | None = None

    def __call__(self, check: Callable[[], None], timeout: float) -> None:
        """Raise StateError when ``check`` fails or does not finish within ``timeout``."""
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                check()
            except BaseException as exc:  # handed to the waiting caller
                outcome.append(exc)
            else:
                outcome.append(None)

        with self._lock:
            if self._running is not None and self._running.is_alive():
                raise StateError(f"{self._what}: an earlier probe has not answered yet")
            thread = threading.Thread(target=run, name="state-probe", daemon=True)
            self._running = thread
            thread.start()
        thread.join(max(0.0, timeout))
        if not outcome:
            raise StateError(f"{self._what}: no answer within {timeout:g} s")
        error = outcome[0]
        if isinstance(error, StateError):
            raise error
        if error is not None:
            raise StateError(f"{self._what}: {type(error).__name__}: {error}")
