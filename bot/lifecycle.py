"""How a long-running process (``serve``, ``poll``, ``simulate``) lives and ends.

SIGTERM (a dyno stop) and SIGINT set one stop event. The work starts in a worker thread, so the
main thread does nothing but wait and is always free to take the signal, even while the start
waits on an unreachable database. Once stopped, the process ends within ``grace`` seconds
whatever is still running: the stop event cuts retry sleeps and delivery waits short, the shutdown
steps get what time is left, and what still runs after that (a request stalled on the network) is
abandoned. Nothing is lost that way: a poll cycle commits its outbox and snapshot in one
transaction, and a delivery is marked done only after Slack said ok, so an unsent one stays in
the outbox for the next process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from bot.pipeline.schedule import PollRunner
from state.base import PollerLockedError, StateError

log = logging.getLogger(__name__)

#: The promise of INTERFACE.md is 10 s from SIGTERM to exit. A healthy shutdown takes well under
#: a second; this bound only cuts short what is stalled (a DCS request, a database), which more
#: waiting would not save, and leaves the rest of the 10 s to the HTTP server's stop and the exit.
DEFAULT_GRACE = 3.0

#: ``start`` returns the function that shuts down what it started.
Stopper = Callable[[], None]


def _hard_exit(status: int) -> NoReturn:
    """End now, without waiting for threads that are stuck in I/O."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


class Lifecycle:
    """Signals, the start in a worker thread, the wait, and a bounded shutdown."""

    def __init__(
        self,
        stop: threading.Event | None = None,
        *,
        grace: float = DEFAULT_GRACE,
        monotonic: Callable[[], float] = time.monotonic,
        exit: Callable[[int], NoReturn] = _hard_exit,
    ) -> None:
        self.stop = stop if stop is not None else threading.Event()
        self._grace = grace
        self._monotonic = monotonic
        self._exit = exit
        self._stop_requested_at: float | None = None

    def install_signals(self) -> None:
        """SIGTERM and SIGINT set ``stop``; call it before anything starts, so none is missed."""

        def handler(signum: int, _frame: object) -> None:
            if self._stop_requested_at is None:
                log.info("received %s, stopping", signal.Signals(signum).name)
                self.request_stop()
            else:  # a second signal: the operator does not want to wait
                log.warning("received %s again, exiting now", signal.Signals(signum).name)
                self._exit(1)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def request_stop(self) -> None:
        """Ask the process to stop (what the signal handler does)."""
        if self._stop_requested_at is None:
            self._stop_requested_at = self._monotonic()
        self.stop.set()

    def _left(self) -> float:
        assert self._stop_requested_at is not None
        return self._stop_requested_at + self._grace - self._monotonic()

    def run(self, start: Callable[[], Stopper]) -> int:
        """Run ``start`` in a worker thread, wait for the stop, then run what it returned.

        An exception from ``start`` is raised here (the command line turns it into its message
        and exit status). Returns 0 after a clean stop; ends the process itself when the stop
        outlives the grace period.
        """
        started = threading.Event()
        outcome: dict[str, object] = {}

        def starting() -> None:
            try:
                outcome["stopper"] = start()
            except BaseException as exc:  # handed to the main thread as it is
                outcome["error"] = exc
            finally:
                started.set()

        threading.Thread(target=starting, name="start", daemon=True).start()
        while not started.wait(0.2):
            if self.stop.is_set():
                log.warning("stopped during start-up")
                self._exit(0)
        error = outcome.get("error")
        if isinstance(error, BaseException):
            raise error
        stopper = outcome["stopper"]
        assert callable(stopper)
        while not self.stop.wait(0.5):
            pass
        self.request_stop()  # a stop set by the work itself (not a signal) starts the clock too
        return self._shut_down(stopper)

    def _shut_down(self, stopper: Stopper) -> int:
        done = threading.Thread(target=stopper, name="shutdown", daemon=True)
        done.start()
        done.join(max(0.0, self._left()))
        if done.is_alive():
            log.warning("shutdown did not finish within %.0f s; exiting now", self._grace)
            self._exit(0)
        # Threads of pools (the scheduler's, the web server's) are joined at interpreter exit:
        # one stuck in a stalled request would hold the exit back past the promise.
        for thread in threading.enumerate():
            if thread is threading.current_thread() or thread.daemon:
                continue
            thread.join(max(0.0, self._left()))
            if thread.is_alive():
                log.warning("thread %s still busy; exiting without it", thread.name)
                self._exit(0)
        log.info("stopped")
        return 0


def claim_poller(runner: PollRunner, *, shared: bool, state_path: Path) -> None:
    """Take the poller lease at start. On SQLite (not ``shared``) a lease held by another live
    process means two pollers on one file, which would alert every change twice: refused."""
    if not runner.heartbeat() and not shared:
        if runner.last_failure is not None:  # the lock could not be taken at all
            raise StateError(runner.last_failure.removeprefix("state: "))
        raise PollerLockedError(
            f"another poller already uses STATE_PATH={state_path}; run one poller per state "
            "file, or set DATABASE_URL so several processes share PostgreSQL"
        )
