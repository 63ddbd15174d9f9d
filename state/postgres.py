"""The PostgreSQL state store (psycopg 3 + psycopg_pool): for Heroku, where files do not last.

The schema is created and migrated at start (``schema_version``), under an advisory lock so
that two processes starting together do not race. Deliveries are claimed with
``FOR UPDATE SKIP LOCKED`` so that two processes never send the same one; the poller is a
lease row that its owner renews each cycle. Errors become ``StateError`` with the URL's
password redacted.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from state.base import (
    CycleCommit,
    Delivery,
    InstanceCursor,
    StateError,
    Subscription,
    TaskRecord,
)
from state.rows import cursor_from, delivery_from, grouped, subscription_from, task_from

log = logging.getLogger(__name__)

#: Key of the advisory lock held while the schema is created or migrated.
_MIGRATION_LOCK: Final = 0x6463_7374_6173_6B73  # "dcstasks"
_PAGE: Final = 1000

#: Schema versions, in order: the statements that bring version n-1 to n.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        "CREATE TABLE store_info (store_id text NOT NULL)",
        "INSERT INTO store_info (store_id) VALUES (replace(gen_random_uuid()::text, '-', ''))",
        """CREATE TABLE tasks (
            instance_id text NOT NULL,
            task_id text NOT NULL,
            name text NOT NULL,
            status text NOT NULL,
            created_at timestamptz,
            updated_at timestamptz,
            first_seen_at timestamptz NOT NULL,
            finished_at timestamptz,
            task jsonb NOT NULL,
            messages jsonb NOT NULL DEFAULT '{}',
            PRIMARY KEY (instance_id, task_id))""",
        "CREATE INDEX tasks_by_task_id ON tasks (task_id)",
        "CREATE INDEX tasks_by_finished_at ON tasks (finished_at) WHERE finished_at IS NOT NULL",
        """CREATE TABLE cursors (
            instance_id text PRIMARY KEY,
            name text,
            baselined boolean NOT NULL,
            last_polled_at timestamptz,
            last_error text)""",
        """CREATE TABLE outbox (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind text NOT NULL,
            channel text NOT NULL,
            text text NOT NULL,
            blocks jsonb NOT NULL,
            instance_id text,
            task_id text,
            reply_broadcast boolean NOT NULL,
            created_at timestamptz NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            next_try_at timestamptz,
            last_error text,
            claimed_until timestamptz,
            claimed_by text)""",
        """CREATE TABLE subscriptions (
            channel text NOT NULL,
            instance text NOT NULL,
            statuses text[] NOT NULL,
            names text[] NOT NULL,
            created_by text,
            PRIMARY KEY (channel, instance))""",
        "CREATE TABLE meta (key text PRIMARY KEY, value jsonb)",
        """CREATE TABLE poller_lease (
            name text PRIMARY KEY,
            owner text NOT NULL,
            expires_at timestamptz NOT NULL)""",
    ),
    # 2: the poller reads an instance's unfinished tasks every cycle.
    ("CREATE INDEX tasks_open ON tasks (instance_id) WHERE finished_at IS NULL",),
)

_INSERT_TASK: Final = """
    INSERT INTO tasks (instance_id, task_id, name, status, created_at, updated_at,
                       first_seen_at, finished_at, task)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"""
_UPSERT_TASK: Final = (
    _INSERT_TASK
    + """
    ON CONFLICT (instance_id, task_id) DO UPDATE SET
        name = EXCLUDED.name, status = EXCLUDED.status, created_at = EXCLUDED.created_at,
        updated_at = EXCLUDED.updated_at, first_seen_at = EXCLUDED.first_seen_at,
        finished_at = EXCLUDED.finished_at, task = EXCLUDED.task"""
)
_INSERT_CURSOR: Final = """
    INSERT INTO cursors (instance_id, name, baselined, last_polled_at, last_error)
    VALUES (%s, %s, %s, %s, %s)"""
_UPSERT_CURSOR: Final = (
    _INSERT_CURSOR
    + """
    ON CONFLICT (instance_id) DO UPDATE SET
        name = EXCLUDED.name, baselined = EXCLUDED.baselined,
        last_polled_at = EXCLUDED.last_polled_at, last_error = EXCLUDED.last_error"""
)
_UPSERT_META: Final = """
    INSERT INTO meta (key, value) VALUES (%s, %s)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"""
_INSERT_DELIVERY: Final = """
    INSERT INTO outbox (kind, channel, text, blocks, instance_id, task_id, reply_broadcast,
                        created_at, attempts, next_try_at, last_error)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""
# A delivery waits while an earlier one to its channel waits (not due, or claimed), so a
# channel's order survives restarts and failovers (an update never overtakes its post).
_CLAIM: Final = """
    WITH waiting AS (
        SELECT channel, min(id) AS first_id FROM outbox
        WHERE next_try_at > %(now)s OR claimed_until > %(now)s
        GROUP BY channel),
    due AS (
        SELECT id FROM outbox
        WHERE (next_try_at IS NULL OR next_try_at <= %(now)s)
          AND (claimed_until IS NULL OR claimed_until <= %(now)s)
          AND NOT EXISTS (
            SELECT 1 FROM waiting
            WHERE waiting.channel = outbox.channel AND waiting.first_id < outbox.id)
        ORDER BY id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED)
    UPDATE outbox SET claimed_until = %(until)s, claimed_by = %(by)s
    FROM due WHERE outbox.id = due.id
    RETURNING outbox.*"""
_ACQUIRE: Final = """
    INSERT INTO poller_lease (name, owner, expires_at) VALUES ('poller', %(owner)s, %(until)s)
    ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
    WHERE poller_lease.owner = EXCLUDED.owner OR poller_lease.expires_at <= %(now)s
    RETURNING owner"""


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _task_record(row: Mapping[str, Any]) -> TaskRecord:
    return task_from(row, _utc, row["messages"])


def _task_params(record: TaskRecord) -> tuple[Any, ...]:
    task = {k: v for k, v in record.task.items() if k != "params"}
    return (
        record.instance_id,
        record.task_id,
        record.name,
        record.status,
        record.created_at,
        record.updated_at,
        record.first_seen_at,
        record.finished_at,
        _jsonb(task),
    )


class PostgresStore:
    """The ``StateStore`` kept in PostgreSQL.

    ``url``: ``postgres://`` or ``postgresql://`` (``sslmode`` and other parameters pass
    through to libpq). ``schema``: keep the tables in this schema (created when missing)
    instead of the default search path. ``lease_seconds``: how long ``acquire_poller`` holds
    the poller lease without renewal. ``claim_seconds``: how long ``pending_deliveries``
    hands a delivery to one caller. ``clock`` stamps new deliveries and leases.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        lease_seconds: float = 120,
        claim_seconds: float = 60,
        pool_size: int = 4,
        connect_timeout: int = 10,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        try:
            params: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.Error:
            # libpq's message would quote the whole URL, password included.
            raise StateError(
                "the PostgreSQL URL is not valid "
                "(expected postgres://user:password@host:5432/dbname)"
            ) from None
        password = str(params.get("password") or "")
        self._secrets = [s for s in {password, quote(password, safe="")} if s]
        self.url = self._redact(self._safe_url(params))
        params.setdefault("connect_timeout", connect_timeout)
        params.setdefault("application_name", "dcs-tasks-bot")
        self._schema = schema
        self._lease = timedelta(seconds=lease_seconds)
        self._claim = timedelta(seconds=claim_seconds)
        self._clock = clock
        self._claimer = uuid.uuid4().hex
        self._lease_owner: str | None = None
        with self._errors("connecting"), psycopg.connect(**params) as conn:
            self._configure(conn)
            self._migrate(conn)
            row = conn.execute("SELECT store_id FROM store_info").fetchone()
            assert row is not None
            self.store_id: str = row[0]
        self._pool = ConnectionPool(
            kwargs=params,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            configure=self._configure,
            check=ConnectionPool.check_connection,
            timeout=float(connect_timeout) * 3,
            name="dcs-tasks-bot-state",
        )
        with self._errors("opening the connection pool"):
            self._pool.open()

    def __repr__(self) -> str:
        schema = f", schema={self._schema!r}" if self._schema else ""
        return f"PostgresStore({self.url!r}{schema})"

    @staticmethod
    def _safe_url(params: Mapping[str, Any]) -> str:
        user = f"{params['user']}@" if params.get("user") else ""
        port = f":{params['port']}" if params.get("port") else ""
        return f"postgresql://{user}{params.get('host', '')}{port}/{params.get('dbname', '')}"

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            message = self._redact(str(exc).strip() or type(exc).__name__)
            raise StateError(f"PostgreSQL {self.url}: {action} failed: {message}") from None
        except (TypeError, ValueError) as exc:
            raise StateError(f"PostgreSQL {self.url}: {action} failed: {exc}") from exc

    @contextmanager
    def _transaction(self, action: str) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """A cursor in one transaction: committed at the end, rolled back on any error."""
        with (
            self._errors(action),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            yield cur

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SET TIME ZONE 'UTC'")
        if self._schema:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
        conn.commit()

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Create or upgrade the schema in one transaction, one process at a time."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            if self._schema:
                name = sql.Identifier(self._schema)
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            current = int(row[0]) if row else 0
            if current > len(MIGRATIONS):
                raise StateError(
                    f"PostgreSQL {self.url}: schema version {current} is newer than this "
                    f"program knows ({len(MIGRATIONS)})"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[version - 1]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))

    def tasks_of(self, instance_id: str) -> dict[str, TaskRecord]:
        """Every remembered task of an instance, by task ID."""
        with self._transaction("reading tasks") as cur:
            cur.execute("SELECT * FROM tasks WHERE instance_id = %s", (instance_id,))
            return {row["task_id"]: _task_record(row) for row in cur}

    def tasks_by_id(
        self, wanted: Mapping[str, Collection[str]]
    ) -> dict[str, dict[str, TaskRecord]]:
        """The remembered tasks among ``wanted`` (instance ID → task IDs), by instance then task
        ID; unknown ones are absent. One query for the whole poll cycle."""
        pairs = [(i, t) for i, ids in wanted.items() for t in ids]
        if not pairs:
            return {}
        with self._transaction("reading tasks") as cur:
            cur.execute(
                "SELECT t.* FROM tasks t JOIN unnest(%s::text[], %s::text[]) AS w(i, k)"
                " ON t.instance_id = w.i AND t.task_id = w.k",
                ([i for i, _ in pairs], [t for _, t in pairs]),
            )
            return grouped(_task_record(row) for row in cur)

    def open_tasks(self, instance_ids: Collection[str]) -> dict[str, dict[str, TaskRecord]]:
        """The remembered unfinished tasks of these instances, by instance then task ID."""
        with self._transaction("reading tasks") as cur:
            cur.execute(
                "SELECT * FROM tasks WHERE finished_at IS NULL AND instance_id = ANY(%s::text[])",
                (list(instance_ids),),
            )
            return grouped(_task_record(row) for row in cur)

    def find_task(self, task_id: str) -> TaskRecord | None:
        """One remembered task by ID, whatever its instance."""
        with self._transaction("reading a task") as cur:
            cur.execute("SELECT * FROM tasks WHERE task_id = %s LIMIT 1", (task_id,))
            row = cur.fetchone()
            return None if row is None else _task_record(row)

    def all_tasks(self) -> Iterator[TaskRecord]:
        """Every remembered task, page by page (for migration)."""
        after: tuple[str, str] = ("", "")
        while True:
            with self._transaction("reading tasks") as cur:
                cur.execute(
                    "SELECT * FROM tasks WHERE (instance_id, task_id) > (%s, %s) "
                    "ORDER BY instance_id, task_id LIMIT %s",
                    (*after, _PAGE),
                )
                page = [_task_record(row) for row in cur]
            yield from page
            if len(page) < _PAGE:
                return
            after = (page[-1].instance_id, page[-1].task_id)

    def cursors(self) -> dict[str, InstanceCursor]:
        """Every instance cursor, by instance ID."""
        with self._transaction("reading cursors") as cur:
            cur.execute("SELECT * FROM cursors")
            return {row["instance_id"]: cursor_from(row, _utc) for row in cur}

    def commit_cycle(self, commit: CycleCommit) -> None:
        """Upsert tasks (keeping their stored messages), cursors and meta, append deliveries;
        one transaction."""
        created = self._clock()
        with self._transaction("committing a poll cycle") as cur:
            if commit.tasks:
                cur.executemany(_UPSERT_TASK, [_task_params(t) for t in commit.tasks])
            if commit.cursors:
                cur.executemany(
                    _UPSERT_CURSOR,
                    [
                        (c.instance_id, c.name, c.baselined, c.last_polled_at, c.last_error)
                        for c in commit.cursors
                    ],
                )
            if commit.meta:
                cur.executemany(_UPSERT_META, [(k, _jsonb(v)) for k, v in commit.meta.items()])
            if commit.deliveries:
                rows = [
                    (
                        d.kind,
                        d.channel,
                        d.text,
                        _jsonb(list(d.blocks)),
                        d.instance_id,
                        d.task_id,
                        d.reply_broadcast,
                        created,
                        0,
                        None,
                        None,
                    )
                    for d in commit.deliveries
                ]
                cur.executemany(_INSERT_DELIVERY, rows)

    def pending_deliveries(self, now: datetime, limit: int = 100) -> list[Delivery]:
        """Due deliveries, oldest first, each claimed for this caller until done, failed or
        ``claim_seconds`` past ``now``."""
        args = {"now": now, "limit": limit, "until": now + self._claim, "by": self._claimer}
        with self._transaction("claiming deliveries") as cur:
            cur.execute(_CLAIM, args)
            return sorted((delivery_from(row, _utc) for row in cur), key=lambda d: d.id)

    def all_deliveries(self) -> list[Delivery]:
        """Every delivery still in the outbox, due or not (for migration)."""
        with self._transaction("reading deliveries") as cur:
            cur.execute("SELECT * FROM outbox ORDER BY id")
            return [delivery_from(row, _utc) for row in cur]

    def count_pending(self) -> int:
        """How many deliveries are still waiting (due or not)."""
        with self._transaction("counting deliveries") as cur:
            cur.execute("SELECT count(*) AS n FROM outbox")
            row = cur.fetchone()
            return int(row["n"]) if row else 0

    def delivery_done(self, delivery_id: int, ts: str | None = None) -> None:
        """Remove a delivered item; with ``ts``, the item's task remembers it as its message in
        that channel, in the same transaction."""
        with self._transaction("recording a delivery") as cur:
            cur.execute(
                "DELETE FROM outbox WHERE id = %s RETURNING kind, channel, instance_id, task_id",
                (delivery_id,),
            )
            row = cur.fetchone()
            if row and row["task_id"] is not None and ts is not None:
                cur.execute(
                    "UPDATE tasks SET messages = messages || jsonb_build_object(%s::text, %s::text)"
                    " WHERE task_id = %s AND (%s::text IS NULL OR instance_id = %s)",
                    (row["channel"], ts, row["task_id"], row["instance_id"], row["instance_id"]),
                )

    def delivery_failed(self, delivery_id: int, error: str, next_try_at: datetime | None) -> None:
        """Record a failed attempt: retry at ``next_try_at``, or drop it when that is None."""
        with self._transaction("recording a failed delivery") as cur:
            if next_try_at is None:
                cur.execute("DELETE FROM outbox WHERE id = %s", (delivery_id,))
            else:
                cur.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_try_at = %s, last_error = %s,"
                    " claimed_until = NULL, claimed_by = NULL WHERE id = %s",
                    (next_try_at, error, delivery_id),
                )

    def prune(self, finished_before: datetime) -> int:
        """Forget tasks that finished before the given time; return how many."""
        with self._transaction("pruning tasks") as cur:
            cur.execute("DELETE FROM tasks WHERE finished_at < %s", (finished_before,))
            return cur.rowcount

    def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        """Every subscription, or those of one channel, by channel then instance."""
        with self._transaction("reading subscriptions") as cur:
            if channel is None:
                cur.execute("SELECT * FROM subscriptions")
            else:
                cur.execute("SELECT * FROM subscriptions WHERE channel = %s", (channel,))
            return sorted(
                (subscription_from(r) for r in cur), key=lambda s: (s.channel, s.instance)
            )

    def add_subscription(self, subscription: Subscription) -> None:
        """Add or replace the subscription of (channel, instance)."""
        s = subscription
        with self._transaction("saving a subscription") as cur:
            cur.execute(
                "INSERT INTO subscriptions (channel, instance, statuses, names, created_by)"
                " VALUES (%s, %s, %s::text[], %s::text[], %s)"
                " ON CONFLICT (channel, instance) DO UPDATE SET statuses = EXCLUDED.statuses,"
                " names = EXCLUDED.names, created_by = EXCLUDED.created_by",
                (s.channel, s.instance, list(s.statuses), list(s.names), s.created_by),
            )

    def remove_subscription(self, channel: str, instance: str) -> bool:
        """Remove the subscription of (channel, instance); False when there was none."""
        with self._transaction("removing a subscription") as cur:
            cur.execute(
                "DELETE FROM subscriptions WHERE channel = %s AND instance = %s",
                (channel, instance),
            )
            return cur.rowcount > 0

    def get_meta(self, key: str) -> Any:
        """A JSON value stored under ``key`` (None when absent)."""
        with self._transaction("reading meta") as cur:
            cur.execute("SELECT value FROM meta WHERE key = %s", (key,))
            row = cur.fetchone()
            return None if row is None else row["value"]

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``."""
        with self._transaction("writing meta") as cur:
            cur.execute(_UPSERT_META, (key, _jsonb(value)))

    def all_meta(self) -> dict[str, Any]:
        """Every meta value by key (for migration)."""
        with self._transaction("reading meta") as cur:
            cur.execute("SELECT key, value FROM meta")
            return {row["key"]: row["value"] for row in cur}

    def acquire_poller(self, owner: str) -> bool:
        """Take the poller lease when it is free or expired, or renew it for its owner."""
        now = self._clock()
        with self._transaction("taking the poller lease") as cur:
            cur.execute(_ACQUIRE, {"owner": owner, "now": now, "until": now + self._lease})
            held = cur.fetchone() is not None
            if held and self._lease_owner != owner:
                # A new poller: the previous one's lease ran out (it died), and only the poller
                # delivers, so its claims are stale: free them now rather than at claim end.
                cur.execute(
                    "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL"
                    " WHERE claimed_by <> %s",
                    (self._claimer,),
                )
        if held:
            self._lease_owner = owner
        elif self._lease_owner == owner:
            self._lease_owner = None
        return held

    def release_poller(self, owner: str) -> None:
        """Give up the poller lease (only its owner's)."""
        with self._transaction("releasing the poller lease") as cur:
            cur.execute("DELETE FROM poller_lease WHERE owner = %s", (owner,))
        if self._lease_owner == owner:
            self._lease_owner = None

    def import_state(
        self,
        source_id: str,
        *,
        tasks: Iterable[TaskRecord] = (),
        cursors: Iterable[InstanceCursor] = (),
        subscriptions: Iterable[Subscription] = (),
        meta: Mapping[str, Any] | None = None,
        deliveries: Sequence[Delivery] = (),
    ) -> dict[str, int]:
        """Copy another store's records in one transaction, never overwriting what is here
        (a task's ``messages`` are merged); return how many of each were added.

        Deliveries get new IDs; the highest source ID copied is kept in meta
        ``migrated:{source_id}`` so that a delivery is never copied twice, even after it was
        delivered from here.
        """
        tasks = list(tasks)
        counts = dict.fromkeys(("tasks", "cursors", "subscriptions", "meta", "deliveries"), 0)
        with self._transaction("importing state") as cur:
            if tasks:
                cur.executemany(
                    _INSERT_TASK + " ON CONFLICT DO NOTHING", [_task_params(t) for t in tasks]
                )
                counts["tasks"] = cur.rowcount
                merges = [
                    (_jsonb(dict(t.messages)), t.instance_id, t.task_id)
                    for t in tasks
                    if t.messages
                ]
                if merges:  # the messages already here win over the copied ones
                    cur.executemany(
                        "UPDATE tasks SET messages = %s || messages"
                        " WHERE instance_id = %s AND task_id = %s",
                        merges,
                    )
            for c in cursors:
                cur.execute(
                    _INSERT_CURSOR + " ON CONFLICT DO NOTHING",
                    (c.instance_id, c.name, c.baselined, c.last_polled_at, c.last_error),
                )
                counts["cursors"] += cur.rowcount
            for s in subscriptions:
                cur.execute(
                    "INSERT INTO subscriptions (channel, instance, statuses, names, created_by)"
                    " VALUES (%s, %s, %s::text[], %s::text[], %s) ON CONFLICT DO NOTHING",
                    (s.channel, s.instance, list(s.statuses), list(s.names), s.created_by),
                )
                counts["subscriptions"] += cur.rowcount
            for key, value in (meta or {}).items():
                cur.execute(
                    "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (key, _jsonb(value)),
                )
                counts["meta"] += cur.rowcount
            if deliveries:
                counts["deliveries"] = self._import_deliveries(cur, source_id, deliveries)
        return counts

    def _import_deliveries(
        self, cur: psycopg.Cursor[dict[str, Any]], source_id: str, deliveries: Sequence[Delivery]
    ) -> int:
        marker = f"migrated:{source_id}"
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (marker,))
        cur.execute("SELECT value FROM meta WHERE key = %s", (marker,))
        row = cur.fetchone()
        done = int(row["value"]) if row else 0
        fresh = sorted((d for d in deliveries if d.id > done), key=lambda d: d.id)
        for d in fresh:
            cur.execute(
                _INSERT_DELIVERY,
                (
                    d.kind,
                    d.channel,
                    d.text,
                    _jsonb(list(d.blocks)),
                    d.instance_id,
                    d.task_id,
                    d.reply_broadcast,
                    d.created_at,
                    d.attempts,
                    d.next_try_at,
                    d.last_error,
                ),
            )
        if fresh:
            cur.execute(_UPSERT_META, (marker, _jsonb(fresh[-1].id)))
        return len(fresh)

    def close(self) -> None:
        """Give up this object's lease and delivery claims, close the pool; twice is fine."""
        if self._pool.closed:
            return
        try:
            if self._lease_owner is not None:
                self.release_poller(self._lease_owner)
            with self._transaction("releasing delivery claims") as cur:
                cur.execute(
                    "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL"
                    " WHERE claimed_by = %s",
                    (self._claimer,),
                )
        except StateError as exc:  # the lease and claims expire on their own
            log.warning("closing the state store: %s", exc)
        finally:
            self._pool.close()
