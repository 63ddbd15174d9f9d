"""Smoke test of ``benchmarks/bench_stats.py`` (``make bench --only stats``): at a tiny size it
measures every figure on both stores and reports. Never an assertion on speed."""

from __future__ import annotations

import pytest

from benchmarks import bench_stats


@pytest.mark.postgres
def test_stats_measures_every_figure_on_both_stores() -> None:
    """Each store gets every figure as a number of ms, and the report renders with a target
    per store."""
    m = bench_stats.measure(instances=5, per_instance=4)
    assert set(m) == {"sqlite", "postgres"}
    for figures in m.values():
        assert figures.keys() == {key for key, _ in bench_stats.ROWS} | {"tasks"}
        assert figures["tasks"] == 20
        assert all(value >= 0 for value in figures.values())
    result = bench_stats.report(m)
    assert len(result.targets) == 2
    assert "report, all 30 days" in result.render()
