"""The scheduled report (DCS_REPORT_SCHEDULE): at each cron time (UTC) the poller enqueues the
task report for DCS_ALERT_CHANNEL, exactly once per scheduled time however many processes run
or restart around it: the store's ``enqueue_once`` keys it by the scheduled time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.slack.report import report_message
from state.base import NewDelivery, StateStore

log = logging.getLogger(__name__)

#: A scheduled time missed (the bot was down) is still reported this long after it.
GRACE = timedelta(hours=1)
#: The period a scheduled report covers.
PERIOD = timedelta(days=7)


def latest_fire_time(trigger: CronTrigger, now: datetime, grace: timedelta) -> datetime | None:
    """The last time the schedule fired in (now - grace, now], or None."""
    fire = trigger.get_next_fire_time(None, now - grace)
    last: datetime | None = None
    while fire is not None and fire <= now:
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last


class ScheduledReport:
    """Enqueues the report when its scheduled time has come; ``run`` is called every tick."""

    def __init__(
        self,
        store: StateStore,
        schedule: str,
        channel: str,
        *,
        period: timedelta = PERIOD,
        grace: timedelta = GRACE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._trigger = CronTrigger.from_crontab(schedule, timezone=UTC)
        self._channel = channel
        self._period = period
        self._grace = grace
        self._clock = clock

    def run(self) -> bool:
        """Enqueue the report of the latest scheduled time unless that was done; True when
        this call enqueued it."""
        slot = latest_fire_time(self._trigger, self._clock(), self._grace)
        if slot is None:
            return False
        report = self._store.task_report(slot - self._period)
        names = {iid: c.name for iid, c in self._store.cursors().items() if c.name}
        message = report_message(report, names, since=self._period)
        delivery = NewDelivery("post", self._channel, message.text, message.blocks)
        key = f"report:{slot.astimezone(UTC).isoformat()}"
        done = self._store.enqueue_once(key, [delivery])
        if done:
            log.info("scheduled report for %s enqueued", key)
        return done
