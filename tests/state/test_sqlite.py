"""What only the SQLite store does: its file, its JSON rows, its file lock."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from state.base import CycleCommit, StateError, Subscription
from state.sqlite import SqliteStore
from tests.state.conftest import T0, StoreFactory
from tests.state.test_contract import INSTANCE, post, record

GARBAGE = bytes(range(256)) * 16


def test_garbage_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A file that is not SQLite raises StateError naming the path and is not rewritten."""
    path = tmp_path / "state.sqlite"
    path.write_bytes(GARBAGE)
    with pytest.raises(StateError, match=re.escape(str(path))):
        SqliteStore(path)
    assert path.read_bytes() == GARBAGE


@pytest.mark.parametrize(("start", "end"), [(100, 4096), (8192, 16384)], ids=["header", "data"])
def test_damaged_database_is_refused_and_left_untouched(
    tmp_path: Path, start: int, end: int
) -> None:
    """A real state file with a damaged page raises StateError naming it and keeps its bytes."""
    path = tmp_path / "state.sqlite"
    store = SqliteStore(path)
    store.commit_cycle(CycleCommit(tasks=[record(f"t{i}") for i in range(200)]))
    store.close()
    damaged = bytearray(path.read_bytes())
    damaged[start:end] = (GARBAGE * 4)[: end - start]
    path.write_bytes(bytes(damaged))

    def open_and_read() -> None:
        opened = SqliteStore(path)
        try:
            opened.tasks_of(INSTANCE)
        finally:
            opened.close()

    with pytest.raises(StateError, match=re.escape(str(path))):
        open_and_read()
    assert path.read_bytes() == bytes(damaged)


def test_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """An SQLite file of another program is not adopted (no table is added to it)."""
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StateError, match="something else"):
        SqliteStore(path)
    assert path.read_bytes() == before


def test_missing_directory_is_a_state_error(tmp_path: Path) -> None:
    """A STATE_PATH in a directory that does not exist is refused with the path."""
    path = tmp_path / "nope" / "state.sqlite"
    with pytest.raises(StateError, match="does not exist"):
        SqliteStore(path)
    assert not path.parent.exists()


def test_newer_format_is_refused(tmp_path: Path) -> None:
    """A file written by a newer format version is not used."""
    path = tmp_path / "state.sqlite"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE state SET value = '99' WHERE key = 'sys:format'")
    conn.close()
    with pytest.raises(StateError, match="newer"):
        SqliteStore(path)


def test_rows_are_json_text_never_pickle(tmp_path: Path) -> None:
    """Every stored value is JSON text, readable without the program (no pickle)."""
    path = tmp_path / "state.sqlite"
    store = SqliteStore(path)
    store.commit_cycle(
        CycleCommit(tasks=[record()], deliveries=[post()], meta={"last_poll": T0.isoformat()})
    )
    [delivery] = store.pending_deliveries(T0)
    store.delivery_done(delivery.id, ts="1.2")
    store.commit_cycle(CycleCommit(deliveries=[post()]))
    store.add_subscription(Subscription("C1", "*", statuses=("FAILED",)))
    store.close()

    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT key, value, typeof(value) FROM state").fetchall()
    conn.close()
    kinds = {key.split(":", 1)[0] for key, _, _ in rows}
    assert {"task", "msg", "tid", "out", "sub", "meta", "sys"} <= kinds
    for key, value, kind in rows:
        assert kind == "text", key
        json.loads(value)
    task_row = next(v for k, v, _ in rows if k.startswith("task:"))
    assert json.loads(task_row)["first_seen_at"] == T0.isoformat(timespec="microseconds")


def test_concurrent_threads_get_distinct_delivery_ids(sqlite_factory: StoreFactory) -> None:
    """Threads sharing one store never lose a commit nor reuse a delivery ID."""
    store = sqlite_factory()

    def enqueue(n: int) -> None:
        for i in range(20):
            store.commit_cycle(CycleCommit(deliveries=[post(channel=f"C{n}-{i}")]))
            store.tasks_of(INSTANCE)

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pending = store.pending_deliveries(T0, limit=1000)
    assert len(pending) == 80
    assert len({d.id for d in pending}) == 80


def test_lock_file_names_its_owner(sqlite_factory: StoreFactory, tmp_path: Path) -> None:
    """The poller lock file says who holds it."""
    store = sqlite_factory()
    assert store.acquire_poller("web.1") is True
    assert (tmp_path / "state.sqlite.lock").read_text().startswith("web.1 ")


def test_poller_lock_excludes_another_process(tmp_path: Path) -> None:
    """While another process holds the poller lock, this one is refused; after it exits, not."""
    path = tmp_path / "state.sqlite"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from state.sqlite import SqliteStore; "
            f"s = SqliteStore({str(path)!r}); print(s.acquire_poller('other'), flush=True); "
            "sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "True"
        store = SqliteStore(path)
        assert store.acquire_poller("me") is False
        holder.communicate("\n", timeout=30)
        assert store.acquire_poller("me") is True
        store.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_closed_store_raises_state_error(sqlite_factory: StoreFactory) -> None:
    """Using a closed store is a StateError, not a crash deep in sqlitedict."""
    store = sqlite_factory()
    store.close()
    with pytest.raises(StateError, match="closed"):
        store.tasks_of(INSTANCE)
    with pytest.raises(StateError, match="closed"):
        store.set_meta("k", 1)
    with pytest.raises(StateError, match="closed"):  # a failed write did not reopen it
        store.get_meta("k")
    store.close()  # closing twice is fine


def test_poller_lock_holds_through_a_symlink_to_the_file(tmp_path: Path) -> None:
    """A second poller reaching the same file through a symlink is refused: the lock is named
    by the file's real path."""
    path = tmp_path / "state.sqlite"
    first = SqliteStore(path)
    assert first.acquire_poller("first") is True
    (tmp_path / "link.sqlite").symlink_to(path)
    second = SqliteStore(tmp_path / "link.sqlite")
    try:
        assert second.acquire_poller("second") is False
        first.close()
        assert second.acquire_poller("second") is True
    finally:
        second.close()
        first.close()
