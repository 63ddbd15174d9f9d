"""A DCS simulator: the background-task, instance and IAM token APIs served over loopback HTTP.

The same code backs the tests, ``dcs-tasks-bot simulate`` and ``dcs-tasks-bot demo``. It answers
like the DCS API reference describes (see ``/v2/{project_id}/instances/{instance_id}/tasks``):

* tasks newest first, filtered by ``created_at`` within ``start_time``..``end_time`` (UTC
  ``yyyyMMddHHmmss``, both ends inclusive to the second), paged by ``offset`` (>= 0, default 0)
  and ``limit`` (1..1000, default 10 when absent); unknown query parameters (``begin_time``) are
  ignored, as DCS does;
* ``task_count`` as a string (the documented type) or, with ``task_count_as_number``, a number;
* error bodies ``{"error_code", "error_msg", "error_ext_msg": null}``: 400 for bad paging or
  times, 404 for an unknown project, instance or path, 401 for missing or bad credentials;
* a ``Date`` header read from the simulator's ``clock`` (a clock set off the real time plays
  a DCS whose clock is skewed from the bot's);
* authentication only when credentials are configured: AK/SK signatures (checked by
  :func:`bot.testing.aksk.verify_signed_request`) and ``X-Auth-Token`` tokens (given, or issued by
  ``POST /v3/auth/tokens`` for ``iam_users``); with none configured every request is accepted.

Faults can be injected one by one (:meth:`DcsSimulator.inject`) or at random with a seeded rate
(:meth:`DcsSimulator.set_fault_rate`); every request is recorded in :attr:`DcsSimulator.requests`.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import random
import re
import secrets
import socket
import struct
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx

from bot.testing.aksk import verify_signed_request
from bot.testing.loopback import LoopbackHTTPServer, Serving

logger = logging.getLogger("bot.testing.simulator")

#: The keys of a DetailsBody, in the reference's order; absent ones are sent as null.
DETAIL_KEYS: tuple[str, ...] = (
    "old_capacity",
    "new_capacity",
    "enable_public_ip",
    "public_ip_id",
    "public_ip_address",
    "enable_ssl",
    "old_cache_mode",
    "new_cache_mode",
    "old_resource_spec_code",
    "new_resource_spec_code",
    "old_replica_num",
    "new_replica_num",
    "old_cache_type",
    "new_cache_type",
    "replica_ip",
    "replica_az",
    "group_name",
    "old_port",
    "new_port",
    "is_only_adjust_charging",
    "account_name",
    "source_ip",
    "target_ip",
    "node_name",
    "rename_commands",
    "updated_config_length",
)

#: Fault kinds besides any three-digit HTTP status (``"500"``, ``"503"``, ``"403"``...):
#: ``trickle`` sends the real answer one byte every ``trickle_delay`` seconds, ``huge`` a
#: 17 MB body without Content-Length, ``deep`` JSON nested 100,000 levels deep.
FAULT_KINDS = frozenset({"truncated", "not_json", "slow", "reset", "trickle", "huge", "deep"})

# Error codes the simulator answers with (DCS-style; APIGW answers authentication failures).
BAD_REQUEST_CODE = "111400063"
NOT_FOUND_CODE = "111400064"
AUTH_CODE = "APIGW.0301"

_TASKS_PATH = re.compile(r"^/v2/([^/]+)/instances/([^/]+)/tasks/?$")
_INSTANCES_PATH = re.compile(r"^/v2/([^/]+)/instances/?$")
_TOKENS_PATH = re.compile(r"^/v3/auth/tokens/?$")
_STATUS_KIND = re.compile(r"^[1-5]\d\d$")
_MAX_LIMIT = 1000
_DEFAULT_LIMIT = 10


def _utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(value: datetime) -> str:
    """Format like DCS does: ``2020-06-17T07:38:42.503Z``."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator received (headers with lower-cased names)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)


@dataclass
class _SimInstance:
    instance_id: str
    name: str
    engine: str
    status: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        redis = self.engine.lower() == "redis"
        return {
            "instance_id": self.instance_id,
            "name": self.name,
            "engine": self.engine,
            "engine_version": "5.0" if redis else "1.5",
            "status": self.status,
            "capacity": 1,
            "ip": "192.168.0.10",
            "port": 6379 if redis else 11211,
            "spec_code": "redis.ha.xu1.large.r2.1" if redis else "dcs.memcached.master_standby",
            "charging_mode": 0,
            "created_at": format_time(self.created_at),
        }


@dataclass
class _SimTask:
    id: str
    instance_id: str
    name: str
    status: str
    details: dict[str, Any]
    user_name: str
    user_id: str
    params: str | None
    created_at: datetime
    updated_at: datetime
    seq: int
    extra: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "details": self.details,
            "user_name": self.user_name,
            "user_id": self.user_id,
            "params": self.params,
            "status": self.status,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
            "enable_show": any(v is not None for v in self.details.values()),
        }
        out.update(self.extra)
        return out


@dataclass
class _Fault:
    kind: str
    remaining: int
    path_contains: str | None


@dataclass(frozen=True)
class _Response:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class _BadParam(ValueError):
    pass


def _error(status: int, code: str, msg: str) -> _Response:
    return _Response(status, {"error_code": code, "error_msg": msg, "error_ext_msg": None})


def _int_param(query: Mapping[str, str], name: str, default: int, lo: int, hi: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadParam(f"Invalid {name}: must be an integer.") from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise _BadParam(f"Invalid {name}: must be {bound}.")
    return value


def _time_param(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not re.fullmatch(r"\d{14}", raw):
        raise _BadParam(f"Invalid {name}: the format is yyyyMMddHHmmss.")
    try:
        return datetime.strptime(raw, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise _BadParam(f"Invalid {name}: the format is yyyyMMddHHmmss.") from None


def _get(data: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


class _Server(LoopbackHTTPServer):
    def __init__(self, address: tuple[str, int], sim: DcsSimulator) -> None:
        self.sim = sim
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or hung up is part of the drill, not a simulator bug.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            logger.debug("simulator: client connection ended: %s", exc)
            return
        logger.exception("simulator: request failed")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def do_GET(self) -> None:
        self.server.sim._handle(self)

    def do_POST(self) -> None:
        self.server.sim._handle(self)

    def do_PUT(self) -> None:
        self.server.sim._handle(self)

    def do_DELETE(self) -> None:
        self.server.sim._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("simulator: " + format, *args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header by the simulator's clock: DCS's clock, which the bot's may not
        match (a skewed DCS is a simulator whose ``clock`` is off)."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        return email.utils.format_datetime(self.server.sim.clock().astimezone(UTC), usegmt=True)


class DcsSimulator:
    """An in-memory DCS project served over HTTP on loopback, with fault injection."""

    def __init__(
        self,
        *,
        project_id: str = "demo-project",
        access_key: str | None = None,
        secret_key: str | None = None,
        iam_users: Mapping[str, str] | None = None,
        tokens: Iterable[str] = (),
        token_ttl: timedelta = timedelta(hours=24),
        latency: float = 0.0,
        clock: Callable[[], datetime] = _utc_now,
        seed: int = 0,
        task_count_as_number: bool = False,
        retry_after: str | None = "1",
        slow_delay: float = 2.0,
        iam: DcsSimulator | None = None,
        trickle_delay: float = 0.05,
    ) -> None:
        self.project_id = project_id
        #: Another simulator whose IAM issued the tokens this one accepts (one IAM, several
        #: regions); a token is accepted only for the project it was scoped to.
        self.iam = iam
        #: Projects besides ``project_id`` that this simulator's IAM issues tokens for.
        self.iam_projects: set[str] = set()
        self.latency = latency
        self.clock = clock
        #: Send ``task_count`` as a JSON number instead of the documented string.
        self.task_count_as_number = task_count_as_number
        #: The ``Retry-After`` value of an injected 429 (None: no header).
        self.retry_after = retry_after
        #: How long a ``slow`` fault stalls before answering (longer than the client timeout).
        self.slow_delay = slow_delay
        #: The pause between two bytes of a ``trickle`` answer.
        self.trickle_delay = trickle_delay
        #: Every request received, oldest first.
        self.requests: list[RecordedRequest] = []
        #: Like an API gateway's concurrency limit: a request that arrives while this many are
        #: being answered gets 429 at once (None: no limit).
        self.max_in_flight: int | None = None
        #: How many 429 answers were sent (injected or over ``max_in_flight``).
        self.throttled = 0
        self._in_flight = 0
        self._access_key = access_key
        self._secret_key = secret_key
        self._iam_users = dict(iam_users or {})
        self._token_ttl = token_ttl
        self._tokens: dict[str, datetime | None] = dict.fromkeys(tokens)
        self._token_projects: dict[str, str] = {}
        self._auth_required = bool(
            (access_key and secret_key) or iam_users is not None or self._tokens or iam
        )
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._instances: dict[str, _SimInstance] = {}
        self._tasks: dict[str, _SimTask] = {}
        self._by_instance: dict[str, list[_SimTask]] = {}
        self._seq = 0
        self._faults: list[_Fault] = []
        self._fault_rate = 0.0
        self._fault_kinds: tuple[str, ...] = ()
        self._serving: Serving | None = None
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port) in a daemon thread; return the base URL."""
        if self._serving is not None:
            return self.url
        self._stopping.clear()
        self._serving = Serving(_Server((host, port), self), name="dcs-simulator")
        return self.url

    def stop(self) -> None:
        """Stop serving; stalled (``slow``) requests are released."""
        self._stopping.set()
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8123`` (the simulator must be started)."""
        if self._serving is None:
            raise RuntimeError("the DCS simulator is not running")
        return self._serving.url

    @property
    def auth_url(self) -> str:
        """The IAM endpoint to use as ``OS_AUTH_URL`` (``{url}/v3``)."""
        return f"{self.url}/v3"

    def __enter__(self) -> DcsSimulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- data --------------------------------------------------------------------------------

    def _new_id(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"

    def add_instance(
        self,
        name: str,
        *,
        instance_id: str | None = None,
        engine: str = "Redis",
        status: str = "RUNNING",
    ) -> str:
        """Add an instance; return its ID (a UUID unless given)."""
        with self._lock:
            iid = instance_id or str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            self._instances[iid] = _SimInstance(iid, name, engine, status, self.clock())
            self._by_instance.setdefault(iid, [])
        return iid

    def instance_ids(self) -> list[str]:
        """The IDs of the instances, in the order they were added."""
        with self._lock:
            return list(self._instances)

    def _make_task(
        self,
        instance_id: str,
        name: str,
        status: str,
        *,
        details: Mapping[str, Any] | None,
        user_name: str,
        created_at: datetime | None,
        params: str | None,
        task_id: str | None,
        extra: Mapping[str, Any] | None,
    ) -> _SimTask:
        if instance_id not in self._instances:
            raise KeyError(f"unknown simulated instance {instance_id!r}")
        task_id = task_id or self._new_id()
        if task_id in self._tasks:
            raise ValueError(f"task {task_id!r} already exists")
        created = created_at or self.clock()
        self._seq += 1
        body = dict.fromkeys(DETAIL_KEYS) | dict(details or {})
        user_id = hashlib.sha256(user_name.encode()).hexdigest()[:32]
        task = _SimTask(
            task_id,
            instance_id,
            name,
            status,
            body,
            user_name,
            user_id,
            params,
            created,
            created,
            self._seq,
            dict(extra or {}),
        )
        self._tasks[task_id] = task
        self._by_instance[instance_id].append(task)
        return task

    def add_task(
        self,
        instance_id: str,
        name: str,
        status: str = "EXECUTING",
        *,
        details: Mapping[str, Any] | None = None,
        user_name: str = "dcs_operator",
        created_at: datetime | None = None,
        params: str | None = None,
        task_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Add a task to an instance; return its ID (32 hex characters unless given).

        ``extra`` is merged into the task's JSON last: unknown fields, or ``None`` to null one.
        """
        with self._lock:
            task = self._make_task(
                instance_id,
                name,
                status,
                details=details,
                user_name=user_name,
                created_at=created_at,
                params=params,
                task_id=task_id,
                extra=extra,
            )
        return task.id

    def add_tasks_bulk(
        self,
        instance_id: str,
        count: int,
        *,
        names: Sequence[str] = ("EXTEND", "BindEip", "AddWhitelist", "modify"),
        status: str = "SUCCESS",
        newest: datetime | None = None,
        step: timedelta = timedelta(seconds=10),
        user_name: str = "dcs_operator",
    ) -> list[str]:
        """Add ``count`` tasks, the first created at ``newest`` (default now), each next ``step``
        older, names taken in turn from ``names``; return their IDs, newest first."""
        newest = newest or self.clock()
        ids = []
        with self._lock:
            for i in range(count):
                task = self._make_task(
                    instance_id,
                    names[i % len(names)],
                    status,
                    details=None,
                    user_name=user_name,
                    created_at=newest - i * step,
                    params=None,
                    task_id=None,
                    extra=None,
                )
                ids.append(task.id)
        return ids

    def set_status(self, task_id: str, status: str, *, updated_at: datetime | None = None) -> None:
        """Change a task's status; ``updated_at`` defaults to now."""
        with self._lock:
            task = self._tasks[task_id]
            task.status = status
            task.updated_at = updated_at or self.clock()

    def drop_task(self, task_id: str) -> None:
        """Forget a task, as DCS does when it stops listing one (its own retention)."""
        with self._lock:
            task = self._tasks.pop(task_id)
            for tasks in self._by_instance.values():
                if task in tasks:
                    tasks.remove(task)

    def set_extra(self, task_id: str, extra: Mapping[str, Any]) -> None:
        """Merge ``extra`` into a task's JSON from now on (malformed fields, NUL characters...)."""
        with self._lock:
            self._tasks[task_id].extra.update(extra)

    def clear_extra(self, task_id: str) -> None:
        """Undo :meth:`set_extra`: the task's JSON is well-formed again."""
        with self._lock:
            self._tasks[task_id].extra.clear()

    def set_instance_status(self, instance_id: str, status: str) -> None:
        """Change an instance's status (RUNNING, RESTARTING, ...)."""
        with self._lock:
            self._instances[instance_id].status = status

    def expire_tokens(self) -> None:
        """Make every token issued or given so far invalid (requests with them get 401)."""
        with self._lock:
            self._tokens.clear()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self.requests.clear()
            self.throttled = 0

    # -- faults ------------------------------------------------------------------------------

    def inject(self, kind: str, *, count: int = 1, path_contains: str | None = None) -> None:
        """Answer the next ``count`` requests (whose path contains ``path_contains``) with a fault.

        Kinds: any HTTP status such as ``"500"``, ``"503"`` or ``"429"`` (with ``Retry-After:``
        :attr:`retry_after`), ``"truncated"`` (200 with cut JSON), ``"not_json"`` (200 with HTML),
        ``"slow"`` (stall :attr:`slow_delay` seconds, then answer), ``"reset"`` (close the
        connection without an answer).
        """
        self._check_kind(kind)
        with self._lock:
            self._faults.append(_Fault(kind, count, path_contains))

    def set_fault_rate(self, rate: float, kinds: Sequence[str]) -> None:
        """Answer each request with a fault chosen from ``kinds`` with probability ``rate``."""
        for kind in kinds:
            self._check_kind(kind)
        if not 0.0 <= rate <= 1.0 or (rate > 0 and not kinds):
            raise ValueError("rate must be within 0..1 and kinds must not be empty")
        with self._lock:
            self._fault_rate = rate
            self._fault_kinds = tuple(kinds)

    def clear_faults(self) -> None:
        """Drop pending injected faults and the random fault rate."""
        with self._lock:
            self._faults.clear()
            self._fault_rate = 0.0
            self._fault_kinds = ()

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in FAULT_KINDS and not _STATUS_KIND.match(kind):
            raise ValueError(f"unknown fault kind {kind!r}")

    def _take_fault(self, path: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains is None or fault.path_contains in path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault.kind
            if self._fault_rate and self._rng.random() < self._fault_rate:
                return self._rng.choice(self._fault_kinds)
        return None

    # -- HTTP --------------------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        raw_path, _, query_string = h.path.partition("?")
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        with self._lock:
            self.requests.append(RecordedRequest(h.command, raw_path, query, headers))
            over = self.max_in_flight is not None and self._in_flight >= self.max_in_flight
            self._in_flight += 1
        try:
            if over:
                self._fault(h, "429")
            else:
                self._answer(h, raw_path, query_string, query, body)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(
        self, h: _Handler, raw_path: str, query_string: str, query: dict[str, str], body: bytes
    ) -> None:
        if self.latency > 0:
            self._stopping.wait(self.latency)
        fault = self._take_fault(raw_path)
        if fault is not None and self._fault(h, fault):
            return
        response = self._route(h, raw_path, query_string, query, body)
        payload = json.dumps(response.body).encode()
        if fault == "trickle":
            self._trickle(h, response.status, payload)
            return
        self._send(h, response.status, payload, response.headers)

    def _trickle(self, h: _Handler, status: int, payload: bytes) -> None:
        """Send the headers, then the body one byte at a time until done or stopped."""
        h.send_response(status)
        h.send_header("Content-Type", "application/json;charset=UTF-8")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.flush()
        for i in range(len(payload)):
            if self._stopping.wait(self.trickle_delay):
                break
            h.wfile.write(payload[i : i + 1])
            h.wfile.flush()
        h.close_connection = True

    def _send(
        self,
        h: _Handler,
        status: int,
        payload: bytes,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json;charset=UTF-8",
    ) -> None:
        if status == 429:
            with self._lock:
                self.throttled += 1
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(payload)

    def _fault(self, h: _Handler, kind: str) -> bool:
        """Act out a fault; True when it answered, False when the request goes on (``slow``)."""
        if kind == "reset":
            # Linger 0: closing sends a TCP RST instead of an orderly shutdown.
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            return True
        if kind in ("slow", "trickle"):
            if kind == "slow":
                self._stopping.wait(self.slow_delay)
            return False
        if kind == "huge":
            h.send_response(200)
            h.send_header("Content-Type", "application/json;charset=UTF-8")
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(b'{"task_count": "0", "tasks": [], "pad": "')
            block = b" " * 65536
            for _ in range(17 * 16 + 1):  # 17 MB and a little
                h.wfile.write(block)
            h.wfile.write(b'"}')
            h.close_connection = True
            return True
        if kind == "deep":
            depth = 100_000
            self._send(
                h, 200, b'{"task_count": "1", "tasks": [' + b"[" * depth + b"]" * depth + b"]}"
            )
            return True
        if kind == "truncated":
            self._send(h, 200, b'{"task_count": "3", "tasks": [{"id": "8abf6e1e72c1", "na')
            return True
        if kind == "not_json":
            self._send(h, 200, b"<html><body>Bad gateway</body></html>", content_type="text/html")
            return True
        status = int(kind)
        headers = {"Retry-After": self.retry_after} if status == 429 and self.retry_after else {}
        msg = "Too many requests." if status == 429 else "Internal service error."
        body = {"error_code": f"DCS.{status}0", "error_msg": msg, "error_ext_msg": None}
        self._send(h, status, json.dumps(body).encode(), headers)
        return True

    def _route(
        self, h: _Handler, raw_path: str, query_string: str, query: Mapping[str, str], body: bytes
    ) -> _Response:
        if _TOKENS_PATH.match(raw_path) and h.command == "POST":
            return self._issue_token(body)
        reason = self._auth_problem(h, raw_path, query_string, body)
        if reason is not None:
            return _error(401, AUTH_CODE, f"Incorrect IAM authentication information: {reason}")
        if h.command == "GET":
            if match := _TASKS_PATH.match(raw_path):
                return self._list_tasks(unquote(match[1]), unquote(match[2]), query)
            if match := _INSTANCES_PATH.match(raw_path):
                return self._list_instances(unquote(match[1]), query)
        return _error(404, NOT_FOUND_CODE, "The requested resource is not found.")

    # -- authentication ----------------------------------------------------------------------

    def _auth_problem(
        self, h: _Handler, raw_path: str, query_string: str, body: bytes
    ) -> str | None:
        if not self._auth_required:
            return None
        authorization = h.headers.get("Authorization") or ""
        if self._access_key and self._secret_key and authorization.startswith("SDK-HMAC"):
            keys = {self._access_key: self._secret_key}
            return verify_signed_request(
                h.command,
                raw_path,
                query_string,
                httpx.Headers(list(h.headers.items())),
                body,
                keys.get,
                self.clock(),
            )
        token = h.headers.get("X-Auth-Token")
        if token:
            issuer = self.iam or self
            with issuer._lock:
                if token not in issuer._tokens:
                    return "the token is not valid"
                expires = issuer._tokens[token]
                scope = issuer._token_projects.get(token, self.project_id)
            if scope != self.project_id:
                return "the token is scoped to another project"
            if expires is not None and self.clock() >= expires:
                return "the token has expired"
            return None
        return "no credentials were sent"

    def _issue_token(self, body: bytes) -> _Response:
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return _error(400, "IAM.0011", "Request body is invalid.")
        methods = _get(data, "auth", "identity", "methods")
        user = _get(data, "auth", "identity", "password", "user")
        name, password = _get(user, "name"), _get(user, "password")
        domain = _get(user, "domain", "name") or _get(user, "domain", "id")
        project_id = _get(data, "auth", "scope", "project", "id")
        project_name = _get(data, "auth", "scope", "project", "name")
        if not isinstance(methods, list) or "password" not in methods or not domain:
            return _error(400, "IAM.0011", "Request body is invalid.")
        if not isinstance(name, str) or self._iam_users.get(name) != password:
            return _error(401, "IAM.0004", "The username or password is wrong.")
        if project_id is None and project_name is None:
            return _error(400, "IAM.0011", "A project scope is required.")
        if project_id is not None and project_id not in {self.project_id, *self.iam_projects}:
            return _error(401, "IAM.0006", "The user is not authorized for this project.")
        scope = project_id if isinstance(project_id, str) else self.project_id
        issued = self.clock()
        expires = issued + self._token_ttl
        token = "MIIsim" + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = expires
            self._token_projects[token] = scope
        payload = {
            "token": {
                "expires_at": expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "issued_at": issued.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "methods": ["password"],
                "project": {
                    "id": scope,
                    "name": project_name if isinstance(project_name, str) else "eu-de",
                    "domain": {"id": "0" * 32, "name": str(domain)},
                },
                "user": {"id": hashlib.sha256(name.encode()).hexdigest()[:32], "name": name},
                "catalog": [],
                "roles": [{"id": "0", "name": "dcs_admin"}],
            }
        }
        return _Response(201, payload, {"X-Subject-Token": token})

    # -- the APIs ----------------------------------------------------------------------------

    def _list_tasks(self, project_id: str, instance_id: str, query: Mapping[str, str]) -> _Response:
        if project_id != self.project_id:
            return _error(404, NOT_FOUND_CODE, "The project does not exist.")
        try:
            offset = _int_param(query, "offset", 0, 0, None)
            limit = _int_param(query, "limit", _DEFAULT_LIMIT, 1, _MAX_LIMIT)
            start = _time_param(query, "start_time")
            end = _time_param(query, "end_time")
            if start and end and start > end:
                raise _BadParam("Invalid start_time: it is later than end_time.")
        except _BadParam as exc:
            return _error(400, BAD_REQUEST_CODE, str(exc))
        with self._lock:
            if instance_id not in self._instances:
                return _error(404, NOT_FOUND_CODE, "The instance does not exist.")
            matching = [
                task
                for task in self._by_instance[instance_id]
                if (start is None or task.created_at >= start)
                and (end is None or task.created_at < end + timedelta(seconds=1))
            ]
            matching.sort(key=lambda t: (t.created_at, t.seq), reverse=True)
            page = [task.to_json() for task in matching[offset : offset + limit]]
        count: int | str = len(matching) if self.task_count_as_number else str(len(matching))
        return _Response(200, {"task_count": count, "tasks": page})

    def _list_instances(self, project_id: str, query: Mapping[str, str]) -> _Response:
        if project_id != self.project_id:
            return _error(404, NOT_FOUND_CODE, "The project does not exist.")
        try:
            offset = _int_param(query, "offset", 0, 0, None)
            limit = _int_param(query, "limit", _DEFAULT_LIMIT, 1, _MAX_LIMIT)
        except _BadParam as exc:
            return _error(400, BAD_REQUEST_CODE, str(exc))
        with self._lock:
            instances = list(self._instances.values())
            page = [i.to_json() for i in instances[offset : offset + limit]]
        return _Response(200, {"instance_num": len(instances), "instances": page})


def run_forever(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    simulator: DcsSimulator | None = None,
    ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve ``simulator`` (a fresh, credential-free one by default) until ``stop`` is set or
    Ctrl-C; ``ready`` is called with the base URL once it listens (the ``simulate`` command)."""
    sim = simulator or DcsSimulator()
    url = sim.start(host, port)
    try:
        if ready is not None:
            ready(url)
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
