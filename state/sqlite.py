"""The SQLite state store: one sqlitedict table in one file, JSON values, one commit per change.

Every record lives in ONE ``SqliteDict`` table under a prefixed key. Each ``SqliteDict`` owns its
own sqlite connection (and thread), so separate tables would commit separately and a crash
between two commits could record a task change without its delivery; one table on one
connection makes ``commit_cycle`` a single sqlite transaction. Keys (``%``-quoted parts)::

    task:{instance}:{task}   the task record, without its Slack messages
    msg:{instance}:{task}    {channel: ts} of the task's alerts (changed only by delivery_done)
    tid:{task}               instance ID of a task, so find_task needs no scan
    open:{instance}:{task}   present while the task is unfinished, so open_tasks needs no scan
    cursor:{instance}        InstanceCursor
    out:{id:012d}            a pending Delivery (zero-padded: key order is id order)
    sub:{channel}:{instance} Subscription
    mute:{id:012d}           Mute
    held:{mute}:{channel}:{instance}:{task}  MutedAlert (an alert a mute held back)
    dur:{scope}:{name}       the newest duration samples of a kind of task: [[task, s, end]]
    stuck:{instance}:{task}  present once the task was warned about as stuck
    once:{key}               present once ``enqueue_once`` used the key
    meta:{key}               a meta value
    sys:...                  the store's own bookkeeping (format, store id, next delivery id)

sqlitedict has no range query, so prefix scans (``tasks_of``, ``cursors``...) run a
``SELECT`` on its connection over the key's primary-key index: nothing is read that is not
asked for, whatever the number of tasks.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

from sqlitedict import SqliteDict

from state.base import (
    CycleCommit,
    Delivery,
    DurationSample,
    DurationStats,
    Extras,
    InstanceCursor,
    LeaseLostError,
    Mute,
    MutedAlert,
    NewDelivery,
    StateError,
    Subscription,
    TaskRecord,
    TaskReport,
)
from state.deadline import Probe
from state.fence import Fence
from state.rows import (
    cursor_from,
    delivery_from,
    grouped,
    mute_from,
    muted_alert_from,
    subscription_from,
    task_from,
)
from state.stats import MAX_SAMPLES, report_of, summarize, task_seconds

TABLE: Final = "state"
FORMAT_VERSION: Final = 1
_FORMAT_KEY: Final = "sys:format"
_STORE_ID_KEY: Final = "sys:store_id"
_NEXT_ID_KEY: Final = "sys:next_delivery_id"
_EPOCH_KEY: Final = "sys:poller_epoch"
_NEXT_MUTE_KEY: Final = "sys:next_mute_id"
_PAGE: Final = 1000

# Queries on sqlitedict's own table (key TEXT PRIMARY KEY, value): ranges use the key index.
_SCAN: Final = (
    'SELECT key, value FROM "state" WHERE key >= ? AND key < ? AND key > ? ORDER BY key LIMIT ?'
)
# sqlitedict hands every result row to the caller through a queue between threads; packing a
# page of rows into one JSON array row makes a read of thousands of records one hand-off.
_SELECT_KEYS: Final = (
    'SELECT json_group_array(json_array(key, json(value))) FROM "state"'
    " WHERE key IN (SELECT value FROM json_each(?))"
)
_OPEN_TASKS: Final = (
    'SELECT json_group_array(json_array(t.key, json(t.value))) FROM "state" o'
    " JOIN \"state\" t ON t.key = 'task:' || substr(o.key, 6)"
    " WHERE o.key >= 'open:' AND o.key < 'open;'"
)
_COUNT_OUTBOX: Final = "SELECT COUNT(*) FROM \"state\" WHERE key >= 'out:' AND key < 'out;'"
# The report's columns of every task started since a time, packed into one row.
_REPORT: Final = (
    "SELECT json_group_array(json_array(json_extract(value, '$.instance_id'),"
    " json_extract(value, '$.name'), json_extract(value, '$.status'),"
    " json_extract(value, '$.created_at'), json_extract(value, '$.updated_at'),"
    " json_extract(value, '$.first_seen_at'), json_extract(value, '$.finished_at')))"
    ' FROM "state" WHERE key >= ? AND key < ?'
    " AND coalesce(json_extract(value, '$.created_at'), json_extract(value, '$.first_seen_at'))"
    " >= ?"
)
_FINISHED_BEFORE: Final = (
    "SELECT key, json_extract(value, '$.task_id') FROM \"state\" "
    "WHERE key >= 'task:' AND key < 'task;' AND json_extract(value, '$.finished_at') < ?"
)


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _q(part: str) -> str:
    return quote(part, safe="")


def _task_key(instance_id: str, task_id: str) -> str:
    return f"task:{_q(instance_id)}:{_q(task_id)}"


def _out_key(delivery_id: int) -> str:
    return f"out:{delivery_id:012d}"


def _sub_key(channel: str, instance: str) -> str:
    return f"sub:{_q(channel)}:{_q(instance)}"


def _mute_key(mute_id: int) -> str:
    return f"mute:{mute_id:012d}"


def _held_key(alert: MutedAlert) -> str:
    parts = (alert.channel, alert.instance_id, alert.task_id)
    return f"held:{alert.mute_id:012d}:" + ":".join(_q(p) for p in parts)


def _dur_key(scope: str, name: str) -> str:
    return f"dur:{_q(scope)}:{_q(name)}"


def _stuck_key(instance_id: str, task_id: str) -> str:
    return f"stuck:{_q(instance_id)}:{_q(task_id)}"


def _mute_json(mute: Mute) -> dict[str, Any]:
    return {
        "id": mute.id,
        "instance": mute.instance,
        "starts_at": _time(mute.starts_at),
        "ends_at": _time(mute.ends_at),
        "names": list(mute.names),
        "reason": mute.reason,
        "created_by": mute.created_by,
        "channel": mute.channel,
        "ended_by": mute.ended_by,
        "summarized": mute.summarized,
    }


def _held_json(alert: MutedAlert) -> dict[str, Any]:
    return {
        "mute_id": alert.mute_id,
        "channel": alert.channel,
        "instance_id": alert.instance_id,
        "task_id": alert.task_id,
        "name": alert.name,
        "status": alert.status,
        "instance_name": alert.instance_name,
    }


def _time(value: datetime | None) -> str | None:
    """Fixed-width UTC ISO text, so that text order is time order (used by ``prune``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _task_json(record: TaskRecord) -> dict[str, Any]:
    return {
        "instance_id": record.instance_id,
        "task_id": record.task_id,
        "name": record.name,
        "status": record.status,
        "created_at": _time(record.created_at),
        "updated_at": _time(record.updated_at),
        "first_seen_at": _time(record.first_seen_at),
        "finished_at": _time(record.finished_at),
        "task": dict(record.task),
    }


def _task_record(data: Mapping[str, Any], messages: Mapping[str, str] | None) -> TaskRecord:
    return task_from(data, _parse_time, messages)


def _cursor_json(cursor: InstanceCursor) -> dict[str, Any]:
    return {
        "instance_id": cursor.instance_id,
        "name": cursor.name,
        "baselined": cursor.baselined,
        "last_polled_at": _time(cursor.last_polled_at),
        "last_error": cursor.last_error,
        "watermark": _time(cursor.watermark),
    }


def _sub_json(sub: Subscription) -> dict[str, Any]:
    return {
        "channel": sub.channel,
        "instance": sub.instance,
        "statuses": list(sub.statuses),
        "names": list(sub.names),
        "created_by": sub.created_by,
    }


def _check_foreign(path: Path) -> None:
    """Refuse a file that is not an SQLite database, or one that holds other tables only."""
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in probe.execute("SELECT name FROM sqlite_master")}
        finally:
            probe.close()
    except sqlite3.OperationalError as exc:  # permissions, a read-only directory...
        raise StateError(
            f"state file {path} cannot be opened ({exc}); this user needs to read and write "
            "the file and its directory (SQLite adds -wal and -shm files beside it)"
        ) from None
    except sqlite3.Error as exc:
        raise StateError(
            f"state file {path} is not a readable SQLite database ({exc}); "
            "fix or move it away, it was left untouched"
        ) from None
    if tables and TABLE not in tables:
        raise StateError(
            f"state file {path} is an SQLite database of something else (no '{TABLE}' table); "
            "choose another STATE_PATH"
        )


class SqliteStore:
    """The ``StateStore`` kept in one SQLite file (sqlitedict, JSON, never pickle).

    ``claim_seconds``: how long ``pending_deliveries`` hands a delivery to one caller of this
    object before handing it out again. ``clock`` gives the time stamped on new deliveries.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        claim_seconds: float = 60,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.path = Path(path)
        self._claim_seconds = claim_seconds
        self._clock = clock
        self._lock = threading.RLock()
        self._claims: dict[int, datetime] = {}
        self._lock_fd: int | None = None
        self._fence = Fence()
        self._probe = Probe(f"state file {self.path}")
        if not self.path.parent.is_dir():
            raise StateError(f"state file {self.path}: directory {self.path.parent} does not exist")
        _check_foreign(self.path)
        self._db: SqliteDict | None = None
        self._db = self._open_db()
        try:
            self.store_id: str = self._initialise()
        except BaseException:
            self.close()
            raise

    def _initialise(self) -> str:
        """Stamp a new file with the format and a store ID; refuse a newer format."""
        with self._op("initialising", write=True):
            fmt = self._get(_FORMAT_KEY)
            if isinstance(fmt, int) and fmt > FORMAT_VERSION:
                raise StateError(
                    f"state file {self.path} has format {fmt}, newer than this program knows"
                )
            if fmt is None:
                self._write({_FORMAT_KEY: FORMAT_VERSION, _STORE_ID_KEY: uuid.uuid4().hex})
            return str(self._get(_STORE_ID_KEY))

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def _open_db(self) -> SqliteDict:
        try:
            db = SqliteDict(
                str(self.path),
                tablename=TABLE,
                autocommit=False,
                journal_mode="WAL",
                encode=_dumps,
                decode=json.loads,
                outer_stack=False,
            )
            # sqlitedict turns fsync off; in WAL mode NORMAL keeps the file consistent through
            # a power loss at no cost per commit.
            db.conn.execute("PRAGMA synchronous=NORMAL")
            return db
        except (sqlite3.Error, RuntimeError, OSError) as exc:
            raise StateError(
                f"state file {self.path} cannot be opened ({exc}); it was left untouched"
            ) from None

    @property
    def _conn(self) -> Any:
        if self._db is None:
            raise StateError(f"state file {self.path}: the store is closed")
        return self._db

    @contextmanager
    def _op(self, action: str, *, write: bool = False) -> Iterator[None]:
        """Serialise threads; turn failures into StateError; undo a failed write."""
        with self._lock:
            try:
                yield
            except StateError:
                if write:
                    self._discard_uncommitted()
                raise
            except (sqlite3.Error, RuntimeError, OSError, ValueError, TypeError) as exc:
                if write:
                    self._discard_uncommitted()
                hint = ""
                if "readonly" in str(exc):
                    hint = " (this user cannot write the file or its directory)"
                raise StateError(f"state file {self.path}: {action} failed: {exc}{hint}") from exc

    def _discard_uncommitted(self) -> None:
        """Close the connection without committing (sqlite rolls back), then reconnect."""
        db, self._db = self._db, None
        if db is None:  # closed: stays closed
            return
        for _ in range(2):  # the first close may only re-raise the failed statement's error
            try:
                db.close(do_log=False)
                break
            except Exception:  # noqa: S112 - already failing; the reconnect below decides
                continue
        self._db = self._open_db()

    def _get(self, key: str, default: Any = None) -> Any:
        return self._conn.get(key, default)

    def _write(
        self, items: Mapping[str, Any], deletes: Iterable[str] = (), *, fenced: bool = False
    ) -> None:
        """Write and delete in one sqlite transaction (values are all encoded before any write).

        ``fenced``: after the writes, while this transaction holds the file's write lock, check
        the poller lease's epoch; the caller's ``_op`` rolls everything back when it changed.
        """
        db = self._conn
        db.update(items)
        keys = [(key,) for key in deletes]
        if keys:
            db.conn.executemany('DELETE FROM "state" WHERE key = ?', keys)
        if fenced:
            self._check_fence()
        db.commit()

    def _check_fence(self) -> None:
        """Refuse when the lease this thread took has changed hands since."""
        token = self._fence.token()
        if token is None:
            return
        stored = self._get(_EPOCH_KEY)
        if stored != token:
            raise LeaseLostError(
                f"state file {self.path}: the poller lease was taken by another process "
                f"(epoch {stored}, this one held {token}); nothing was written"
            )

    def _scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        """Key/value pairs whose key starts with ``prefix``, in key order, a page at a time
        (sqlitedict queues a whole result in memory)."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        after = ""
        while True:
            rows = list(self._conn.conn.select(_SCAN, (prefix, upper, after, _PAGE)))
            for key, value in rows:
                yield key, json.loads(value)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def _select(self, keys: list[str]) -> Iterator[tuple[str, Any]]:
        """Key/value pairs of the given keys that exist, a page at a time."""
        for start in range(0, len(keys), _PAGE):
            page = json.dumps(keys[start : start + _PAGE])
            packed = self._conn.conn.select_one(_SELECT_KEYS, (page,))
            yield from json.loads(packed[0]) if packed and packed[0] else ()

    def _with_messages(self, rows: Iterable[tuple[str, Any]]) -> Iterator[TaskRecord]:
        """Task records of ``task:`` rows, their messages read a page at a time."""
        page: list[tuple[str, Any]] = []
        for row in rows:
            page.append(row)
            if len(page) == _PAGE:
                yield from self._page_with_messages(page)
                page = []
        yield from self._page_with_messages(page)

    def _page_with_messages(self, page: list[tuple[str, Any]]) -> Iterator[TaskRecord]:
        msg_keys = ["msg:" + key[len("task:") :] for key, _ in page]
        messages = {"task:" + key[len("msg:") :]: value for key, value in self._select(msg_keys)}
        for key, data in page:
            yield _task_record(data, messages.get(key))

    def tasks_of(self, instance_id: str) -> dict[str, TaskRecord]:
        """Every remembered task of an instance, by task ID."""
        with self._op("reading tasks"):
            rows = self._scan(f"task:{_q(instance_id)}:")
            return {record.task_id: record for record in self._with_messages(rows)}

    def tasks_by_id(
        self, wanted: Mapping[str, Collection[str]]
    ) -> dict[str, dict[str, TaskRecord]]:
        """The remembered tasks among ``wanted`` (instance ID → task IDs), by instance then task
        ID; unknown ones are absent. One batched read for the whole poll cycle."""
        with self._op("reading tasks"):
            keys = sorted({_task_key(i, t) for i, ids in wanted.items() for t in ids})
            return grouped(self._with_messages(self._select(keys)))

    def open_tasks(self, instance_ids: Collection[str]) -> dict[str, dict[str, TaskRecord]]:
        """The remembered unfinished tasks of these instances, by instance then task ID."""
        wanted = {_q(i) for i in instance_ids}
        with self._op("reading tasks"):
            packed = self._conn.conn.select_one(_OPEN_TASKS)
            rows = json.loads(packed[0]) if packed and packed[0] else []
            mine = [(k, v) for k, v in rows if k[len("task:") :].split(":", 1)[0] in wanted]
            return grouped(self._with_messages(mine))

    def find_task(self, task_id: str) -> TaskRecord | None:
        """One remembered task by ID, whatever its instance."""
        with self._op("reading a task"):
            instance_id = self._get(f"tid:{_q(task_id)}")
            if instance_id is None:
                return None
            key = _task_key(instance_id, task_id)
            data = self._get(key)
            if data is None:
                return None
            return _task_record(data, self._get("msg:" + key[len("task:") :]))

    def all_tasks(self) -> Iterator[TaskRecord]:
        """Every remembered task (for migration). The store's lock is held per page only,
        so a page read is consistent but the whole listing is not one snapshot."""
        after = ""
        while True:
            with self._op("reading tasks"):
                rows = list(self._conn.conn.select(_SCAN, ("task:", "task;", after, _PAGE)))
                page = [(key, json.loads(value)) for key, value in rows]
                records = list(self._page_with_messages(page))
            yield from records
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def cursors(self) -> dict[str, InstanceCursor]:
        """Every instance cursor, by instance ID."""
        with self._op("reading cursors"):
            return {d["instance_id"]: cursor_from(d, _parse_time) for _, d in self._scan("cursor:")}

    def commit_cycle(self, commit: CycleCommit) -> None:
        """Upsert tasks (keeping their stored messages), cursors and meta, append deliveries;
        one sqlite transaction."""
        with self._op("committing a poll cycle", write=True):
            items: dict[str, Any] = {}
            closed: list[str] = []
            for record in commit.tasks:
                key = _task_key(record.instance_id, record.task_id)
                items[key] = _task_json(record)
                items[f"tid:{_q(record.task_id)}"] = record.instance_id
                if record.finished_at is None:
                    items["open:" + key[len("task:") :]] = True
                else:
                    closed.append("open:" + key[len("task:") :])
            for cursor in commit.cursors:
                items[f"cursor:{_q(cursor.instance_id)}"] = _cursor_json(cursor)
            for key, value in commit.meta.items():
                items[f"meta:{key}"] = value
            self._delivery_items(commit.deliveries, items)
            self._extra_items(commit, items)
            self._write(items, deletes=closed, fenced=True)

    def _delivery_items(self, deliveries: Iterable[NewDelivery], items: dict[str, Any]) -> None:
        """Add outbox rows for ``deliveries`` to ``items`` (to be written in one transaction)."""
        deliveries = list(deliveries)
        if not deliveries:
            return
        next_id: int = self._get(_NEXT_ID_KEY, 1)
        created = _time(self._clock())
        for new in deliveries:
            items[_out_key(next_id)] = {
                "id": next_id,
                "kind": new.kind,
                "channel": new.channel,
                "text": new.text,
                "blocks": list(new.blocks),
                "instance_id": new.instance_id,
                "task_id": new.task_id,
                "reply_broadcast": new.reply_broadcast,
                "created_at": created,
                "attempts": 0,
                "next_try_at": None,
                "last_error": None,
            }
            next_id += 1
        items[_NEXT_ID_KEY] = next_id

    def _extra_items(self, commit: CycleCommit, items: dict[str, Any]) -> None:
        """Add a cycle's held alerts, ended mutes, duration samples and stuck marks."""
        for alert in commit.muted:
            items[_held_key(alert)] = _held_json(alert)
        for mute_id in commit.mutes_summarized:
            data = self._get(_mute_key(mute_id))
            if data is not None:
                items[_mute_key(mute_id)] = {**data, "summarized": True}
        by_kind: dict[str, list[DurationSample]] = {}
        for sample in commit.durations:
            by_kind.setdefault(_dur_key(sample.scope, sample.name), []).append(sample)
        for key, samples in by_kind.items():
            kept = {row[0]: row for row in self._get(key, [])}
            for sample in samples:
                kept[sample.task_id] = [sample.task_id, sample.seconds, _time(sample.finished_at)]
            newest = sorted(kept.values(), key=lambda row: row[2])[-MAX_SAMPLES:]
            items[key] = newest
        for instance_id, task_id in commit.stuck:
            items[_stuck_key(instance_id, task_id)] = True

    def pending_deliveries(self, now: datetime, limit: int = 100) -> list[Delivery]:
        """Due deliveries, oldest first; each handed out once until done, failed or its claim
        (``claim_seconds``) ends. A delivery waits while an earlier one to its channel is not
        due or is claimed, so a channel's order survives a restart (an update never overtakes
        its post)."""
        with self._op("reading deliveries"):
            self._check_fence()
            out: list[Delivery] = []
            waiting: set[str] = set()
            for _, data in self._scan("out:"):
                delivery = delivery_from(data, _parse_time)
                if delivery.channel in waiting:
                    continue
                claim = self._claims.get(delivery.id)
                due = delivery.next_try_at is None or delivery.next_try_at <= now
                if not (due and (claim is None or claim <= now)):
                    waiting.add(delivery.channel)
                    continue
                out.append(delivery)
                if len(out) >= limit:
                    break
            until = now + timedelta(seconds=self._claim_seconds)
            for delivery in out:
                self._claims[delivery.id] = until
            return out

    def all_deliveries(self) -> list[Delivery]:
        """Every delivery still in the outbox, due or not (for migration)."""
        with self._op("reading deliveries"):
            return [delivery_from(data, _parse_time) for _, data in self._scan("out:")]

    def count_pending(self) -> int:
        """How many deliveries are still waiting (due or not)."""
        with self._op("counting deliveries"):
            row = self._conn.conn.select_one(_COUNT_OUTBOX)
            return int(row[0])

    def delivery_done(self, delivery_id: int, ts: str | None = None) -> None:
        """Remove a delivered item; with ``ts``, the item's task remembers it as its message in
        that channel, in the same commit."""
        with self._op("recording a delivery", write=True):
            self._claims.pop(delivery_id, None)
            data = self._get(_out_key(delivery_id))
            if data is None:
                return
            items: dict[str, Any] = {}
            task_id = data["task_id"]
            if task_id is not None and ts is not None:
                instance_id = data["instance_id"] or self._get(f"tid:{_q(task_id)}")
                if instance_id is not None:
                    key = _task_key(instance_id, task_id)
                    if key in self._conn:
                        msg_key = "msg:" + key[len("task:") :]
                        messages = dict(self._get(msg_key, {}))
                        messages[data["channel"]] = ts
                        items[msg_key] = messages
            self._write(items, deletes=[_out_key(delivery_id)])

    def delivery_failed(self, delivery_id: int, error: str, next_try_at: datetime | None) -> None:
        """Record a failed attempt: retry at ``next_try_at``, or drop it when that is None."""
        with self._op("recording a failed delivery", write=True):
            self._claims.pop(delivery_id, None)
            key = _out_key(delivery_id)
            data = self._get(key)
            if data is None:
                return
            if next_try_at is None:
                self._write({}, deletes=[key])
                return
            data.update(
                attempts=data["attempts"] + 1, next_try_at=_time(next_try_at), last_error=error
            )
            self._write({key: data})

    def prune(self, finished_before: datetime) -> int:
        """Forget tasks that finished before the given time; return how many."""
        with self._op("pruning tasks", write=True):
            rows = list(self._conn.conn.select(_FINISHED_BEFORE, (_time(finished_before),)))
            deletes: list[str] = []
            for key, task_id in rows:
                rest = key[len("task:") :]
                deletes += [key, "msg:" + rest, "open:" + rest, f"tid:{_q(task_id)}"]
                deletes.append("stuck:" + rest)
            items: dict[str, Any] = {}
            cutoff = _time(finished_before) or ""
            for key, samples in self._scan("dur:"):
                kept = [row for row in samples if row[2] >= cutoff]
                if len(kept) != len(samples):
                    items[key] = kept
            for key, data in self._scan("mute:"):
                if data["summarized"] and data["ends_at"] < cutoff:
                    deletes.append(key)
                    deletes += [k for k, _ in self._scan(f"held:{data['id']:012d}:")]
            if deletes or items:
                self._write(items, deletes=deletes)
            return len(rows)

    def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        """Every subscription, or those of one channel, by channel then instance."""
        with self._op("reading subscriptions"):
            prefix = "sub:" if channel is None else f"sub:{_q(channel)}:"
            subs = [subscription_from(data) for _, data in self._scan(prefix)]
            return sorted(subs, key=lambda s: (s.channel, s.instance))

    def add_subscription(self, subscription: Subscription) -> None:
        """Add or replace the subscription of (channel, instance)."""
        with self._op("saving a subscription", write=True):
            key = _sub_key(subscription.channel, subscription.instance)
            self._write({key: _sub_json(subscription)})

    def remove_subscription(self, channel: str, instance: str) -> bool:
        """Remove the subscription of (channel, instance); False when there was none."""
        with self._op("removing a subscription", write=True):
            key = _sub_key(channel, instance)
            if key not in self._conn:
                return False
            self._write({}, deletes=[key])
            return True

    def get_meta(self, key: str) -> Any:
        """A JSON value stored under ``key`` (None when absent)."""
        with self._op("reading meta"):
            return self._get(f"meta:{key}")

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``."""
        with self._op("writing meta", write=True):
            self._write({f"meta:{key}": value})

    def all_meta(self) -> dict[str, Any]:
        """Every meta value by key (for migration)."""
        with self._op("reading meta"):
            return {key[len("meta:") :]: value for key, value in self._scan("meta:")}

    def add_mute(self, mute: Mute) -> Mute:
        """Store a new mute under the next mute ID and return it."""
        with self._op("saving a mute", write=True):
            mute_id: int = self._get(_NEXT_MUTE_KEY, 1)
            stored = replace(mute, id=mute_id)
            self._write({_mute_key(mute_id): _mute_json(stored), _NEXT_MUTE_KEY: mute_id + 1})
            return stored

    def mutes(self, *, include_summarized: bool = False) -> list[Mute]:
        """The mutes not yet summarized (every kept one with ``include_summarized``), by ID."""
        with self._op("reading mutes"):
            found = [mute_from(data, _parse_time) for _, data in self._scan("mute:")]
            return [m for m in found if include_summarized or not m.summarized]

    def end_mute(self, mute_id: int, at: datetime, by: str | None) -> Mute | None:
        """End a mute still running at ``at``; None when there is none such."""
        with self._op("ending a mute", write=True):
            data = self._get(_mute_key(mute_id))
            if data is None:
                return None
            mute = mute_from(data, _parse_time)
            if mute.summarized or mute.ends_at <= at:
                return None
            ended = replace(mute, ends_at=max(at, mute.starts_at), ended_by=by)
            self._write({_mute_key(mute_id): _mute_json(ended)})
            return ended

    def muted_alerts(self, mute_id: int) -> list[MutedAlert]:
        """The alerts a mute held back, by channel then task."""
        with self._op("reading muted alerts"):
            found = [muted_alert_from(d) for _, d in self._scan(f"held:{mute_id:012d}:")]
            return sorted(found, key=lambda a: (a.channel, a.instance_id, a.task_id))

    def duration_stats(self, scope: str, names: Collection[str]) -> dict[str, DurationStats]:
        """The usual duration of each of these names in ``scope`` that has samples."""
        wanted = {name: _dur_key(scope, name) for name in names}
        with self._op("reading durations"):
            found = dict(self._select(sorted(set(wanted.values()))))
        out: dict[str, DurationStats] = {}
        for name, key in wanted.items():
            stats = summarize(row[1] for row in found.get(key, []))
            if stats is not None:
                out[name] = stats
        return out

    def stuck_marked(self, keys: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (instance ID, task ID) were already warned about as stuck."""
        by_key = {_stuck_key(i, t): (i, t) for i, t in keys}
        with self._op("reading stuck marks"):
            return {by_key[key] for key, _ in self._select(sorted(by_key))}

    def task_report(self, since: datetime, instance_id: str | None = None) -> TaskReport:
        """The report of the tasks started since ``since``, in one packed query."""
        low, high = ("task:", "task;")
        if instance_id is not None:
            low = f"task:{_q(instance_id)}:"
            high = low[:-1] + ";"
        with self._op("reading the report"):
            packed = self._conn.conn.select_one(_REPORT, (low, high, _time(since)))
        rows = json.loads(packed[0]) if packed and packed[0] else []

        def seconds(row: list[Any]) -> float | None:
            created, updated, seen, finished = (_parse_time(v) for v in row[3:7])
            assert seen is not None
            return task_seconds(created, updated, seen, finished)

        return report_of((row[0], row[1], row[2], seconds(row)) for row in rows)

    def enqueue_once(self, key: str, deliveries: Sequence[NewDelivery]) -> bool:
        """Append ``deliveries`` unless ``key`` was used before; True when appended."""
        with self._op("enqueueing once", write=True):
            once = f"once:{_q(key)}"
            if once in self._conn:
                return False
            items: dict[str, Any] = {once: True}
            self._delivery_items(deliveries, items)
            self._write(items)
            return True

    def export_extras(self) -> Extras:
        """Mutes, held alerts, duration samples, stuck marks and once-keys (for migration)."""
        with self._op("reading extras"):
            durations = [
                DurationSample(
                    unquote(key.split(":")[1]),
                    unquote(key.split(":")[2]),
                    row[0],
                    row[1],
                    _parse_time(row[2]) or datetime.min,
                )
                for key, rows in self._scan("dur:")
                for row in rows
            ]
            return Extras(
                mutes=[mute_from(data, _parse_time) for _, data in self._scan("mute:")],
                muted=[muted_alert_from(data) for _, data in self._scan("held:")],
                durations=durations,
                stuck=[
                    (unquote(key.split(":")[1]), unquote(key.split(":")[2]))
                    for key, _ in self._scan("stuck:")
                ],
                once=[unquote(key[len("once:") :]) for key, _ in self._scan("once:")],
            )

    def acquire_poller(self, owner: str) -> bool:
        """Hold an exclusive ``flock`` on ``{real path}.lock``; False when another holder has
        it. The real path (symlinks and ``..`` resolved) names the lock, so two pollers cannot
        share one file through two paths to it."""
        with self._lock:
            if self._lock_fd is not None:
                return self._renew()
            lock_path = f"{self.path.resolve()}.lock"
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StateError(f"cannot open lock file {lock_path}: {exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            os.ftruncate(fd, 0)
            os.write(fd, f"{owner} pid={os.getpid()}\n".encode())
            self._lock_fd = fd
            try:
                with self._op("taking the poller lease", write=True):
                    epoch = int(self._get(_EPOCH_KEY, 0)) + 1
                    self._write({_EPOCH_KEY: epoch})
            except BaseException:
                self.release_poller(owner)
                raise
            self._fence.held(epoch)
            return True

    def _renew(self) -> bool:
        """Still the poller? Only if no other process took the lease since (through a lock
        file that was deleted and made again, or a file system without working flock)."""
        with self._op("renewing the poller lease"):
            stored = self._get(_EPOCH_KEY)
        held = self._fence.held_epoch()
        if held is not None and stored == held:
            self._fence.held(held)  # this thread works under the lease from now on
            return True
        assert self._lock_fd is not None
        fd, self._lock_fd = self._lock_fd, None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        self._fence.lost()
        return False

    def release_poller(self, owner: str) -> None:
        """Give up the poller lock (the lock file stays: deleting it would race)."""
        with self._lock:
            if self._lock_fd is not None:
                fd, self._lock_fd = self._lock_fd, None
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                self._fence.released()

    def ping(self, timeout: float = 1.0) -> None:
        """Raise StateError unless the file answers a read within ``timeout`` seconds."""

        def read() -> None:
            with self._op("answering a ping"):
                self._conn.conn.select_one("SELECT 1")

        self._probe(read, timeout)

    def close(self) -> None:
        """Release the poller lock and the file; closing twice is fine."""
        with self._lock:
            self.release_poller("")
            db, self._db = self._db, None
            if db is not None:
                try:
                    db.close(do_log=False)
                except (sqlite3.Error, RuntimeError) as exc:
                    raise StateError(f"state file {self.path}: closing failed: {exc}") from None
