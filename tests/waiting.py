"""The one way tests wait: poll a condition until it holds or a generous deadline passes.

A test waits for a condition, never for a fixed time; the deadline only bounds a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def poll_until(check: Callable[[], T], timeout: float, *, step: float = 0.02) -> T | None:
    """``check()``'s first truthy value, or None once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(step)


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """``check()``'s first truthy value; the test fails naming ``what`` after ``timeout``."""
    value = poll_until(check, timeout)
    if not value:
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
    return value
