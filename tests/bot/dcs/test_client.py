"""The DCS client pages, retries and types answers, over real loopback HTTP to the simulator."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from bot.config import ConfigError, load_settings
from bot.dcs.auth import AkSkAuth, IamTokenAuth, TokenAuth
from bot.dcs.client import (
    MAX_ITEMS,
    MAX_PAGES,
    DcsClient,
    RetryPolicy,
    format_dcs_time,
)
from bot.dcs.errors import (
    DcsApiError,
    DcsAuthError,
    DcsBadResponseError,
    DcsError,
    DcsNotFoundError,
    DcsUnavailableError,
    DcsUnknownInstanceError,
)
from bot.testing.simulator import DcsSimulator
from bot.wiring import make_http_client

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01, total_budget=30.0)


class FakeTime:
    """A clock that only moves when slept on: sleep and monotonic for the client."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def sim() -> Iterator[DcsSimulator]:
    with DcsSimulator(project_id="p1", slow_delay=3.0, retry_after="0") as simulator:
        yield simulator


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make(sim: DcsSimulator, time_: FakeTime) -> Iterator[Callable[..., DcsClient]]:
    """Build clients for the simulator; their HTTP clients are closed afterwards."""
    opened: list[httpx.Client] = []

    def factory(
        *,
        auth: httpx.Auth | None = None,
        retry: RetryPolicy = FAST,
        page_size: int = 1000,
        timeout: float = 5.0,
        project_id: str = "p1",
        event_hooks: dict[str, list[Callable[..., object]]] | None = None,
    ) -> DcsClient:
        http = httpx.Client(base_url=sim.url, auth=auth, timeout=timeout, event_hooks=event_hooks)
        opened.append(http)
        return DcsClient(
            http,
            project_id,
            retry=retry,
            sleep=time_.sleep,
            rng=random.Random(1),
            page_size=page_size,
            monotonic=time_.monotonic,
        )

    yield factory
    for http in opened:
        http.close()


def task_requests(sim: DcsSimulator) -> list[dict[str, str]]:
    return [r.query for r in sim.requests if r.path.endswith("/tasks")]


# -- paging ----------------------------------------------------------------------------------


@pytest.mark.parametrize("as_number", [False, True])
def test_lists_every_page(
    sim: DcsSimulator, make: Callable[..., DcsClient], as_number: bool
) -> None:
    """All pages are read, whether task_count comes as a string or a number."""
    sim.task_count_as_number = as_number
    iid = sim.add_instance("cache-a")
    ids = sim.add_tasks_bulk(iid, 23, newest=NOW)
    tasks = make(page_size=10).list_tasks(iid)
    assert [t.id for t in tasks] == ids
    assert all(t.instance_id == iid for t in tasks)
    assert [q["offset"] for q in task_requests(sim)] == ["0", "10", "20"]
    assert {q["limit"] for q in task_requests(sim)} == {"10"}


def test_stops_once_task_count_is_read(sim: DcsSimulator, make: Callable[..., DcsClient]) -> None:
    """A full last page that completes task_count ends the paging without an empty request."""
    iid = sim.add_instance("cache-a")
    sim.add_tasks_bulk(iid, 20)
    assert len(make(page_size=10).list_tasks(iid)) == 20
    assert len(task_requests(sim)) == 2


def test_tasks_on_two_shifted_pages_are_kept_once(
    sim: DcsSimulator, make: Callable[..., DcsClient]
) -> None:
    """A task that arrives between pages shifts them; the repeated task is listed once."""
    iid = sim.add_instance("cache-a")
    ids = sim.add_tasks_bulk(iid, 25, newest=NOW - timedelta(minutes=1))

    def new_task_after_first_page(response: httpx.Response) -> None:
        if response.request.url.params.get("offset") == "0":
            sim.add_task(iid, "BindEip", created_at=NOW)

    client = make(page_size=10, event_hooks={"response": [new_task_after_first_page]})
    listed = [t.id for t in client.list_tasks(iid)]
    assert len(listed) == len(set(listed))
    assert set(ids) <= set(listed)


def test_sends_start_time_and_end_time_in_utc(
    sim: DcsSimulator, make: Callable[..., DcsClient]
) -> None:
    """The window goes out as UTC yyyyMMddHHmmss in start_time/end_time, never begin_time."""
    iid = sim.add_instance("cache-a")
    plus_two = timezone(timedelta(hours=2))
    make().list_tasks(
        iid,
        start=datetime(2024, 5, 1, 12, 0, 0, tzinfo=plus_two),
        end=datetime(2024, 5, 1, 13, 30, 15, tzinfo=plus_two),
    )
    (query,) = task_requests(sim)
    assert query["start_time"] == "20240501100000"
    assert query["end_time"] == "20240501113015"
    assert "begin_time" not in query


def test_window_filters_tasks(sim: DcsSimulator, make: Callable[..., DcsClient]) -> None:
    """Only tasks created inside the window are returned."""
    iid = sim.add_instance("cache-a")
    old = sim.add_task(iid, "EXTEND", "SUCCESS", created_at=NOW - timedelta(days=2))
    recent = sim.add_task(iid, "EXTEND", "SUCCESS", created_at=NOW - timedelta(hours=1))
    future = sim.add_task(iid, "EXTEND", "SUCCESS", created_at=NOW + timedelta(hours=1))
    tasks = make().list_tasks(iid, start=NOW - timedelta(days=1), end=NOW)
    assert [t.id for t in tasks] == [recent]
    assert {old, future}.isdisjoint(t.id for t in tasks)


def test_format_dcs_time_treats_naive_as_utc() -> None:
    """A naive datetime is formatted as if it were UTC."""
    assert format_dcs_time(datetime(2020, 6, 9, 16, 0, 0)) == "20200609160000"


def test_list_instances_reads_every_page(sim: DcsSimulator, make: Callable[..., DcsClient]) -> None:
    """Instances are paged like tasks."""
    ids = [sim.add_instance(f"cache-{n}") for n in range(5)]
    instances = make(page_size=2).list_instances()
    assert [i.instance_id for i in instances] == ids
    assert instances[0].name == "cache-0"
    assert instances[0].engine == "Redis"
    assert len([r for r in sim.requests if r.path.endswith("/instances")]) == 3


# -- faults ----------------------------------------------------------------------------------

FAULTS = ["500", "503", "429", "truncated", "not_json", "slow", "reset"]


@pytest.mark.parametrize("kind", FAULTS)
def test_transient_faults_are_retried(
    sim: DcsSimulator,
    make: Callable[..., DcsClient],
    time_: FakeTime,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    """One fault is retried after a backoff and the listing is complete, with one warning."""
    caplog.set_level(logging.WARNING, logger="bot.dcs.client")
    iid = sim.add_instance("cache-a")
    ids = sim.add_tasks_bulk(iid, 5)
    sim.inject(kind, path_contains="/tasks")
    tasks = make(timeout=0.5 if kind == "slow" else 5.0).list_tasks(
        iid, start=NOW - timedelta(days=1)
    )
    assert [t.id for t in tasks] == ids
    assert len(time_.sleeps) == 1
    warnings = [r for r in caplog.records if r.name == "bot.dcs.client"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert f"/instances/{iid}/tasks" in warnings[0].getMessage()
    assert "start_time" not in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("500", DcsUnavailableError, 500),
        ("503", DcsUnavailableError, 503),
        ("429", DcsUnavailableError, 429),
        ("truncated", DcsBadResponseError, None),
        ("not_json", DcsBadResponseError, None),
        ("slow", DcsUnavailableError, None),
        ("reset", DcsUnavailableError, None),
    ],
)
def test_persistent_faults_raise_after_bounded_retries(
    sim: DcsSimulator,
    make: Callable[..., DcsClient],
    time_: FakeTime,
    kind: str,
    error: type[DcsError],
    status: int | None,
) -> None:
    """A fault that persists raises the typed error after exactly ``attempts`` requests."""
    iid = sim.add_instance("cache-a")
    sim.add_tasks_bulk(iid, 5)
    sim.inject(kind, count=100, path_contains="/tasks")
    with pytest.raises(error) as raised:
        make(timeout=0.5 if kind == "slow" else 5.0).list_tasks(iid)
    assert type(raised.value) is error
    if isinstance(raised.value, DcsUnavailableError):
        assert raised.value.status_code == status
        if status is not None and status >= 500:
            assert raised.value.error_code == f"DCS.{status}0"
    assert len(task_requests(sim)) == FAST.attempts
    assert len(time_.sleeps) == FAST.attempts - 1


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("600", 8.0)],
)
def test_retry_after_is_honoured_and_capped(
    sim: DcsSimulator,
    make: Callable[..., DcsClient],
    time_: FakeTime,
    retry_after: str,
    expected: float,
) -> None:
    """A 429's Retry-After sets the wait, capped at max_delay."""
    sim.retry_after = retry_after
    sim.inject("429")
    policy = RetryPolicy(attempts=2, base_delay=0.001, max_delay=8.0, total_budget=60.0)
    assert make(retry=policy).list_instances() == []
    assert time_.sleeps == [expected]


def test_total_budget_bounds_the_retries(
    sim: DcsSimulator, make: Callable[..., DcsClient], time_: FakeTime
) -> None:
    """Retries stop when the next wait would pass the total budget, before attempts run out."""
    sim.inject("500", count=100)
    policy = RetryPolicy(attempts=10, base_delay=4.0, max_delay=8.0, total_budget=10.0)
    with pytest.raises(DcsUnavailableError):
        make(retry=policy).list_instances()
    assert sum(time_.sleeps) <= 10.0
    assert len(sim.requests) < 10


@pytest.mark.parametrize("retry", range(1, 8))
def test_backoff_doubles_with_jitter_up_to_the_cap(retry: int) -> None:
    """The delay before retry n lies within [d/2, d] for d = min(max, base * 2^(n-1))."""
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    ceiling = min(8.0, 0.5 * 2 ** (retry - 1))
    rng = random.Random(retry)
    delays = [policy.backoff(retry, rng) for _ in range(50)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1


# -- error bodies ----------------------------------------------------------------------------


def test_bad_request_becomes_api_error_with_code_and_message(
    sim: DcsSimulator, make: Callable[..., DcsClient]
) -> None:
    """A 400 is not retried and carries DCS's error_code and error_msg."""
    iid = sim.add_instance("cache-a")
    with pytest.raises(DcsApiError) as raised:
        make().list_tasks_page(iid, offset=0, limit=5000)
    assert type(raised.value) is DcsApiError
    assert raised.value.status_code == 400
    assert raised.value.error_code == "111400063"
    assert raised.value.error_msg
    assert "limit" in raised.value.error_msg
    assert len(task_requests(sim)) == 1


@pytest.mark.parametrize(
    ("setup", "error", "status"),
    [
        ("unknown-instance", DcsNotFoundError, 404),
        ("unknown-project", DcsNotFoundError, 404),
        ("403", DcsAuthError, 403),
        ("409", DcsApiError, 409),
    ],
)
def test_error_statuses_become_typed_errors(
    sim: DcsSimulator,
    make: Callable[..., DcsClient],
    setup: str,
    error: type[DcsApiError],
    status: int,
) -> None:
    """404, 403 and other 4xx answers raise their own exception type at once, with the code."""
    iid = sim.add_instance("cache-a")
    project = "p1"
    if setup == "unknown-instance":
        iid = "5560df16-cebf-4473-95c4-d1b573c16e79"
    elif setup == "unknown-project":
        project = "elsewhere"
    else:
        sim.inject(setup)
    with pytest.raises(error) as raised:
        make(project_id=project).list_tasks(iid)
    assert type(raised.value) is error
    assert raised.value.status_code == status
    assert raised.value.error_code
    assert raised.value.error_msg
    assert len(task_requests(sim)) == 1


def test_missing_credentials_become_auth_error() -> None:
    """A 401 from DCS raises DcsAuthError and is not retried."""
    with (
        DcsSimulator(project_id="p1", tokens=["good"]) as sim,
        httpx.Client(base_url=sim.url, auth=TokenAuth("bad")) as http,
    ):
        with pytest.raises(DcsAuthError) as raised:
            DcsClient(http, "p1", retry=FAST, sleep=lambda _: None).list_instances()
        assert raised.value.status_code == 401
        assert raised.value.error_code == "APIGW.0301"
        assert len(sim.requests) == 1


# -- tolerance -------------------------------------------------------------------------------


def test_unknown_extra_and_null_fields_are_tolerated(
    sim: DcsSimulator, make: Callable[..., DcsClient]
) -> None:
    """Unknown fields, nulls and odd detail values do not break parsing."""
    iid = sim.add_instance("cache-a")
    tid = sim.add_task(
        iid,
        "SomethingNew",
        "success",
        details={"old_port": "6379", "new_port": None, "mystery": {"a": 1}},
        extra={"user_name": None, "updated_at": None, "enable_show": None, "extra": [1, 2]},
    )
    (task,) = make().list_tasks(iid)
    assert (task.id, task.name, task.status) == (tid, "SomethingNew", "SUCCESS")
    assert task.user_name is None
    assert task.updated_at is None
    assert task.details.old_port == 6379
    assert task.details.new_port is None
    assert task.to_json()["extra"] == [1, 2]


def test_a_task_without_id_is_skipped_not_the_answer(
    sim: DcsSimulator, make: Callable[..., DcsClient]
) -> None:
    """A task with no id is skipped and reported; the other tasks of the answer are kept and
    nothing is retried."""
    iid = sim.add_instance("cache-a")
    sim.add_task(iid, "EXTEND", extra={"id": None})
    kept = sim.add_task(iid, "BindEip")
    listing = make().read_tasks(iid)
    assert [t.id for t in listing.tasks] == [kept]
    assert listing.malformed == ("a task in the DCS answer has no id",)
    assert listing.malformed_ids == frozenset()
    assert len(task_requests(sim)) == 1


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"task_count": "1"},
        {"tasks": "none", "task_count": 0},
        {"tasks": [], "task_count": "many"},
        {"tasks": [], "task_count": True},
        {"tasks": []},
    ],
)
def test_wrong_shapes_are_bad_responses(body: object) -> None:
    """A 200 whose JSON is not the documented shape ends in DcsBadResponseError, not []."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json=body)

    with httpx.Client(base_url="http://dcs.test", transport=httpx.MockTransport(handler)) as http:
        client = DcsClient(http, "p1", retry=FAST, sleep=lambda _: None)
        with pytest.raises(DcsBadResponseError):
            client.list_tasks("i1")
    assert len(calls) == FAST.attempts


def test_dcs_time_is_the_clock_of_the_date_header(
    sim: DcsSimulator, make: Callable[..., DcsClient], time_: FakeTime
) -> None:
    """DCS's clock is learned from its answers' Date header, moved on by the time since it
    came, and handed out with each task listing; none is known before the first answer."""
    sim.clock = lambda: NOW
    instance = sim.add_instance("cache-prod")
    client = make()
    assert client.dcs_time() is None
    listing = client.read_tasks(instance)
    assert listing.dcs_time == NOW
    time_.now += 90
    assert client.dcs_time() == NOW + timedelta(seconds=90)


@pytest.mark.parametrize(
    "date", [None, "", "yesterday", "Mon, 99 Foo 2024 25:61:61 GMT", "Fri, 01 Jan 99999 0:0:0"]
)
def test_a_missing_or_garbage_date_header_is_ignored(date: str | None) -> None:
    """An answer without a usable Date leaves DCS's clock unknown (or as last known)."""
    headers = {"Date": date} if date is not None else {}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"task_count": 0}, headers=headers)

    with httpx.Client(base_url="http://dcs.test", transport=httpx.MockTransport(handler)) as http:
        listing = DcsClient(http, "p1").read_tasks("i1")
    assert listing.tasks == []
    assert listing.dcs_time is None


def test_zero_count_without_tasks_list_is_empty() -> None:
    """An answer of task_count 0 that leaves out the tasks list means no tasks."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"task_count": 0})

    with httpx.Client(base_url="http://dcs.test", transport=httpx.MockTransport(handler)) as http:
        assert DcsClient(http, "p1").list_tasks("i1") == []


def test_endless_paging_is_bounded() -> None:
    """A service that keeps sending full pages of the same task is asked MAX_PAGES times, then
    the listing is an error, not a silent partial answer."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        task = {"id": "a" * 32, "name": "EXTEND", "status": "SUCCESS"}
        return httpx.Response(200, json={"task_count": "1000000", "tasks": [task]})

    with (
        httpx.Client(base_url="http://dcs.test", transport=httpx.MockTransport(handler)) as http,
        pytest.raises(DcsBadResponseError, match=f"past {MAX_PAGES} pages"),
    ):
        DcsClient(http, "p1", page_size=1).list_tasks("i1")
    assert len(calls) == MAX_PAGES


def test_an_empty_page_ends_paging() -> None:
    """A page with no tasks stops the paging even when task_count promises more."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=json.dumps({"task_count": "50", "tasks": []}))

    with httpx.Client(base_url="http://dcs.test", transport=httpx.MockTransport(handler)) as http:
        assert DcsClient(http, "p1").list_tasks("i1") == []
    assert len(calls) == 1


# -- authentication end to end ---------------------------------------------------------------


def test_1200_tasks_with_aksk_signing() -> None:
    """An instance with 1,200 tasks is listed completely through AK/SK-signed requests."""
    with DcsSimulator(project_id="p1", access_key="AK1", secret_key="SK1") as sim:
        iid = sim.add_instance("big")
        ids = sim.add_tasks_bulk(iid, 1200)
        with httpx.Client(base_url=sim.url, auth=AkSkAuth("AK1", "SK1"), timeout=10) as http:
            tasks = DcsClient(http, "p1", retry=FAST).list_tasks(iid)
        assert [t.id for t in tasks] == ids
        assert all(r.headers["authorization"].startswith("SDK-HMAC") for r in sim.requests)


def test_1200_tasks_with_iam_and_token_refresh() -> None:
    """IAM password auth lists 1,200 tasks, and fetches a new token once the old one expires."""
    with DcsSimulator(project_id="p1", iam_users={"ops": "Pa55-word"}) as sim:
        iid = sim.add_instance("big")
        sim.add_tasks_bulk(iid, 1200)
        with httpx.Client(timeout=10) as iam_http:
            auth = IamTokenAuth(
                sim.auth_url, "ops", "Pa55-word", "dom", project_id="p1", client=iam_http
            )
            with httpx.Client(base_url=sim.url, auth=auth, timeout=10) as http:
                client = DcsClient(http, "p1", retry=FAST)
                assert len(client.list_tasks(iid)) == 1200
                sim.expire_tokens()
                assert len(client.list_tasks(iid)) == 1200
        logins = [r for r in sim.requests if r.path == "/v3/auth/tokens"]
        assert len(logins) == 2


def test_iam_outage_is_retried() -> None:
    """A token fetch that fails with 503 is retried like any transient DCS failure."""
    with DcsSimulator(project_id="p1", iam_users={"ops": "Pa55-word"}) as sim:
        sim.add_instance("big")
        sim.inject("503", path_contains="/auth/tokens")
        with httpx.Client(timeout=10) as iam_http:
            auth = IamTokenAuth(
                sim.auth_url, "ops", "Pa55-word", "dom", project_id="p1", client=iam_http
            )
            with httpx.Client(base_url=sim.url, auth=auth) as http:
                client = DcsClient(http, "p1", retry=FAST, sleep=lambda _: None)
                assert [i.name for i in client.list_instances()] == ["big"]
        assert len([r for r in sim.requests if r.path == "/v3/auth/tokens"]) == 2


def test_a_non_transient_transport_error_is_wrapped() -> None:
    """An unusable endpoint (here an unsupported scheme) is a DcsUnavailableError, not a crash."""
    with httpx.Client(base_url="ftp://dcs.test") as http:
        client = DcsClient(http, "p1", retry=FAST, sleep=lambda _: None)
        with pytest.raises(DcsUnavailableError, match="UnsupportedProtocol"):
            client.list_instances()


def test_wrong_iam_password_is_an_auth_error() -> None:
    """A refused IAM login surfaces as DcsAuthError without the password in it."""
    with DcsSimulator(project_id="p1", iam_users={"ops": "Pa55-word"}) as sim:
        sim.add_instance("big")
        with httpx.Client(timeout=10) as iam_http:
            auth = IamTokenAuth(
                sim.auth_url, "ops", "Wr0ng-Guess", "dom", project_id="p1", client=iam_http
            )
            with (
                httpx.Client(base_url=sim.url, auth=auth) as http,
                pytest.raises(DcsAuthError) as raised,
            ):
                DcsClient(http, "p1", retry=FAST).list_instances()
        assert "Wr0ng-Guess" not in str(raised.value)


def test_retry_logs_and_errors_carry_no_secrets(caplog: pytest.LogCaptureFixture) -> None:
    """Retry warnings and final errors name the path, never the token, query or task params."""
    caplog.set_level(logging.DEBUG)
    token = "tok-SECRET-123"
    with DcsSimulator(project_id="p1", tokens=[token]) as sim:
        iid = sim.add_instance("cache-a")
        sim.add_task(iid, "modify", params='{"password": "PARAM-SECRET"}')
        sim.inject("truncated", path_contains="/tasks")
        with httpx.Client(base_url=sim.url, auth=TokenAuth(token)) as http:
            client = DcsClient(http, "p1", retry=FAST, sleep=lambda _: None)
            (task,) = client.list_tasks(iid, start=NOW - timedelta(days=3650))
            sim.inject("500", count=10)
            with pytest.raises(DcsUnavailableError) as raised:
                client.list_instances()
    assert "params" not in task.to_json()
    ours = [r.getMessage() for r in caplog.records if r.name == "bot.dcs.client"]
    assert len(ours) == 1 + (FAST.attempts - 1)  # the truncated page, then the 500s
    text = "\n".join(ours) + str(raised.value) + repr(task)
    assert token not in text
    assert "PARAM-SECRET" not in text
    assert "start_time" not in text


# -- instances by name or ID -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ([], ["cache-a", "cache-b", "mc"]),
        (["cache-b"], ["cache-b"]),
        (["CACHE-B"], ["cache-b"]),
        (["ID:mc", "cache-a"], ["mc", "cache-a"]),
        (["cache-a", "ID:cache-a", " cache-a "], ["cache-a"]),
        (["5560df16-cebf-4473-95c4-d1b573c16e79"], ["5560df16-cebf-4473-95c4-d1b573c16e79"]),
    ],
)
def test_resolve_instances_by_name_or_id(
    sim: DcsSimulator, make: Callable[..., DcsClient], wanted: list[str], expected: list[str]
) -> None:
    """Names (any case) and IDs resolve in the order asked; empty means every instance."""
    ids = {name: sim.add_instance(name) for name in ("cache-a", "cache-b")}
    ids["mc"] = sim.add_instance("mc", engine="Memcached")
    asked = [ids[w[3:]] if w.startswith("ID:") else w for w in wanted]
    names = [i.name for i in make().resolve_instances(asked)]
    assert names == expected


@pytest.mark.parametrize("wanted", [["nope"], ["cache-a", "cache-z"], ["12345"]])
def test_resolve_unknown_instance_is_a_clear_error(
    sim: DcsSimulator, make: Callable[..., DcsClient], wanted: list[str]
) -> None:
    """An unknown name raises DcsUnknownInstanceError naming it and the known instances."""
    sim.add_instance("cache-a")
    with pytest.raises(DcsUnknownInstanceError) as raised:
        make().resolve_instances(wanted)
    assert repr(wanted[-1]) in str(raised.value)
    assert "cache-a" in str(raised.value)


def test_resolve_ambiguous_name_asks_for_the_id(
    sim: DcsSimulator, make: Callable[..., DcsClient]
) -> None:
    """Two instances with one name make the name ambiguous."""
    first = sim.add_instance("twin")
    sim.add_instance("twin")
    with pytest.raises(DcsUnknownInstanceError, match="ambiguous"):
        make().resolve_instances(["twin"])
    assert [i.instance_id for i in make().resolve_instances([first])] == [first]


# -- the configured client -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["token", "aksk"])
def test_make_http_client_from_settings(mode: str) -> None:
    """make_http_client points at DCS_ENDPOINT with the configured auth and timeouts."""
    with DcsSimulator(project_id="p1", tokens=["tok"], access_key="AK1", secret_key="SK1") as sim:
        sim.add_instance("cache-a")
        env = {"DCS_ENDPOINT": sim.url, "DCS_PROJECT_ID": "p1"}
        env |= (
            {"DCS_AUTH_TOKEN": "tok"}
            if mode == "token"
            else {
                "DCS_ACCESS_KEY": "AK1",
                "DCS_SECRET_KEY": "SK1",
            }
        )
        with make_http_client(load_settings(env), timeout=3.5) as http:
            assert http.timeout.read == 3.5
            instances = DcsClient(http, "p1", retry=FAST).list_instances()
        assert [i.name for i in instances] == ["cache-a"]


def test_make_http_client_needs_an_endpoint() -> None:
    """Without DCS_ENDPOINT there is nothing to talk to: a ConfigError naming it."""
    with pytest.raises(ConfigError, match="DCS_ENDPOINT"):
        make_http_client(load_settings({"DCS_AUTH_TOKEN": "tok"}))


def test_page_size_is_bounded() -> None:
    """A page size outside 1..1000 is refused up front."""
    with httpx.Client() as http, pytest.raises(ValueError, match="page_size"):
        DcsClient(http, "p1", page_size=1001)


# -- stopping --------------------------------------------------------------------------------


def test_a_stop_ends_retrying_at_once(sim: DcsSimulator) -> None:
    """Once ``stop`` is set, the retry wait returns and no further attempt is sent: a stopping
    process does not sit out the retry budget."""
    sim.inject("503", count=100)
    stop = threading.Event()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        stop.set()  # SIGTERM arrives during the first retry wait

    slow = RetryPolicy(attempts=10, base_delay=5.0, max_delay=5.0, total_budget=60.0)
    with httpx.Client(base_url=sim.url, timeout=5.0) as http:
        client = DcsClient(http, "p1", retry=slow, sleep=sleep, stop=stop)
        with pytest.raises(DcsUnavailableError, match="stopping"):
            client.list_instances()
    assert len(waits) == 1
    assert len(sim.requests) == 1


def test_the_default_retry_wait_returns_when_stop_is_set(sim: DcsSimulator) -> None:
    sim.inject("503", count=100)
    stop = threading.Event()
    slow = RetryPolicy(attempts=3, base_delay=60.0, max_delay=60.0, total_budget=600.0)
    threading.Timer(0.2, stop.set).start()
    with httpx.Client(base_url=sim.url, timeout=5.0) as http:
        client = DcsClient(http, "p1", retry=slow, stop=stop)
        with pytest.raises(DcsUnavailableError, match="stopping"):
            client.list_instances()  # would wait 30..60 s without the stop
    assert len(sim.requests) == 1


# -- deadlines, size and paging bounds (issue 10.4) ------------------------------------------


def test_a_trickling_answer_ends_at_the_total_deadline() -> None:
    """An answer sent one byte every 50 ms (no single read ever times out) is cut at the
    request's total deadline instead of holding the caller for minutes."""
    with DcsSimulator(project_id="p1", trickle_delay=0.05) as sim:
        iid = sim.add_instance("cache-a")
        sim.add_tasks_bulk(iid, 5)
        sim.inject("trickle", count=5, path_contains="/tasks")
        with httpx.Client(base_url=sim.url, timeout=5.0) as http:
            client = DcsClient(http, "p1", retry=RetryPolicy(attempts=1), request_deadline=1.0)
            started = time.monotonic()
            with pytest.raises(DcsUnavailableError, match="deadline"):
                client.list_tasks(iid)
            assert time.monotonic() - started < 5.0


def test_with_deadline_bounds_every_call_retries_included() -> None:
    """A client for Slack users (with_deadline) gives up on a stalled DCS within its deadline,
    however many attempts its retry policy would allow."""
    with DcsSimulator(project_id="p1", latency=30.0) as sim:
        iid = sim.add_instance("cache-a")
        with httpx.Client(base_url=sim.url, timeout=20.0) as http:
            patient = DcsClient(http, "p1", retry=RetryPolicy(attempts=5, total_budget=60))
            started = time.monotonic()
            with pytest.raises(DcsUnavailableError):
                patient.with_deadline(1.0).list_tasks(iid)
            assert time.monotonic() - started < 5.0


def test_a_body_over_16_mb_is_an_error_read_once() -> None:
    """A 17 MB answer (no Content-Length) is refused once read past the bound, not retried."""
    with DcsSimulator(project_id="p1") as sim:
        iid = sim.add_instance("cache-a")
        sim.inject("huge", count=5, path_contains="/tasks")
        with (
            httpx.Client(base_url=sim.url, timeout=5.0) as http,
            pytest.raises(DcsBadResponseError, match="more than 16 MB"),
        ):
            DcsClient(http, "p1", retry=FAST, sleep=lambda _: None).list_tasks(iid)
        assert len(task_requests(sim)) == 1


def test_a_declared_length_over_the_bound_is_refused_before_reading() -> None:
    """A Content-Length above max_body_bytes ends the request at once."""
    with DcsSimulator(project_id="p1") as sim:
        iid = sim.add_instance("cache-a")
        sim.add_tasks_bulk(iid, 50)
        with httpx.Client(base_url=sim.url, timeout=5.0) as http:
            client = DcsClient(http, "p1", max_body_bytes=4096)
            with pytest.raises(DcsBadResponseError, match="more than 4096 bytes"):
                client.list_tasks(iid)


def test_listing_more_than_max_items_is_an_error() -> None:
    """Full pages of distinct tasks past MAX_ITEMS stop the listing with an error."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        offset = int(request.url.params["offset"])
        tasks = [{"id": f"{offset + n:032x}", "status": "SUCCESS"} for n in range(1000)]
        return httpx.Response(200, json={"task_count": 10**9, "tasks": tasks})

    with (
        httpx.Client(base_url="http://dcs.test", transport=httpx.MockTransport(handler)) as http,
        pytest.raises(DcsBadResponseError, match=f"more than {MAX_ITEMS}"),
    ):
        DcsClient(http, "p1").list_tasks("i1")
    assert len(calls) == MAX_ITEMS // 1000 + 1


def test_malformed_tasks_are_skipped_and_reported_and_paging_counts_them() -> None:
    """A task without a string status is skipped (read_tasks says which and why) and still
    counts for paging, so no page is read twice and none is missed."""
    with DcsSimulator(project_id="p1") as sim:
        iid = sim.add_instance("cache-a")
        ids = sim.add_tasks_bulk(iid, 15, newest=NOW)
        sim.set_extra(ids[3], {"status": None})
        with httpx.Client(base_url=sim.url, timeout=5.0) as http:
            listing = DcsClient(http, "p1", page_size=10).read_tasks(iid)
        assert [t.id for t in listing.tasks] == [i for i in ids if i != ids[3]]
        assert listing.malformed_ids == {ids[3]}
        assert ids[3] in listing.malformed[0]
        assert [q["offset"] for q in task_requests(sim)] == ["0", "10"]
