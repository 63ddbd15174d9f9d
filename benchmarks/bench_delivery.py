"""Issue 6, "delivery": alerts over several channels into a FakeSlack that rate-limits each
channel (a token bucket, HTTP 429 with ``Retry-After`` beyond it), drained by the Deliverer as
built: total time against the floor the rate limit allows, lost = 0, duplicated = 0.

The outbox is filled in one ``commit_cycle``; the Deliverer drains it again and again (as
``serve`` would, but without waiting a poll interval between drains: when nothing is due, the
loop sleeps until the earliest ``next_try_at``). Two orders: alerts interleaved across channels,
and grouped by channel (what a cycle produces when each channel subscribes to its own
instances). Run alone: ``python benchmarks/bench_delivery.py [--quick]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.slack.deliver import Deliverer, make_web_client
from bot.testing.fake_slack import FakeSlack, RateLimit
from state.base import CycleCommit, NewDelivery
from state.sqlite import SqliteStore

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import SLACK_TOKEN, BenchResult, Table, Target, script_main

TARGET_RATIO = 1.2


def floor_seconds(per_channel: Sequence[int], limit: RateLimit) -> float:
    """The least time the rate limit allows: channels are independent, and each sends its first
    ``burst`` at once, then one per ``1 / per_second``."""
    return max((max(0, n - limit.burst) / limit.per_second for n in per_channel), default=0.0)


def measure(
    *,
    alerts: int,
    channels: int = 5,
    limit: RateLimit = RateLimit(per_second=1.0, burst=3),  # noqa: B008 - frozen dataclass
    order: str = "interleaved",
    timeout: float = 900.0,
) -> dict[str, Any]:
    """Deliver ``alerts`` posts over ``channels`` channels; figures: ``seconds``, ``floor``,
    ``lost``, ``duplicated``, ``rate_limited`` (429 answers), ``waited`` (seconds the Deliverer
    slept on Retry-After), ``drains`` and ``pending`` (left when ``timeout`` ran out)."""
    names = [f"C0BENCH{k:03d}" for k in range(channels)]
    per = alerts // channels
    texts = [f"bench alert {a:05d}" for a in range(alerts)]

    def channel_of(a: int) -> str:
        if order == "grouped":
            return names[min(a // per, channels - 1)] if per else names[0]
        return names[a % channels]

    with (
        FakeSlack(token=SLACK_TOKEN, rate_limit=limit) as slack,
        tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp,
    ):
        store = SqliteStore(Path(tmp) / "state.sqlite")
        try:
            block = {"type": "section", "text": {"type": "mrkdwn", "text": "benchmark alert"}}
            store.commit_cycle(
                CycleCommit(
                    deliveries=[
                        NewDelivery("post", channel_of(a), text, [block])
                        for a, text in enumerate(texts)
                    ]
                )
            )
            deliverer = Deliverer(make_web_client(SLACK_TOKEN, slack.url), store)
            started = time.monotonic()
            drains, waited = 0, 0.0
            while store.count_pending() and time.monotonic() - started < timeout:
                report = deliverer.drain()
                drains += 1
                waited += report.waited_seconds
                _sleep_until_due(store)
            seconds = time.monotonic() - started
            pending = store.count_pending()
        finally:
            store.close()
        seen = Counter(m.text for name in names for m in slack.messages(name))
        posts = len(slack.calls_to("chat.postMessage"))
    counts = Counter(channel_of(a) for a in range(alerts))
    return {
        "alerts": alerts,
        "channels": channels,
        "order": order,
        "per_second": limit.per_second,
        "burst": limit.burst,
        "seconds": seconds,
        "floor": floor_seconds([counts[n] for n in names], limit),
        "lost": sum(1 for t in texts if seen[t] == 0),
        "duplicated": sum(c - 1 for c in seen.values() if c > 1),
        "rate_limited": posts - sum(seen.values()),
        "waited": waited,
        "drains": drains,
        "pending": pending,
    }


def _sleep_until_due(store: SqliteStore) -> None:
    """Sleep until the earliest ``next_try_at`` of what is left (none left: return at once)."""
    waits = [d.next_try_at for d in store.all_deliveries() if d.next_try_at is not None]
    if waits:
        delay = (min(waits) - datetime.now(UTC)).total_seconds()
        if delay > 0:
            time.sleep(min(delay, 60.0))


def report(runs: Sequence[dict[str, Any]]) -> BenchResult:
    """Tables and targets from the figures of ``measure``."""
    table = Table(
        "delivery: posts into a FakeSlack rate-limited per channel (429 + Retry-After)",
        ["order", "alerts", "channels", "limit", "seconds", "floor s", "x floor", "429s",
         "slept s", "drains", "lost", "duplicated"],
    )  # fmt: skip
    result = BenchResult("delivery", [table])
    for r in runs:
        ratio = r["seconds"] / r["floor"] if r["floor"] else float("nan")
        table.rows.append(
            [
                r["order"],
                str(r["alerts"]),
                str(r["channels"]),
                f"{r['per_second']:g}/s burst {r['burst']}",
                f"{r['seconds']:.1f}",
                f"{r['floor']:.1f}",
                f"{ratio:.2f}",
                str(r["rate_limited"]),
                f"{r['waited']:.0f}",
                str(r["drains"]),
                str(r["lost"]),
                str(r["duplicated"]),
            ]
        )
        label = f"{r['alerts']} alerts / {r['channels']} channels, {r['order']}"
        result.targets.append(
            Target(
                f"delivery time ({label})",
                f"{ratio:.2f}x floor ({r['seconds']:.1f} s vs {r['floor']:.1f} s)",
                f"<= {TARGET_RATIO}x",
                ratio <= TARGET_RATIO,
            )
        )
        result.targets.append(
            Target(
                f"lost / duplicated ({label})",
                f"{r['lost']} / {r['duplicated']}",
                "0 / 0",
                r["lost"] == 0 and r["duplicated"] == 0 and r["pending"] == 0,
            )
        )
    table.notes += [
        "floor = max over channels of (alerts - burst) / rate: channels are independent;",
        "slept s = what the Deliverer waited on Retry-After (DrainReport.waited_seconds);",
        "between drains the loop sleeps until the earliest next_try_at (serve would wait for",
        "the next poll tick instead, DCS_POLL_INTERVAL later).",
    ]
    return result


def run(quick: bool) -> BenchResult:
    """500 alerts over 5 channels, interleaved, and 50 grouped by channel (50 and 20 with
    ``quick``)."""
    if quick:
        return report([measure(alerts=50), measure(alerts=20, order="grouped")])
    return report([measure(alerts=500), measure(alerts=50, order="grouped")])


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/bench_delivery.py [--quick]``."""
    return script_main("delivery", run, argv)


if __name__ == "__main__":
    sys.exit(main())
