"""Smoke tests of the benchmarks (``make bench``): each benchmark's core function at a tiny size
returns figures with the right keys and sane values. Never an assertion on speed."""

from __future__ import annotations

import os

import psycopg
import pytest

from benchmarks import bench_ack, bench_cycle, bench_delivery, bench_quiet, bench_state
from benchmarks._common import BENCH_PYTHON, BenchResult, pg_url
from bot.fake_slack import RateLimit

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


def _state_is_sane(m: dict[str, object]) -> None:
    steady, by_id, prune = m["steady"], m["steady_by_id"], m["prune"]
    assert isinstance(steady, dict)
    assert isinstance(by_id, dict)
    assert isinstance(prune, dict)
    assert (steady["changed"], steady["deliveries"], steady["records_read"]) == (20, 40, 200)
    assert by_id["records_read"] == 80
    assert steady["peak_rss_kb"] > steady["rss_start_kb"] > 0
    points = prune["points"]
    assert points[0]["tasks"] == 200
    assert points[-1]["pruned"] > 0
    assert points[-1]["tasks"] < 200 + prune["per_day"] * points[-1]["day"]


def test_state_sqlite_reports_commit_rss_and_pruning() -> None:
    """On SQLite, the state phases report commit times, peak RSS, and pruning that removes
    what passed the retention window."""
    m = bench_state.measure(backend="sqlite", instances=20, tasks=10, days=30)
    _state_is_sane(m)
    assert_reports(bench_state.report([m]))


@pytest.mark.postgres
def test_state_postgres_reports_commit_rss_and_pruning() -> None:
    """The same on PostgreSQL, in a schema of its own that is dropped afterwards."""
    try:
        psycopg.connect(pg_url(), connect_timeout=3).close()
    except psycopg.Error as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL NOT REACHABLE at TEST_DATABASE_URL: {exc}")
        pytest.skip(f"PostgreSQL NOT REACHABLE at TEST_DATABASE_URL: {exc}")
    m = bench_state.measure(backend="postgres", instances=20, tasks=10, days=30)
    _state_is_sane(m)


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
