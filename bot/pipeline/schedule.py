"""Scheduling: APScheduler runs the poll cycle and delivery every DCS_POLL_INTERVAL seconds
(never overlapping, misfires coalesced, a little jitter), and a heartbeat keeps or takes the
poller lease so exactly one process polls a shared state."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from bot.pipeline.poll import CycleResult, Poller
from bot.pipeline.report import ScheduledReport
from bot.slack.deliver import Deliverer, DrainReport
from state.base import LeaseLostError, StateError, StateStore

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    """What one tick did, for an observer (the metrics): only set parts happened."""

    leader: bool = False
    cycle: CycleResult | None = None
    cycle_seconds: float | None = None
    drain: DrainReport | None = None
    pending: int | None = None
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class PollRunner:
    """Owns the scheduler; ``tick`` is one poll cycle followed by delivery."""

    def __init__(
        self,
        poller: Poller,
        deliverer: Deliverer,
        store: StateStore,
        *,
        owner: str,
        interval: int,
        jitter: float | None = None,
        stopping: threading.Event | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_tick: Callable[[TickReport], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        report: ScheduledReport | None = None,
    ) -> None:
        """``on_tick`` hears what each tick did (after it, outside the lock; never raises)."""
        self._poller = poller
        self._report = report
        self._deliverer = deliverer
        self._store = store
        self._owner = owner
        self._interval = interval
        self._jitter = interval / 20 if jitter is None else jitter
        self._clock = clock
        self._on_tick = on_tick
        self._monotonic = monotonic
        # Shared with the Deliverer: once set, it finishes the delivery in hand and returns.
        self._stopping = stopping or threading.Event()
        self._leader = False
        #: Why the last tick's cycle or delivery failed (one line), None when it did not.
        self.last_failure: str | None = None
        self._lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None

    @property
    def is_leader(self) -> bool:
        """True while this process holds the poller lease."""
        return self._leader

    def heartbeat(self) -> bool:
        """Take or renew the poller lease; log when leadership changes."""
        try:
            leader = self._store.acquire_poller(self._owner)
        except StateError as exc:
            self.last_failure = f"state: {exc}"
            log.error("could not take or renew the poller lease: %s", exc)
            leader = False
        except Exception as exc:
            self.last_failure = f"{type(exc).__name__}: {exc}"
            log.exception("could not renew the poller lease")
            leader = False
        if leader != self._leader:
            log.info("%s the poller", "now" if leader else "no longer")
            if leader and self._scheduler is not None:
                # Taking over from a dead poller: poll now rather than at the next slot.
                self._scheduler.modify_job("poll", next_run_time=self._clock())
        self._leader = leader
        return leader

    def tick(self) -> CycleResult | None:
        """One cycle and a delivery drain when this process is the poller; never raises.

        None when another process is the poller, or when the cycle failed: then
        ``last_failure`` says why (a state store that cannot be used is one log line; only
        an unexpected error logs a traceback).
        """
        report = TickReport()
        result = self._tick(report)
        if self._on_tick is not None:
            self._tell(report)
        return result

    def _tell(self, report: TickReport) -> None:
        try:
            if report.leader:
                report.pending = self._store.count_pending()
        except Exception:
            log.debug("outbox depth unknown this tick", exc_info=True)
        report.finished_at = self._clock()
        try:
            assert self._on_tick is not None
            self._on_tick(report)
        except Exception:
            log.exception("tick observer failed")

    def _tick(self, report: TickReport) -> CycleResult | None:
        with self._lock:
            self.last_failure = None
            if not self.heartbeat():
                log.debug("standing by: another process polls")
                self._poller.refresh_instances()
                return None
            report.leader = True
            result: CycleResult | None = None
            began = self._monotonic()
            try:
                result = report.cycle = self._poller.run_cycle()
            except LeaseLostError as exc:
                self._lost(exc)
                return None
            except StateError as exc:
                self.last_failure = f"state: {exc}"
                log.error("poll cycle failed: %s", self.last_failure)
                self._record_error(f"poll cycle: {self.last_failure}")
            except Exception as exc:
                self.last_failure = f"{type(exc).__name__}: {exc}"
                log.exception("poll cycle failed")
                self._record_error(f"poll cycle: {self.last_failure}")
            finally:
                report.cycle_seconds = self._monotonic() - began
            if self._report is not None:
                try:
                    self._report.run()
                except Exception:
                    log.exception("the scheduled report failed")
            try:
                report.drain = self._deliverer.drain()
            except LeaseLostError as exc:
                self._lost(exc)
            except StateError as exc:
                log.error("delivery stopped: state: %s", exc)
                self.last_failure = self.last_failure or f"delivery: state: {exc}"
            except Exception as exc:
                log.exception("delivery failed")
                self.last_failure = self.last_failure or f"delivery: {type(exc).__name__}: {exc}"
            return result

    def _lost(self, exc: LeaseLostError) -> None:
        """Another process took the lease while this one worked: nothing was written."""
        log.warning("no longer the poller: %s", exc)
        self.last_failure = f"lost the poller lease: {exc}"
        self._leader = False

    def _record_error(self, message: str) -> None:
        try:
            error = {"at": self._clock().isoformat(), "message": message[:500]}
            self._store.set_meta("last_error", error)
        except StateError as exc:
            log.warning("could not record the error: %s", exc)
        except Exception:
            log.exception("could not record the error")

    def start(self) -> None:
        """Start the scheduler: the first cycle now, then every interval."""
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(
            self.tick,
            "interval",
            seconds=self._interval,
            jitter=self._jitter,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=self._interval,
            next_run_time=self._clock(),
            id="poll",
        )
        scheduler.add_job(
            self.heartbeat,
            "interval",
            seconds=max(0.2, self._interval / 3),
            max_instances=1,
            coalesce=True,
            id="lease",
        )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        """Stop scheduling, let the running cycle finish its current delivery, release the lease."""
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        try:
            self._store.release_poller(self._owner)
        except Exception:
            log.exception("could not release the poller lease")
