"""The DCS client: instances and background tasks, paged, retried, and typed.

The client is given its ``httpx.Client`` (base URL, auth, timeouts, transport; see
:func:`bot.wiring.make_http_client`). Answers become :class:`~bot.dcs.models.Task` and
:class:`~bot.dcs.models.Instance`; failures become the :mod:`bot.dcs.errors` tree:

* 401/403 → ``DcsAuthError``, 404 → ``DcsNotFoundError``, other 4xx → ``DcsApiError``;
* 429, 5xx, timeouts and connection errors are retried with exponential backoff and jitter
  (``Retry-After`` honoured, capped), bounded in attempts and total time, then
  ``DcsUnavailableError``;
* a 200 whose body is truncated, not JSON or not the documented shape is retried the same way,
  then ``DcsBadResponseError``;
* every request has a total deadline (``request_deadline``, and never past the retry budget):
  the body is read in chunks and the clock checked after each, so an answer that trickles in
  ends at the deadline; a body larger than ``max_body_bytes`` and paging past
  :data:`MAX_PAGES` pages or :data:`MAX_ITEMS` items are ``DcsBadResponseError`` at once;
* a malformed task (no id, no string status, nested too deep) is skipped and reported, never
  the whole answer: :meth:`DcsClient.read_tasks` says which;
* DCS's own clock is read from the ``Date`` header of its answers (:meth:`DcsClient.dcs_time`),
  so that ages of DCS's times are measured on DCS's clock, not a skewed local one.

Retries are logged at WARNING on the ``bot.dcs.client`` logger, without credentials or task params.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import httpx

from bot.dcs.errors import (
    DcsBadResponseError,
    DcsError,
    DcsUnavailableError,
    DcsUnknownInstanceError,
    error_fields,
    error_for_status,
)
from bot.dcs.ids import checked_id
from bot.dcs.limit import AdaptiveLimit
from bot.dcs.models import Instance, Task, storable

logger = logging.getLogger("bot.dcs.client")

T = TypeVar("T")

#: The largest page DCS serves.
MAX_PAGE_SIZE = 1000
#: A guard against a service that never stops paging: more pages than this is an error.
MAX_PAGES = 100
#: More tasks (or instances) than this in one listing is an error, not memory growth.
MAX_ITEMS = 20_000
#: The largest answer body read (decoded); a bigger one is an error.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: The default total deadline of one request, connect to last byte.
REQUEST_DEADLINE = 20.0

_ID_LIKE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$|^[0-9a-f]{32}$", re.I
)
_TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: ``attempts`` tries in all, the delay doubling from
    ``base_delay`` up to ``max_delay`` (with jitter), never past ``total_budget`` seconds."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    total_budget: float = 30.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The delay before retry number ``retry`` (1-based): exponential with equal jitter."""
        delay = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return delay / 2 + rng.uniform(0, delay / 2)


DEFAULT_RETRY = RetryPolicy()


def format_dcs_time(value: datetime) -> str:
    """``start_time``/``end_time`` format: UTC ``yyyyMMddHHmmss`` (naive values count as UTC)."""
    value = value.astimezone(UTC) if value.tzinfo else value
    return value.strftime("%Y%m%d%H%M%S")


def _count(value: object) -> int:
    """``task_count``/``instance_num``: a string (documented) or a number (seen)."""
    if isinstance(value, bool):
        raise DcsBadResponseError("the count in the DCS answer is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise DcsBadResponseError("the count in the DCS answer is missing or not a number")


class _DeadlinePassed(Exception):
    """The answer did not arrive completely before the request's deadline."""


@dataclass(frozen=True)
class _Answer:
    """A whole answer, read within the deadline and the size bound."""

    status_code: int
    headers: httpx.Headers
    content: bytes


@dataclass(frozen=True)
class TaskListing:
    """An instance's tasks as read, newest first, and the malformed task records skipped:
    ``malformed`` says why for each, ``malformed_ids`` holds the IDs of those that had one;
    ``dcs_time`` is DCS's clock as the listing was read (None when no answer said it)."""

    tasks: list[Task]
    malformed: tuple[str, ...] = ()
    malformed_ids: frozenset[str] = frozenset()
    dcs_time: datetime | None = None


def http_date(headers: httpx.Headers) -> datetime | None:
    """The ``Date`` header as an aware UTC time; None when it is missing or not a date."""
    raw = headers.get("Date")
    if not raw:
        return None
    try:
        value = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class _TaskPage:
    count: int
    entries: int
    tasks: list[Task]
    malformed: list[tuple[str | None, str]]


def _clamped(timeout: httpx.Timeout, remaining: float) -> httpx.Timeout:
    """The client's per-operation timeouts, none longer than the time left."""
    left = max(0.001, remaining)

    def cap(value: float | None) -> float:
        return left if value is None else min(value, left)

    return httpx.Timeout(
        connect=cap(timeout.connect),
        read=cap(timeout.read),
        write=cap(timeout.write),
        pool=cap(timeout.pool),
    )


def _retry_after(headers: httpx.Headers) -> float | None:
    """The ``Retry-After`` header in seconds (an HTTP date is not honoured: backoff applies)."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


@dataclass(frozen=True)
class _Failure:
    """Why one attempt failed in a way worth retrying."""

    reason: str
    status: int | None = None
    error_code: str | None = None
    retry_after: float | None = None
    bad_body: bool = False

    def error(self, path: str, attempts: int) -> DcsError:
        """The error raised once no retry is left."""
        if self.bad_body:
            return DcsBadResponseError(f"DCS kept answering {path} with {self.reason}")
        return DcsUnavailableError(
            f"DCS is unavailable: {self.reason} on {path} after {attempts} attempt(s)",
            self.status,
            self.error_code,
        )


@dataclass(frozen=True)
class _Parsed(Generic[T]):
    """A successful attempt's parsed answer."""

    value: T


def _judge(answer: _Answer, parse: Callable[[Any], T]) -> _Parsed[T] | _Failure:
    """Classify an answer: parsed (2xx), retryable (429/5xx, bad body), or raise the error."""
    status = answer.status_code
    if 200 <= status < 300:
        try:
            return _Parsed(parse(json.loads(answer.content)))
        except (ValueError, RecursionError, DcsBadResponseError) as exc:
            return _Failure(f"bad response body ({_short(exc)})", bad_body=True)
    code, msg = error_fields(answer.content)
    error = error_for_status(status, code, msg)
    if not isinstance(error, DcsUnavailableError):
        raise error
    retry_after = _retry_after(answer.headers) if status == 429 else None
    return _Failure(str(error).removeprefix("DCS answered "), status, error.error_code, retry_after)


class DcsClient:
    """Reads instances and background tasks of one project from DCS."""

    def __init__(
        self,
        http: httpx.Client,
        project_id: str,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], object] | None = None,
        rng: random.Random | None = None,
        page_size: int = MAX_PAGE_SIZE,
        monotonic: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
        limit: AdaptiveLimit | None = None,
        request_deadline: float = REQUEST_DEADLINE,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        """``stop``, once set, ends retrying: a retry wait returns at once and no new attempt
        starts (``DcsUnavailableError``), so a stopping process does not sit out the budget.
        The default ``sleep`` waits on ``stop``. ``limit``, shared by the clients of a
        process, bounds the requests in flight and shrinks on 429s (see ``bot.dcs.limit``)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}")
        if request_deadline <= 0 or max_body_bytes <= 0:
            raise ValueError("request_deadline and max_body_bytes must be positive")
        self._http = http
        self._project_id = project_id
        self._retry = retry
        self._stop = stop if stop is not None else threading.Event()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._stop.wait
        self._rng = rng or random.Random()
        self._page_size = page_size
        self._monotonic = monotonic
        self._limit = limit
        self._request_deadline = request_deadline
        self._max_body_bytes = max_body_bytes
        #: The last ``Date`` DCS answered with, and ``monotonic()`` when it arrived.
        self._dated: tuple[datetime, float] | None = None

    def with_deadline(self, seconds: float) -> DcsClient:
        """This client (same connections) with every call, retries included, bounded to
        ``seconds``: for calls made while a Slack user waits."""
        return DcsClient(
            self._http,
            self._project_id,
            retry=replace(self._retry, total_budget=min(self._retry.total_budget, seconds)),
            sleep=self._sleep,
            rng=self._rng,
            page_size=self._page_size,
            monotonic=self._monotonic,
            stop=self._stop,
            limit=self._limit,
            request_deadline=min(self._request_deadline, seconds),
            max_body_bytes=self._max_body_bytes,
        )

    @property
    def project_id(self) -> str:
        """The project whose instances this client reads."""
        return self._project_id

    def dcs_time(self) -> datetime | None:
        """DCS's clock now, as its last answer's ``Date`` header said (moved on by the time
        since, to the second): None before any answer carried a valid one."""
        dated = self._dated
        if dated is None:
            return None
        date, received = dated
        return date + timedelta(seconds=self._monotonic() - received)

    # -- transport ---------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str | int], parse: Callable[[Any], T]) -> T:
        """GET ``path`` and ``parse`` its JSON, retrying transient failures and bad bodies."""
        started = self._monotonic()
        budget_end = started + self._retry.total_budget
        attempts = max(1, self._retry.attempts)
        for attempt in range(1, attempts + 1):
            if self._stop.is_set():
                raise DcsUnavailableError(f"DCS request to {path} not sent: stopping")
            deadline = min(self._monotonic() + self._request_deadline, budget_end)
            outcome = self._attempt(path, params, parse, deadline)
            if isinstance(outcome, _Parsed):
                return outcome.value
            failure = outcome
            delay = self._retry_delay(path, failure, attempt, attempts, started)
            if delay is None:
                break
            self._sleep(delay)
        raise failure.error(path, attempt)

    def _attempt(
        self,
        path: str,
        params: Mapping[str, str | int],
        parse: Callable[[Any], T],
        deadline: float,
    ) -> _Parsed[T] | _Failure:
        """One request: the parsed answer, a retryable failure, or a final error raised."""
        try:
            answer = self._receive(path, params, deadline)
        except _DeadlinePassed:
            return _Failure("no complete answer before the request's deadline")
        except _TRANSIENT_ERRORS as exc:
            return _Failure(type(exc).__name__)
        except DcsUnavailableError as exc:  # raised by the auth while fetching an IAM token
            return _Failure(str(exc), exc.status_code)
        except httpx.HTTPError as exc:  # not transient: a bad URL, protocol or proxy
            raise DcsUnavailableError(
                f"DCS request to {path} failed: {type(exc).__name__}: {_short(exc)}"
            ) from None
        return _judge(answer, parse)

    def _receive(self, path: str, params: Mapping[str, str | int], deadline: float) -> _Answer:
        """One GET, within the shared limit on requests in flight when there is one."""
        if self._limit is None:
            return self._read(path, params, deadline)
        with self._limit.slot() as slot:
            answer = self._read(path, params, deadline)
            slot.answered(answer.status_code)
            return answer

    def _read(self, path: str, params: Mapping[str, str | int], deadline: float) -> _Answer:
        """GET ``path`` and read the whole answer in chunks, before ``deadline`` and within
        ``max_body_bytes`` (DcsBadResponseError, not retried: it would only be big again)."""
        if self._monotonic() >= deadline:
            raise _DeadlinePassed
        timeout = _clamped(self._http.timeout, deadline - self._monotonic())
        limit = self._max_body_bytes
        too_big = f"DCS answered {path} with more than {limit // (1024 * 1024) or limit} " + (
            "MB" if limit >= 1024 * 1024 else "bytes"
        )
        with self._http.stream("GET", path, params=params, timeout=timeout) as response:
            if (date := http_date(response.headers)) is not None:
                self._dated = (date, self._monotonic())
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise DcsBadResponseError(too_big)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise DcsBadResponseError(too_big)
                if self._monotonic() > deadline:
                    raise _DeadlinePassed
            return _Answer(response.status_code, response.headers, bytes(body))

    def _retry_delay(
        self, path: str, failure: _Failure, attempt: int, attempts: int, started: float
    ) -> float | None:
        """How long to wait before the next attempt; None when no retry is left (logged)."""
        policy = self._retry
        if attempt == attempts:
            return None
        delay = policy.backoff(attempt, self._rng)
        if failure.retry_after is not None:
            delay = min(policy.max_delay, max(delay, failure.retry_after))
        if self._monotonic() - started + delay > policy.total_budget:
            logger.warning(
                "DCS GET %s: %s; retry budget of %.0fs spent",
                path,
                failure.reason,
                policy.total_budget,
            )
            return None
        logger.warning(
            "DCS GET %s: %s; retry %d/%d in %.2fs",
            path,
            failure.reason,
            attempt,
            attempts - 1,
            delay,
        )
        return delay

    # -- instances ---------------------------------------------------------------------------

    def list_instances(self) -> list[Instance]:
        """Every instance of the project (all pages)."""
        path = f"/v2/{self._project_id}/instances"
        found: dict[str, Instance] = {}
        offset = 0
        for _ in range(MAX_PAGES):
            total, page = self._get(
                path, {"offset": offset, "limit": self._page_size}, _parse_instances
            )
            for instance in page:
                found.setdefault(instance.instance_id, instance)
            offset += len(page)
            if not page or len(page) < self._page_size or offset >= total:
                return list(found.values())
            _check_items(path, offset)
        raise _too_many_pages(path)

    def resolve_instances(self, wanted: Sequence[str]) -> list[Instance]:
        """The instances named by ``wanted`` (IDs or names), in that order; empty = every one.

        A UUID-like ID that the listing does not show is kept as ``Instance(id, name=id)``;
        any other unknown entry raises :class:`DcsUnknownInstanceError`.
        """
        instances = self.list_instances()
        if not wanted:
            return instances
        by_id = {i.instance_id: i for i in instances}
        out: dict[str, Instance] = {}
        for item in (w.strip() for w in wanted):
            if not item:
                continue
            match = by_id.get(item) or _by_name(instances, item)
            if match is None and _ID_LIKE.match(item):
                match = Instance(instance_id=item, name=item)
            if match is None:
                known = [i.name for i in instances]
                shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
                raise DcsUnknownInstanceError(
                    item, f"unknown DCS instance {item!r}; known instances: {shown or 'none'}"
                )
            out.setdefault(match.instance_id, match)
        return list(out.values())

    # -- tasks -------------------------------------------------------------------------------

    def list_tasks_page(
        self,
        instance_id: str,
        *,
        offset: int,
        limit: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> tuple[int, list[Task]]:
        """One page of an instance's tasks: (``task_count``, the tasks of this page)."""
        page = self._task_page(instance_id, offset=offset, limit=limit, start=start, end=end)
        return page.count, page.tasks

    def _task_page(
        self,
        instance_id: str,
        *,
        offset: int,
        limit: int,
        start: datetime | None,
        end: datetime | None,
    ) -> _TaskPage:
        params: dict[str, str | int] = {"offset": offset, "limit": limit}
        if start is not None:
            params["start_time"] = format_dcs_time(start)
        if end is not None:
            params["end_time"] = format_dcs_time(end)

        def parse(body: Any) -> _TaskPage:
            return _parse_tasks(instance_id, body)

        path = f"/v2/{self._project_id}/instances/{checked_id(instance_id, 'instance ID')}/tasks"
        return self._get(path, params, parse)

    def list_tasks(
        self, instance_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Task]:
        """Every task of an instance created within ``start``..``end``, newest first.

        Pages until ``task_count`` tasks were read or a page comes back short; tasks that
        appear on two pages (new tasks shift the pages) are kept once. Malformed task records
        are skipped (see :meth:`read_tasks`).
        """
        return self.read_tasks(instance_id, start=start, end=end).tasks

    def read_tasks(
        self, instance_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> TaskListing:
        """:meth:`list_tasks`, saying which task records were malformed and skipped (logged)."""
        found: dict[str, Task] = {}
        malformed: dict[str, str] = {}
        malformed_ids: set[str] = set()
        offset = 0
        for _ in range(MAX_PAGES):
            page = self._task_page(
                instance_id, offset=offset, limit=self._page_size, start=start, end=end
            )
            for task in page.tasks:
                found.setdefault(task.id, task)
            for task_id, reason in page.malformed:
                malformed.setdefault(task_id or f"#{offset + len(malformed)}", reason)
                if task_id:
                    malformed_ids.add(task_id)
            offset += page.entries
            if not page.entries or page.entries < self._page_size or offset >= page.count:
                break
            _check_items(f"tasks of {instance_id}", offset)
        else:
            raise _too_many_pages(f"tasks of {instance_id}")
        if malformed:
            logger.warning(
                "DCS tasks of %s: skipped %d malformed task record(s): %s",
                instance_id,
                len(malformed),
                "; ".join(list(malformed.values())[:5]),
            )
        return TaskListing(
            sorted(found.values(), key=_newest_first),
            tuple(malformed.values()),
            frozenset(malformed_ids),
            self.dcs_time(),
        )


def _newest_first(task: Task) -> tuple[float, str]:
    created = task.created_at.timestamp() if task.created_at else float("-inf")
    return (-created, task.id)


def _by_name(instances: Sequence[Instance], name: str) -> Instance | None:
    exact = [i for i in instances if i.name == name]
    if not exact:
        exact = [i for i in instances if i.name.casefold() == name.casefold()]
    if len(exact) > 1:
        ids = ", ".join(i.instance_id for i in exact)
        raise DcsUnknownInstanceError(
            name, f"DCS instance name {name!r} is ambiguous ({ids}); use the instance ID"
        )
    return exact[0] if exact else None


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _check_items(what: str, read: int) -> None:
    if read > MAX_ITEMS:
        raise DcsBadResponseError(f"DCS listed more than {MAX_ITEMS} items for {what}")


def _too_many_pages(what: str) -> DcsBadResponseError:
    return DcsBadResponseError(f"DCS kept paging {what} past {MAX_PAGES} pages")


def _parse_tasks(instance_id: str, body: Any) -> _TaskPage:
    if not isinstance(body, Mapping):
        raise DcsBadResponseError("the tasks answer is not a JSON object")
    count = _count(body.get("task_count"))
    tasks = body.get("tasks")
    if tasks is None and count == 0:
        tasks = []  # an empty answer may leave the list out
    if not isinstance(tasks, list):
        raise DcsBadResponseError("the tasks answer has no tasks list")
    parsed: list[Task] = []
    malformed: list[tuple[str | None, str]] = []
    for raw in tasks:
        try:
            parsed.append(Task.from_json(instance_id, raw))
        except DcsBadResponseError as exc:
            raw_id = raw.get("id") if isinstance(raw, Mapping) else None
            task_id = storable(raw_id)[:64] if isinstance(raw_id, str) and raw_id else None
            malformed.append((task_id, str(exc)))
    return _TaskPage(count, len(tasks), parsed, malformed)


def _parse_instances(body: Any) -> tuple[int, list[Instance]]:
    if not isinstance(body, Mapping):
        raise DcsBadResponseError("the instances answer is not a JSON object")
    instances = body.get("instances")
    if not isinstance(instances, list):
        raise DcsBadResponseError("the instances answer has no instances list")
    page = [Instance.from_json(i) for i in instances]
    total = _count(body["instance_num"]) if "instance_num" in body else len(page)
    return total, page
