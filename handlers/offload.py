"""Work done for a Slack user that may wait on DCS or the store, kept off Bolt's threads.

Bolt runs listeners in a small pool (five threads); a listener that waits on a stalled DCS holds
one, and five of them leave nothing to ack other requests. Listeners therefore ``ack()``, hand
the slow part to :class:`Offload` (its own threads and a bounded queue) and return at once; when
the queue is full, the user is told so at once instead of waiting.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Threads answering Slack users' slow requests, and how many more requests may wait for one.
WORKERS = 4
QUEUED = 8
#: The total time one DCS call made for a Slack user may take, retries included.
USER_DCS_DEADLINE = 10.0
BUSY = (
    ":hourglass: The bot is busy answering other requests that wait on DCS; try again in a minute."
)


class Offload:
    """``workers`` daemon threads (started on first use) working through a queue of at most
    ``queued`` waiting jobs. Daemon threads: a stalled call never holds up the process's exit."""

    def __init__(self, workers: int = WORKERS, queued: int = QUEUED) -> None:
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue(maxsize=max(1, queued))
        self._workers = max(1, workers)
        self._lock = threading.Lock()
        self._started = False

    def submit(self, work: Callable[[], None]) -> bool:
        """Queue ``work``; False (and it never runs) when the queue is full."""
        self._start()
        try:
            self._jobs.put_nowait(work)
        except queue.Full:
            return False
        return True

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            for number in range(self._workers):
                threading.Thread(
                    target=self._work, name=f"slack-slow-{number}", daemon=True
                ).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:
                logger.exception("work for a Slack user failed")
