"""The fencing token of the poller lease: the lease epoch a store took, as each thread saw it.

``acquire_poller`` bumps the stored epoch whenever the lease changes hands and records it here;
``commit_cycle`` and ``pending_deliveries`` compare the stored epoch with ``token()`` inside
their own transaction. A poller that lost its lease while it worked (a long pause, a network
split, a lock file someone deleted) then writes nothing instead of writing over its successor.

The token is kept per thread: the thread that runs a poll cycle took it at the start of its tick,
so a heartbeat on another thread that takes the lease back later does not bless the cycle that
began under the lost lease. A store that never took the lease (tools, tests) is not fenced.
"""

from __future__ import annotations

import threading
from typing import Final

#: The token of a store that held the lease and lost it: matches no stored epoch.
LOST: Final = -1


class Fence:
    """The epoch of the poller lease this store holds (None: never taken, or released)."""

    def __init__(self) -> None:
        self._shared: int | None = None
        self._local = threading.local()

    def held(self, epoch: int) -> None:
        """This thread (and, by default, every other) works under lease ``epoch``."""
        self._shared = epoch
        self._local.epoch = epoch

    def lost(self) -> None:
        """The lease went to another process: no write of this store passes any more."""
        if self._shared is None and getattr(self._local, "epoch", None) is None:
            return
        self._shared = LOST
        self._local.epoch = LOST

    def released(self) -> None:
        """The lease was given up on purpose: this store is no poller now."""
        self._shared = None
        self._local.epoch = None

    def held_epoch(self) -> int | None:
        """The epoch this store last took (LOST after losing it), whatever the thread."""
        return self._shared

    def token(self) -> int | None:
        """The epoch a write of this thread must find stored; None when it is not fenced."""
        epoch: int | None = getattr(self._local, "epoch", self._shared)
        return epoch
