"""The DCS client: instances and background tasks, paged, retried, and typed.

The client is given its ``httpx.Client`` (base URL, auth, timeouts, transport; see
:func:`bot.wiring.make_http_client`). Answers become :class:`~bot.dcs.models.Task` and
:class:`~bot.dcs.models.Instance`; failures become the :mod:`bot.dcs.errors` tree:

* 401/403 → ``DcsAuthError``, 404 → ``DcsNotFoundError``, other 4xx → ``DcsApiError``;
* 429, 5xx, timeouts and connection errors are retried with exponential backoff and jitter
  (``Retry-After`` honoured, capped), bounded in attempts and total time, then
  ``DcsUnavailableError``;
* a 200 whose body is truncated, not JSON or not the documented shape is retried the same way,
  then ``DcsBadResponseError``.

Retries are logged at WARNING on the ``bot.dcs.client`` logger, without credentials or task params.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
from bot.dcs.models import Instance, Task

logger = logging.getLogger("bot.dcs.client")

T = TypeVar("T")

#: The largest page DCS serves.
MAX_PAGE_SIZE = 1000
#: A guard against a service that never stops paging.
MAX_PAGES = 200

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


def _retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (an HTTP date is not honoured: backoff applies)."""
    raw = response.headers.get("Retry-After")
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


def _judge(response: httpx.Response, parse: Callable[[Any], T]) -> _Parsed[T] | _Failure:
    """Classify an answer: parsed (2xx), retryable (429/5xx, bad body), or raise the error."""
    status = response.status_code
    if 200 <= status < 300:
        try:
            return _Parsed(parse(response.json()))
        except (ValueError, DcsBadResponseError) as exc:
            return _Failure(f"bad response body ({_short(exc)})", bad_body=True)
    code, msg = error_fields(response)
    error = error_for_status(status, code, msg)
    if not isinstance(error, DcsUnavailableError):
        raise error
    retry_after = _retry_after(response) if status == 429 else None
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
    ) -> None:
        """``stop``, once set, ends retrying: a retry wait returns at once and no new attempt
        starts (``DcsUnavailableError``), so a stopping process does not sit out the budget.
        The default ``sleep`` waits on ``stop``. ``limit``, shared by the clients of a
        process, bounds the requests in flight and shrinks on 429s (see ``bot.dcs.limit``)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}")
        self._http = http
        self._project_id = project_id
        self._retry = retry
        self._stop = stop if stop is not None else threading.Event()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._stop.wait
        self._rng = rng or random.Random()
        self._page_size = page_size
        self._monotonic = monotonic
        self._limit = limit

    @property
    def project_id(self) -> str:
        """The project whose instances this client reads."""
        return self._project_id

    # -- transport ---------------------------------------------------------------------------

    def _send(self, path: str, params: Mapping[str, str | int]) -> httpx.Response:
        """One GET, within the shared limit on requests in flight when there is one."""
        if self._limit is None:
            return self._http.get(path, params=params)
        with self._limit.slot() as slot:
            response = self._http.get(path, params=params)
            slot.answered(response.status_code)
            return response

    def _get(self, path: str, params: Mapping[str, str | int], parse: Callable[[Any], T]) -> T:
        """GET ``path`` and ``parse`` its JSON, retrying transient failures and bad bodies."""
        started = self._monotonic()
        attempts = max(1, self._retry.attempts)
        for attempt in range(1, attempts + 1):
            if self._stop.is_set():
                raise DcsUnavailableError(f"DCS request to {path} not sent: stopping")
            outcome = self._attempt(path, params, parse)
            if isinstance(outcome, _Parsed):
                return outcome.value
            failure = outcome
            delay = self._retry_delay(path, failure, attempt, attempts, started)
            if delay is None:
                break
            self._sleep(delay)
        raise failure.error(path, attempt)

    def _attempt(
        self, path: str, params: Mapping[str, str | int], parse: Callable[[Any], T]
    ) -> _Parsed[T] | _Failure:
        """One request: the parsed answer, a retryable failure, or a final error raised."""
        try:
            response = self._send(path, params)
        except _TRANSIENT_ERRORS as exc:
            return _Failure(type(exc).__name__)
        except DcsUnavailableError as exc:  # raised by the auth while fetching an IAM token
            return _Failure(str(exc), exc.status_code)
        except httpx.HTTPError as exc:  # not transient: a bad URL, protocol or proxy
            raise DcsUnavailableError(
                f"DCS request to {path} failed: {type(exc).__name__}: {_short(exc)}"
            ) from None
        return _judge(response, parse)

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
                break
        return list(found.values())

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
        params: dict[str, str | int] = {"offset": offset, "limit": limit}
        if start is not None:
            params["start_time"] = format_dcs_time(start)
        if end is not None:
            params["end_time"] = format_dcs_time(end)

        def parse(body: Any) -> tuple[int, list[Task]]:
            return _parse_tasks(instance_id, body)

        path = f"/v2/{self._project_id}/instances/{checked_id(instance_id, 'instance ID')}/tasks"
        return self._get(path, params, parse)

    def list_tasks(
        self, instance_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Task]:
        """Every task of an instance created within ``start``..``end``, newest first.

        Pages until ``task_count`` tasks were read or a page comes back short; tasks that
        appear on two pages (new tasks shift the pages) are kept once.
        """
        found: dict[str, Task] = {}
        offset = 0
        for _ in range(MAX_PAGES):
            total, page = self.list_tasks_page(
                instance_id, offset=offset, limit=self._page_size, start=start, end=end
            )
            for task in page:
                found.setdefault(task.id, task)
            offset += len(page)
            if not page or len(page) < self._page_size or offset >= total:
                break
        else:
            logger.warning("DCS tasks of %s: stopped after %d pages", instance_id, MAX_PAGES)
        return sorted(found.values(), key=_newest_first)


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


def _parse_tasks(instance_id: str, body: Any) -> tuple[int, list[Task]]:
    if not isinstance(body, Mapping):
        raise DcsBadResponseError("the tasks answer is not a JSON object")
    count = _count(body.get("task_count"))
    tasks = body.get("tasks")
    if tasks is None and count == 0:
        tasks = []  # an empty answer may leave the list out
    if not isinstance(tasks, list):
        raise DcsBadResponseError("the tasks answer has no tasks list")
    return count, [Task.from_json(instance_id, t) for t in tasks]


def _parse_instances(body: Any) -> tuple[int, list[Instance]]:
    if not isinstance(body, Mapping):
        raise DcsBadResponseError("the instances answer is not a JSON object")
    instances = body.get("instances")
    if not isinstance(instances, list):
        raise DcsBadResponseError("the instances answer has no instances list")
    page = [Instance.from_json(i) for i in instances]
    total = _count(body["instance_num"]) if "instance_num" in body else len(page)
    return total, page
