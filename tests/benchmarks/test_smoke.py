"""Smoke tests of the benchmarks (``make bench``): each benchmark's core function at a tiny size
returns figures with the right keys and sane values. Never an assertion on speed."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import (
    bench_ack,
    bench_cycle,
    bench_delivery,
    bench_quiet,
    bench_state,
    bench_windows,
)
from benchmarks._common import BENCH_PYTHON, BenchResult
from bot.testing.fake_slack import RateLimit

FIGURES = {"seconds", "cpu_seconds", "sim_cpu_seconds", "requests", "items", "errors", "retries"}


def assert_reports(result: BenchResult) -> None:
    """A report renders, and each of its targets has a verdict."""
    assert result.tables
    assert result.render()
    assert all(t.verdict in {"met", "MISSED", "not measured"} for t in result.targets)


def test_cycle_reads_every_instance_once_in_every_variant() -> None:
    """Each cycle variant (Poller, threads, asyncio, SDK when installed) sends one request per
    instance and reads every task without error."""
    sdk = BENCH_PYTHON.exists()
    m = bench_cycle.measure(
        instances=20, tasks=3, latency=0.0, in_flight=(4,), repeats=1, sdk=sdk, slow_latency=0.0
    )
    for variant in ("poller", "threads", "asyncio", "asyncio_fixed"):
        (figures,) = m[variant]
        assert figures.keys() >= FIGURES
        assert (figures["requests"], figures["errors"]) == (20, 0)
    assert [f["items"] for f in (m["threads"][0], m["asyncio"][0], m["asyncio_fixed"][0])] == [
        60,
        60,
        60,
    ]
    assert m["sequential"]["requests"] == 20
    assert len(m["layers"]) == len(bench_cycle.HTTP_LAYERS)
    for figures in (*m["layers"], m["poller_httpcore"]):
        assert (figures["requests"], figures["errors"]) == (20, 0)
    assert [f["items"] for f in m["layers"]] == [60] * len(bench_cycle.HTTP_LAYERS)
    assert set(m["diagnosis"]) == {"slow", "backlog5"}
    if sdk:
        assert (m["sdk"]["requests"], m["sdk"]["tasks"], m["sdk"]["errors"]) == (20, 60, 0)
    assert_reports(bench_cycle.report(m))


def test_quiet_cycle_calls_slack_never_and_commits_once() -> None:
    """A cycle with nothing new makes no Slack call, one request per instance and one commit
    with no task; one new task makes exactly one Slack post."""
    m = bench_quiet.measure(instances=20, tasks=3, latency=0.0, repeats=1)
    quiet = m["quiet"]
    assert (quiet["slack_calls"], quiet["dcs_requests"], quiet["commits"]) == (0, 20, 1)
    assert (quiet["tasks"], quiet["cursors"], quiet["deliveries"]) == (0, 20, 0)
    assert m["baseline"]["tasks"] == 60
    assert (m["one_new"]["slack_calls"], m["one_new"]["tasks"]) == (1, 1)
    assert_reports(bench_quiet.report(m))


#: Tiny change rates for 20 instances x 4 running tasks: quiet, the target's, and a stress one.
STATE_RATES = (
    bench_state.Rate("quiet", "quiet", 0),
    bench_state.Rate(bench_state.TARGET_RATE, "busy", 5),
    bench_state.Rate("stress", "stress", 20, stress=True),
)


def _state_is_sane(m: dict[str, Any]) -> None:
    """Every rate's cycles read as the Poller does (the running tasks, then by ID only the
    fetched ones that no longer run), finish that many tasks with an update and a reply each,
    and pruning removes what passed the retention window."""
    steady, prune = m["steady"], m["prune"]
    assert set(steady) == {rate.key for rate in STATE_RATES}
    for rate in STATE_RATES:
        figures = steady[rate.key]
        k = rate.changes
        assert figures["changed"] == figures["recorded"] == [k]
        assert figures["deliveries"] == [2 * k]
        assert figures["open_read"] == [80 - c * k for c in range(bench_state.CYCLES)]
        assert figures["by_id_read"] == [c * k for c in range(bench_state.CYCLES)]
        assert figures["warm_pruned"] == 0
        assert figures["peak_rss_kb"] > figures["rss_start_kb"] > 0
    assert m["after_fill"][1] == m["after_steady"][1] == 200
    points = prune["points"]
    assert points[0]["tasks"] == 200
    assert points[-1]["pruned"] > 0
    assert points[-1]["tasks"] < 200 + prune["per_day"] * points[-1]["day"]


def test_state_sqlite_reports_cycle_reads_commit_rss_and_pruning() -> None:
    """On SQLite, the Poller's cycles at each change rate report reads, commit times and peak
    RSS, and pruning removes what passed the retention window."""
    m = bench_state.measure(backend="sqlite", instances=20, tasks=10, days=16, rates=STATE_RATES)
    _state_is_sane(m)
    result = bench_state.report([m])
    assert_reports(result)
    assert [t.met is not None for t in result.targets] == [True, True, True]


@pytest.mark.postgres
@pytest.mark.usefixtures("pg_url")  # reachable, else a loud skip
def test_state_postgres_reports_cycle_reads_commit_rss_and_pruning() -> None:
    """The same on PostgreSQL, in a schema of its own that is dropped afterwards."""
    m = bench_state.measure(backend="postgres", instances=20, tasks=10, days=16, rates=STATE_RATES)
    _state_is_sane(m)


def test_state_rates_cannot_finish_more_tasks_than_are_running() -> None:
    """A change rate that would need more running tasks than the fetched windows hold is
    refused rather than measured wrong."""
    with pytest.raises(ValueError, match="running tasks"):
        bench_state.finishing_order(20, 21)


def test_ack_answers_every_signed_command_with_200() -> None:
    """``serve`` acks every signed help and list command with 200 and answers each one."""
    m = bench_ack.measure(requests=3, instances=2, warmup=1)
    for text in bench_ack.COMMANDS:
        figures = m["commands"][text]
        assert figures["statuses"] == {200: 3}
        assert 0 < figures["p50"] <= figures["p99"] <= figures["max"]
    assert m["paced"]["statuses"] == {200: 3}
    assert m["answered"] == m["sent"] == 11
    assert_reports(bench_ack.report(m))


def test_delivery_loses_and_duplicates_nothing_under_rate_limits() -> None:
    """Every alert lands exactly once in its channel, whatever the rate limit answered."""
    for order in ("interleaved", "grouped"):
        m = bench_delivery.measure(
            alerts=9, channels=3, limit=RateLimit(per_second=50, burst=2), order=order
        )
        assert (m["lost"], m["duplicated"], m["pending"]) == (0, 0, 0)
        assert m["floor"] == pytest.approx(1 / 50)
    assert_reports(bench_delivery.report([m]))


def test_windows_quiet_cycle_reads_less_with_the_watermark_than_the_full_window() -> None:
    """The quiet cycle with watermarks reads fewer tasks and bytes than with the full window."""
    quiet = bench_windows.measure_quiet(5)
    assert quiet["before"]["tasks"] == bench_windows.TASKS
    assert quiet["after"]["tasks"] < quiet["before"]["tasks"]
    assert quiet["after"]["bytes"] < quiet["before"]["bytes"]


def _no_wait(seconds: float) -> None:
    """A retry wait skipped: the smoke tests count requests, never time them."""


def test_windows_storm_cuts_the_shared_limit() -> None:
    """Under a 429 storm the shared limit is cut and the figures come back."""
    storm = bench_windows.measure_storm(10, 0.5, sleep=_no_wait)
    assert storm["cuts"] >= 1
    assert storm["requests"] > 10
    assert storm["requests"] == storm["read"] + storm["throttled"]  # one 200 per instance read


def test_windows_capacity_storm_fixed_limit_keeps_its_32_and_reports_429s() -> None:
    """Against DCS's concurrency limit, the fixed limit never moves and the 429s DCS sent are
    counted; every instance is read or reported failed."""
    for adaptive in (True, False):
        storm = bench_windows.measure_storm(12, 0.0, capacity=4, adaptive=adaptive, sleep=_no_wait)
        assert storm["read"] + storm["failed"] == 12
        assert storm["requests"] == storm["read"] + storm["throttled"]
        if adaptive:
            assert storm["limit"] < 32
        else:
            assert (storm["limit"], storm["cuts"]) == (32, None)
