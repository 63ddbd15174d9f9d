"""An adaptive limit on DCS requests in flight, shared by every DCS client of the process.

Additive increase, multiplicative decrease (AIMD, as TCP does): each answer that is not a 429
raises the limit by ``1/limit`` (one more request in flight per round of answers), and a 429
halves it, once per round: the 429s of requests that were already in flight when the limit
dropped do not drop it again. So when DCS says "too many requests", the whole poller slows
down, not only the instance that got it, and it speeds up again as DCS keeps answering.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class Slot:
    """One request's place in flight, told how DCS answered it (no answer: no lesson)."""

    __slots__ = ("_answer", "ticket")

    def __init__(self, ticket: int) -> None:
        self.ticket = ticket
        self._answer: str | None = None

    def answered(self, status: int) -> None:
        """DCS answered with HTTP ``status`` (429: too many requests)."""
        self._answer = "throttled" if status == 429 else "answered"


class AdaptiveLimit:
    """At most ``limit`` requests in flight; the limit moves between ``minimum`` and
    ``maximum`` by AIMD (see the module docstring)."""

    def __init__(
        self,
        *,
        initial: int = 32,
        minimum: int = 1,
        maximum: int = 32,
        decrease: float = 0.5,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError("need 1 <= minimum <= initial <= maximum")
        if not 0 < decrease < 1:
            raise ValueError("decrease must be within (0, 1)")
        self._minimum = float(minimum)
        self._maximum = float(maximum)
        self._decrease = decrease
        self._limit = float(initial)
        self._in_flight = 0
        self._tickets = 0
        self._round_start = 0  # a 429 of a request issued before this ticket is old news
        self._cond = threading.Condition()
        #: How many times the limit was cut (for the log and the benchmarks).
        self.decreases = 0

    @property
    def limit(self) -> int:
        """The requests allowed in flight now."""
        with self._cond:
            return int(self._limit)

    @property
    def in_flight(self) -> int:
        """The requests in flight now."""
        with self._cond:
            return self._in_flight

    @contextmanager
    def slot(self) -> Iterator[Slot]:
        """Wait for room, hold a place in flight for one request, and learn from its answer."""
        with self._cond:
            while self._in_flight >= int(self._limit):
                self._cond.wait()
            self._in_flight += 1
            self._tickets += 1
            slot = Slot(self._tickets)
        try:
            yield slot
        finally:
            self._settle(slot)

    def _settle(self, slot: Slot) -> None:
        with self._cond:
            self._in_flight -= 1
            if slot._answer == "throttled" and slot.ticket > self._round_start:
                before = self._limit
                self._limit = max(self._minimum, self._limit * self._decrease)
                self._round_start = self._tickets
                self.decreases += 1
                log.warning(
                    "DCS asks to slow down (429): requests in flight %d -> %d",
                    before,
                    self._limit,
                )
            elif slot._answer == "answered":
                self._limit = min(self._maximum, self._limit + 1.0 / self._limit)
            self._cond.notify_all()
