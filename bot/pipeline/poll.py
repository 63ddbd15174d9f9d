"""The poll cycle, as a pipeline of named steps: resolve the watched instances → fetch
(``fetch``) → diff (``changes``) → plan the deliveries (``plan``: route, hold what a mute covers
(``mutes``), digest, render with usual durations) → summaries of ended mutes and warnings about
stuck tasks (``stuck``) → commit. Delivery is a
separate stage (``bot.slack.deliver``) that drains what the commit enqueued.

One failing instance never stops the others; nothing is written for an instance whose fetch
failed, so a DCS fault can never produce a false alert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.dcs.errors import DcsError
from bot.dcs.models import Instance, Task
from bot.pipeline import gone
from bot.pipeline import mutes as muting
from bot.pipeline.changes import Change, diff, to_record
from bot.pipeline.durations import finished_samples, finishing, usual_durations
from bot.pipeline.fetch import WATERMARK_OVERLAP, Fetched, TaskSource, fetch
from bot.pipeline.health import CYCLE_KEY
from bot.pipeline.plan import digest_channels, render_deliveries, route_changes
from bot.pipeline.routing import route
from bot.pipeline.stuck import Running, is_stuck, running_longer
from bot.pipeline.watch import WatchedInstances
from bot.slack.summaries import stuck_warning
from state.base import (
    CycleCommit,
    DurationStats,
    InstanceCursor,
    Mute,
    MutedAlert,
    NewDelivery,
    StateStore,
    Subscription,
)

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What one cycle saw and decided."""

    instances: int
    changes: list[Change]
    commit: CycleCommit
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: Instances that answered with malformed task records (skipped): why, by instance ID.
    malformed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every watched instance was read."""
        return not self.errors

    @property
    def alerts(self) -> int:
        """How many changes send something to Slack."""
        return sum(1 for c in self.changes if c.reason.alerts)


@dataclass(frozen=True, slots=True)
class Planned:
    """The plan step's result: what to send, what mutes held back, which mutes were
    summarized and which tasks were warned about as stuck."""

    deliveries: list[NewDelivery]
    muted: list[MutedAlert] = field(default_factory=list)
    summarized: list[int] = field(default_factory=list)
    stuck: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch of instances, ready to commit: the commit, its changes, what failed."""

    commit: CycleCommit
    changes: list[Change]
    errors: dict[str, str]
    malformed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Diffed:
    """The diff step's result for all instances: what to write, the new cursors, what failed."""

    changes: list[Change]
    cursors: list[InstanceCursor]
    errors: dict[str, str]


def diff_all(
    fetched: Sequence[Fetched], cursors: dict[str, InstanceCursor], now: datetime
) -> Diffed:
    """Diff every instance that was read; an instance that failed keeps its cursor (with the
    error) and contributes no change."""
    changes: list[Change] = []
    new_cursors: list[InstanceCursor] = []
    errors: dict[str, str] = {}
    for answer in fetched:
        iid, name = answer.instance.instance_id, answer.instance.label
        cursor = cursors.get(iid) or InstanceCursor(iid, name, baselined=False)
        if answer.tasks is None:
            errors[iid] = answer.error or "unknown error"
            new_cursors.append(replace(cursor, name=name, last_error=answer.error))
            continue
        changes += diff(answer.instance, answer.previous, answer.tasks, baselined=cursor.baselined)
        watermark = newest_created(answer.tasks, cursor.watermark)
        new_cursors.append(
            InstanceCursor(
                iid, name, True, last_polled_at=now, last_error=None, watermark=watermark
            )
        )
    return Diffed(changes, new_cursors, errors)


def newest_created(tasks: Sequence[Task], watermark: datetime | None) -> datetime | None:
    """The newest ``created_at`` among ``tasks`` and the old watermark: it never moves back."""
    times = [t.created_at for t in tasks if t.created_at is not None]
    if watermark is not None:
        times.append(watermark)
    return max(times, default=None)


def cycle_meta(
    errors: dict[str, str], instances: Sequence[Instance], now: datetime
) -> dict[str, Any]:
    """The health bookkeeping of a cycle: when it last succeeded, or what failed (by name)."""
    if not errors:
        return {"last_success_at": now.isoformat()}
    names = {i.instance_id: i.label for i in instances}
    summary = "; ".join(f"{names.get(k, k)}: {v}" for k, v in sorted(errors.items()))
    return {"last_error": {"at": now.isoformat(), "message": summary[:500]}}


class Poller:
    """Runs poll cycles: fetch every watched instance, detect changes, commit them with the
    deliveries they cause in one transaction."""

    def __init__(
        self,
        dcs: TaskSource,
        store: StateStore,
        watched: WatchedInstances,
        *,
        alert_channel: str | None,
        lookback: timedelta,
        digest_threshold: int = 10,
        retention: timedelta = timedelta(days=30),
        max_in_flight: int = 32,
        prune_every: timedelta = timedelta(hours=1),
        stuck_after: timedelta = timedelta(minutes=30),
        scope: str = "",
        clock: Callable[[], datetime] = utcnow,
        interval: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        batch_size: int = 100,
        overlap: timedelta = WATERMARK_OVERLAP,
        gone_after: timedelta = gone.GONE_AFTER,
    ) -> None:
        """``scope`` names the project whose tasks' usual durations this poller learns;
        ``stuck_after`` is DCS_STUCK_AFTER; a cycle longer than ``interval`` (the poll
        interval) is reported as an overrun."""
        self._dcs = dcs
        self._store = store
        self._watched = watched
        self._alert_channel = alert_channel
        self._lookback = lookback
        self._digest_threshold = digest_threshold
        self._retention = retention
        self._max_in_flight = max(1, max_in_flight)
        self._prune_every = prune_every
        self._stuck_after = stuck_after
        self._scope = scope
        self._clock = clock
        self._interval = interval
        self._monotonic = monotonic
        self._batch_size = max(1, batch_size)
        self._overlap = overlap
        self._gone_after = gone_after
        self._last_prune: datetime | None = None

    def run_cycle(self, *, commit: bool = True) -> CycleResult:
        """One cycle, in batches of at most ``batch_size`` instances, each fetched, diffed,
        planned and committed in one transaction before the next is read: memory follows the
        batch, not the fleet, and a crash between batches loses nothing (a batch not
        committed is read again next cycle, from its old cursors). The cycle's health facts
        go with the last batch. With ``commit=False`` (dry run) nothing is written."""
        started = self._monotonic()
        now = self._clock()
        try:
            instances = self._watched.resolve()
        except DcsError as exc:
            return self._instance_list_failed(exc, now, started, commit=commit)
        cursors = self._store.cursors()
        batches = [
            instances[i : i + self._batch_size] for i in range(0, len(instances), self._batch_size)
        ] or [[]]
        # A project whose instance list cannot be read fails the cycle too (its instances may
        # be missing from the list), while the others' changes are committed as usual.
        errors = {f"project {k}": v for k, v in self._watched.failures().items()}
        kept: list[Change] = []
        sent: list[NewDelivery] = []
        malformed: dict[str, str] = {}
        cycle = CycleCommit()
        missing = gone.missing_since(self._store.get_meta(gone.MISSING_KEY))
        for number, batch in enumerate(batches, start=1):
            last = number == len(batches)
            done = self._batch(batch, instances, cursors, now, first=number == 1, missing=missing)
            cycle = done.commit
            missing = cycle.meta[gone.MISSING_KEY]
            errors.update(done.errors)
            malformed.update(done.malformed)
            if last:
                meta = {**cycle.meta, **cycle_meta(errors, instances, now)}
                meta[CYCLE_KEY] = self._timing(self._monotonic() - started, now)
                cycle = replace(cycle, meta=meta)
            if commit:
                self._store.commit_cycle(cycle)
            # One batch: the result is the cycle itself. Several: only what goes to Slack is
            # kept, so that a first cycle over a large fleet never holds every record at once.
            kept += (
                done.changes if len(batches) == 1 else [c for c in done.changes if c.reason.alerts]
            )
            sent += cycle.deliveries
        if commit:
            self._maybe_prune(now)
        if len(batches) > 1:
            cycle = replace(cycle, tasks=(), cursors=(), deliveries=sent)
        result = CycleResult(
            len(instances), kept, cycle, errors, self._monotonic() - started, malformed
        )
        log.info(
            "cycle: %d instances in %d batch(es), %d changes, %d deliveries, %d failed, %.2fs",
            result.instances,
            len(batches),
            len(result.changes),
            len(sent),
            len(result.errors),
            result.seconds,
        )
        return result

    def _batch(
        self,
        batch: Sequence[Instance],
        instances: Sequence[Instance],
        cursors: dict[str, InstanceCursor],
        now: datetime,
        *,
        first: bool,
        missing: dict[str, dict[str, str]],
    ) -> Batch:
        """Fetch, diff and plan one batch into what its commit writes; settle the tasks DCS
        stopped listing (``missing``: since when each has been absent, see bot.pipeline.gone)."""
        fetched = fetch(
            self._dcs,
            self._store,
            batch,
            now=now,
            lookback=self._lookback,
            max_in_flight=self._max_in_flight,
            cursors=cursors,
            overlap=self._overlap,
            clock=self._clock,
        )
        diffed = diff_all(fetched, cursors, now)
        subscriptions = self._store.subscriptions()
        planned = self._plan(
            diffed.changes, fetched, instances, now, subscriptions, summarize=first
        )
        settled = gone.settle(
            fetched,
            missing,
            now=now,
            alert_channel=self._alert_channel,
            subscriptions=subscriptions,
            gone_after=self._gone_after,
        )
        commit = CycleCommit(
            tasks=[to_record(c, now) for c in diffed.changes] + settled.records,
            cursors=diffed.cursors,
            deliveries=[*planned.deliveries, *settled.deliveries],
            meta={gone.MISSING_KEY: settled.missing},
            muted=planned.muted,
            mutes_summarized=planned.summarized,
            durations=finished_samples(diffed.changes, self._scope, now),
            stuck=planned.stuck,
        )
        malformed = {a.instance.instance_id: "; ".join(a.malformed) for a in fetched if a.malformed}
        return Batch(commit, diffed.changes, diffed.errors, malformed)

    def _timing(self, seconds: float, now: datetime) -> dict[str, Any]:
        """How long the cycle took, and whether it overran the poll interval (then said in the
        log: the scheduler skips the ticks that fall within it, and the next cycle starts
        on the first tick after it ends, never on top of it)."""
        overran = self._interval is not None and seconds > self._interval
        if overran:
            log.warning(
                "cycle took %.1fs, longer than the poll interval of %ss: the ticks it overlaps "
                "are skipped, not made up",
                seconds,
                self._interval,
            )
        return {"at": now.isoformat(), "seconds": round(seconds, 3), "overran": overran}

    def refresh_instances(self) -> None:
        """Keep the watched list fresh without polling (a standby's tick), so the handlers of
        a process that does not poll read current instances too; never raises for DCS."""
        try:
            self._watched.resolve()
        except DcsError as exc:
            log.warning("cannot list the watched instances: %s", exc)

    def _plan(
        self,
        changes: Sequence[Change],
        fetched: Sequence[Fetched],
        instances: Sequence[Instance],
        now: datetime,
        subscriptions: Sequence[Subscription],
        *,
        summarize: bool = True,
    ) -> Planned:
        """The deliveries of the cycle: alerts routed by the current subscriptions, less those
        an active mute holds back, with usual durations; then the summaries of mutes that
        ended and the warnings about newly stuck tasks."""
        mutes = self._store.mutes()
        running = running_longer(fetched, self._stuck_after, now)
        wanted = finishing(changes) + [(r.instance, r.task.name) for r in running]
        usual = usual_durations(self._store, wanted, self._scope)

        names = {i.instance_id: i.label for i in instances}
        over = muting.ended(mutes, now) if summarize else []
        deliveries: list[NewDelivery] = []
        for mute in over:  # first: what a mute held back comes before what follows it
            held_back = self._store.muted_alerts(mute.id)
            deliveries += muting.summary_deliveries(mute, held_back, names, now=now)

        routed = route_changes(
            changes, alert_channel=self._alert_channel, subscriptions=subscriptions
        )
        routed, held = muting.hold_muted(routed, mutes, now)
        digests = digest_channels(routed, threshold=self._digest_threshold)
        clocks = {a.instance.instance_id: a.dcs_now(now) for a in fetched}
        deliveries += render_deliveries(routed, digests, now=now, usual=usual, dcs_now=clocks)
        warned = self._stuck_deliveries(running, usual, subscriptions, mutes, now)
        deliveries += warned.deliveries
        return Planned(deliveries, held, [m.id for m in over], warned.stuck)

    def _stuck_deliveries(
        self,
        running: Sequence[Running],
        usual: dict[str, dict[str, DurationStats]],
        subscriptions: Sequence[Subscription],
        mutes: Sequence[Mute],
        now: datetime,
    ) -> Planned:
        """One broadcast thread reply per channel for each task newly stuck and not muted."""
        candidates = [
            r
            for r in running
            if is_stuck(
                r, usual.get(r.instance.instance_id, {}).get(r.task.name), self._stuck_after
            )
            if muting.muting(mutes, r.task, r.instance.name, now, r.instance.places) is None
        ]
        if not candidates:
            return Planned([])
        marked = self._store.stuck_marked({(r.task.instance_id, r.task.id) for r in candidates})
        deliveries: list[NewDelivery] = []
        warned: list[tuple[str, str]] = []
        for item in candidates:
            task = item.task
            if (task.instance_id, task.id) in marked:
                continue
            warned.append((task.instance_id, task.id))
            stats = usual.get(task.instance_id, {}).get(task.name)
            message = stuck_warning(task.name, task.status, item.seconds, stats)
            for channel in route(
                task,
                item.instance.name,
                self._alert_channel,
                subscriptions,
                places=item.instance.places,
            ):
                deliveries.append(
                    NewDelivery(
                        "reply",
                        channel,
                        message.text,
                        message.blocks,
                        task.instance_id,
                        task.id,
                        reply_broadcast=True,
                    )
                )
        return Planned(deliveries, stuck=warned)

    def _instance_list_failed(
        self, exc: DcsError, now: datetime, started: float, *, commit: bool
    ) -> CycleResult:
        """No instance list at all: record the error for /health and poll nothing."""
        log.error("cannot list the watched instances: %s", exc)
        error = {"at": now.isoformat(), "message": f"instance list: {exc}"}
        failed = CycleCommit(meta={"last_error": error})
        if commit:
            self._store.commit_cycle(failed)
        return CycleResult(0, [], failed, {"*": str(exc)}, time.monotonic() - started)

    def _maybe_prune(self, now: datetime) -> None:
        if self._last_prune is not None and now - self._last_prune < self._prune_every:
            return
        self._last_prune = now
        pruned = self._store.prune(now - self._retention)
        if pruned:
            log.info("forgot %d tasks finished more than %s ago", pruned, self._retention)
