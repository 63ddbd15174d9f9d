"""Ways to break a state file for tests: a stored row that lost a field, and a process that
cannot write what root could (tests run as root in some sandboxes, where chmod binds nobody)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from state.base import CycleCommit, InstanceCursor
from state.sqlite import SqliteStore
from tests.state.test_contract import record


def state_with_a_damaged_row(path: Path, instance_id: str, field: str = "status") -> None:
    """An SQLite state whose one unfinished task of ``instance_id`` has lost ``field``."""
    store = SqliteStore(path)
    store.commit_cycle(
        CycleCommit(
            tasks=[record("t-damaged", instance_id=instance_id)],
            cursors=[InstanceCursor(instance_id, "cache-prod", baselined=True)],
        )
    )
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE state SET value = json_remove(value, ?) WHERE key LIKE 'task:%'",
            (f"$.{field}",),
        )
    conn.close()


def unprivileged() -> list[str]:
    """A command prefix under which file permissions bind: nothing for an ordinary user; for
    root, ``setpriv`` without the capabilities that override them."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("running as root without setpriv: permissions cannot be tested")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]
