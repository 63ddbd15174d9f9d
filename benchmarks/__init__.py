"""Benchmarks of issue 6: plain scripts that print a table (``make bench``), not timed tests."""
