"""The DCS simulator answers like the DCS reference over real loopback HTTP, and fails on cue."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.dcs.auth import AkSkAuth
from bot.dcs.models import TaskDetails
from bot.testing.simulator import DETAIL_KEYS, DcsSimulator, format_time, run_forever

NOW = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def sim() -> Iterator[DcsSimulator]:
    with DcsSimulator(project_id="p1", clock=Clock(NOW)) as simulator:
        yield simulator


@pytest.fixture
def http(sim: DcsSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=5) as client:
        yield client


def tasks_path(sim: DcsSimulator, instance_id: str) -> str:
    return f"/v2/{sim.project_id}/instances/{instance_id}/tasks"


def test_task_has_every_documented_field(sim: DcsSimulator, http: httpx.Client) -> None:
    """A task carries every SingleBackgroundTask field and all 26 DetailsBody keys."""
    iid = sim.add_instance("cache-a")
    tid = sim.add_task(
        iid,
        "EXTEND",
        "SUCCESS",
        details={"old_capacity": "0.125", "new_capacity": "0.25"},
        user_name="ops",
        created_at=datetime(2020, 6, 17, 7, 38, 42, 503000, tzinfo=UTC),
        params='{"x": 1}',
    )
    body = http.get(tasks_path(sim, iid)).json()
    assert body["task_count"] == "1"
    (task,) = body["tasks"]
    assert set(task) == {
        "id",
        "name",
        "details",
        "user_name",
        "user_id",
        "params",
        "status",
        "created_at",
        "updated_at",
        "enable_show",
    }
    assert task["id"] == tid
    assert len(tid) == 32
    assert task["created_at"] == "2020-06-17T07:38:42.503Z"
    assert task["params"] == '{"x": 1}'
    assert set(DETAIL_KEYS) == {f.name for f in fields(TaskDetails)}
    assert list(task["details"]) == list(DETAIL_KEYS)
    assert task["details"]["old_capacity"] == "0.125"
    assert task["details"]["new_port"] is None


def test_task_count_can_be_a_number(sim: DcsSimulator, http: httpx.Client) -> None:
    """With task_count_as_number the count is a JSON number, as the reference's example shows."""
    iid = sim.add_instance("cache-a")
    sim.add_tasks_bulk(iid, 3)
    sim.task_count_as_number = True
    assert http.get(tasks_path(sim, iid)).json()["task_count"] == 3


def test_tasks_are_newest_first_and_paged(sim: DcsSimulator, http: httpx.Client) -> None:
    """Tasks come newest first, sliced by offset and limit, with the total in task_count."""
    iid = sim.add_instance("cache-a")
    ids = sim.add_tasks_bulk(iid, 25, newest=NOW)
    first = http.get(tasks_path(sim, iid), params={"offset": 0, "limit": 10}).json()
    last = http.get(tasks_path(sim, iid), params={"offset": 20, "limit": 10}).json()
    assert [t["id"] for t in first["tasks"]] == ids[:10]
    assert [t["id"] for t in last["tasks"]] == ids[20:]
    assert first["task_count"] == last["task_count"] == "25"


def test_default_limit_is_ten(sim: DcsSimulator, http: httpx.Client) -> None:
    """Without limit a page holds 10 tasks."""
    iid = sim.add_instance("cache-a")
    sim.add_tasks_bulk(iid, 15)
    assert len(http.get(tasks_path(sim, iid)).json()["tasks"]) == 10


def test_window_is_inclusive_to_the_second(sim: DcsSimulator, http: httpx.Client) -> None:
    """start_time and end_time keep tasks created within them, both seconds included."""
    iid = sim.add_instance("cache-a")
    at = {
        "before": datetime(2024, 5, 1, 9, 59, 59, 999000, tzinfo=UTC),
        "start": datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC),
        "end": datetime(2024, 5, 1, 11, 0, 0, 999000, tzinfo=UTC),
        "after": datetime(2024, 5, 1, 11, 0, 1, tzinfo=UTC),
    }
    ids = {key: sim.add_task(iid, "EXTEND", created_at=when) for key, when in at.items()}
    body = http.get(
        tasks_path(sim, iid),
        params={"start_time": "20240501100000", "end_time": "20240501110000", "limit": 100},
    ).json()
    assert [t["id"] for t in body["tasks"]] == [ids["end"], ids["start"]]
    assert body["task_count"] == "2"


def test_begin_time_is_ignored(sim: DcsSimulator, http: httpx.Client) -> None:
    """An unknown parameter such as begin_time does not filter, as DCS ignores it."""
    iid = sim.add_instance("cache-a")
    sim.add_task(iid, "EXTEND", created_at=datetime(2020, 1, 1, tzinfo=UTC))
    body = http.get(tasks_path(sim, iid), params={"begin_time": "20240101000000"}).json()
    assert body["task_count"] == "1"
    assert sim.requests[-1].query == {"begin_time": "20240101000000"}


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "-1"},
        {"offset": "x"},
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"start_time": "2024-05-01"},
        {"end_time": "20241301000000"},
        {"start_time": "20240502000000", "end_time": "20240501000000"},
    ],
)
def test_bad_paging_or_times_get_400(
    sim: DcsSimulator, http: httpx.Client, params: dict[str, str]
) -> None:
    """Bad offset, limit or times get 400 with the documented error body."""
    iid = sim.add_instance("cache-a")
    response = http.get(tasks_path(sim, iid), params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "111400063"
    assert body["error_msg"]
    assert "error_ext_msg" in body
    assert body["error_ext_msg"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/v2/p1/instances/no-such-instance/tasks",
        "/v2/other-project/instances/{iid}/tasks",
        "/v2/other-project/instances",
        "/v1/nothing/here",
    ],
)
def test_unknown_resources_get_404(sim: DcsSimulator, http: httpx.Client, path: str) -> None:
    """An unknown instance, project or path gets 404 with an error body."""
    iid = sim.add_instance("cache-a")
    response = http.get(path.format(iid=iid))
    assert response.status_code == 404
    assert set(response.json()) == {"error_code", "error_msg", "error_ext_msg"}


def test_instances_are_listed_and_paged(sim: DcsSimulator, http: httpx.Client) -> None:
    """The instance list gives instance_num and pages of instances with id, name, engine, status."""
    ids = [sim.add_instance(f"cache-{n}", engine="Redis") for n in range(3)]
    sim.add_instance("mc", instance_id="fixed-id", engine="Memcached", status="CREATING")
    body = http.get("/v2/p1/instances", params={"offset": 2, "limit": 1}).json()
    assert body["instance_num"] == 4
    assert [i["instance_id"] for i in body["instances"]] == [ids[2]]
    everything = http.get("/v2/p1/instances", params={"limit": 100}).json()["instances"]
    assert everything[-1]["instance_id"] == "fixed-id"
    assert everything[-1]["engine"] == "Memcached"
    assert everything[-1]["status"] == "CREATING"
    assert everything[0]["name"] == "cache-0"


def test_set_status_changes_status_and_updated_at(sim: DcsSimulator, http: httpx.Client) -> None:
    """set_status changes what the next listing shows."""
    iid = sim.add_instance("cache-a")
    tid = sim.add_task(iid, "BindEip", "EXECUTING", created_at=NOW)
    sim.set_status(tid, "SUCCESS", updated_at=NOW + timedelta(seconds=4))
    (task,) = http.get(tasks_path(sim, iid)).json()["tasks"]
    assert task["status"] == "SUCCESS"
    assert task["updated_at"] == format_time(NOW + timedelta(seconds=4))


def test_extra_fields_override_the_json(sim: DcsSimulator, http: httpx.Client) -> None:
    """``extra`` adds unknown fields and can null documented ones."""
    iid = sim.add_instance("cache-a")
    sim.add_task(iid, "EXTEND", extra={"user_name": None, "surprise": [1]})
    (task,) = http.get(tasks_path(sim, iid)).json()["tasks"]
    assert task["user_name"] is None
    assert task["surprise"] == [1]


def test_adding_to_an_unknown_instance_fails(sim: DcsSimulator) -> None:
    """Tasks can only be added to instances that exist."""
    with pytest.raises(KeyError):
        sim.add_task("nope", "EXTEND")


def test_requests_are_recorded_with_lowercase_headers(
    sim: DcsSimulator, http: httpx.Client
) -> None:
    """Every request is recorded with method, path, query and lower-cased header names."""
    sim.add_instance("cache-a")
    http.get("/v2/p1/instances", params={"limit": 5}, headers={"X-Custom": "yes"})
    recorded = sim.requests[-1]
    assert (recorded.method, recorded.path, recorded.query) == (
        "GET",
        "/v2/p1/instances",
        {"limit": "5"},
    )
    assert recorded.headers["x-custom"] == "yes"
    assert "yes" not in repr(recorded)


# -- authentication --------------------------------------------------------------------------


def test_no_credentials_configured_means_no_auth(sim: DcsSimulator, http: httpx.Client) -> None:
    """A simulator without credentials accepts every request (the demo)."""
    assert http.get("/v2/p1/instances").status_code == 200


def test_given_tokens_are_accepted_until_expired() -> None:
    """A given token works; a missing or unknown one gets 401; expire_tokens revokes it."""
    with (
        DcsSimulator(project_id="p1", tokens=["tok-1"]) as sim,
        httpx.Client(base_url=sim.url) as http,
    ):
        assert http.get("/v2/p1/instances").status_code == 401
        assert http.get("/v2/p1/instances", headers={"X-Auth-Token": "bad"}).status_code == 401
        assert http.get("/v2/p1/instances", headers={"X-Auth-Token": "tok-1"}).status_code == 200
        sim.expire_tokens()
        refused = http.get("/v2/p1/instances", headers={"X-Auth-Token": "tok-1"})
        assert refused.status_code == 401
        assert refused.json()["error_code"]


def iam_body(user: str, password: str, project_id: str = "p1") -> dict[str, object]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "password": password, "domain": {"name": "dom"}}
                },
            },
            "scope": {"project": {"id": project_id}},
        }
    }


def test_iam_issues_tokens_that_expire_with_the_clock() -> None:
    """POST /v3/auth/tokens answers 201 with X-Subject-Token; the token expires after token_ttl."""
    clock = Clock(NOW)
    with (
        DcsSimulator(
            project_id="p1", iam_users={"ops": "pw"}, token_ttl=timedelta(hours=1), clock=clock
        ) as sim,
        httpx.Client(base_url=sim.url) as http,
    ):
        response = http.post("/v3/auth/tokens", json=iam_body("ops", "pw"))
        assert response.status_code == 201
        token = response.headers["X-Subject-Token"]
        body = response.json()["token"]
        assert body["project"]["id"] == "p1"
        assert datetime.fromisoformat(body["expires_at"]) == NOW + timedelta(hours=1)
        assert http.get("/v2/p1/instances", headers={"X-Auth-Token": token}).status_code == 200
        clock.now = NOW + timedelta(hours=1)
        assert http.get("/v2/p1/instances", headers={"X-Auth-Token": token}).status_code == 401


@pytest.mark.parametrize(
    ("user", "password", "project_id"),
    [("ops", "Wr0ng-Pass", "p1"), ("nobody", "pw", "p1"), ("ops", "pw", "other")],
)
def test_iam_refuses_wrong_credentials(user: str, password: str, project_id: str) -> None:
    """A wrong password, unknown user or foreign project gets 401 and no token."""
    with (
        DcsSimulator(project_id="p1", iam_users={"ops": "pw"}) as sim,
        httpx.Client(base_url=sim.url) as http,
    ):
        response = http.post("/v3/auth/tokens", json=iam_body(user, password, project_id))
        assert response.status_code == 401
        assert "X-Subject-Token" not in response.headers
        assert password not in response.text


def test_aksk_signed_requests_are_verified() -> None:
    """A request signed with the configured AK/SK passes; a wrong secret or none gets 401."""
    with DcsSimulator(project_id="p1", access_key="AK1", secret_key="SK1") as sim:
        sim.add_instance("cache-a")
        for auth, status in [
            (AkSkAuth("AK1", "SK1"), 200),
            (AkSkAuth("AK1", "wrong"), 401),
            (AkSkAuth("AK2", "SK1"), 401),
            (None, 401),
        ]:
            with httpx.Client(base_url=sim.url, auth=auth) as http:
                response = http.get("/v2/p1/instances", params={"limit": 5, "offset": 0})
                assert response.status_code == status


# -- faults ----------------------------------------------------------------------------------


def test_injected_status_faults_carry_error_bodies(sim: DcsSimulator, http: httpx.Client) -> None:
    """Injected 500 and 429 answer with an error body; 429 with the configured Retry-After."""
    sim.retry_after = "7"
    sim.inject("500")
    sim.inject("429")
    first, second, third = (http.get("/v2/p1/instances") for _ in range(3))
    assert first.status_code == 500
    assert first.json()["error_code"]
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "7"
    assert third.status_code == 200


def test_truncated_and_not_json_answer_200_with_bad_bodies(
    sim: DcsSimulator, http: httpx.Client
) -> None:
    """truncated sends cut JSON and not_json sends HTML, both with status 200."""
    sim.inject("truncated")
    sim.inject("not_json")
    for _ in range(2):
        response = http.get("/v2/p1/instances")
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            response.json()


def test_slow_outlasts_the_client_timeout(sim: DcsSimulator) -> None:
    """slow stalls longer than the client waits."""
    sim.slow_delay = 1.0
    sim.inject("slow")
    with httpx.Client(base_url=sim.url, timeout=0.1) as http, pytest.raises(httpx.ReadTimeout):
        http.get("/v2/p1/instances")
    assert httpx.get(sim.url + "/v2/p1/instances").status_code == 200


def test_latency_delays_every_answer(sim: DcsSimulator) -> None:
    """Latency longer than the client timeout makes requests time out."""
    sim.latency = 0.5
    with httpx.Client(base_url=sim.url, timeout=0.1) as http, pytest.raises(httpx.ReadTimeout):
        http.get("/v2/p1/instances")


def test_reset_closes_the_connection(sim: DcsSimulator, http: httpx.Client) -> None:
    """reset drops the connection without an answer."""
    sim.inject("reset")
    with pytest.raises(httpx.TransportError):
        http.get("/v2/p1/instances")
    assert http.get("/v2/p1/instances").status_code == 200


def test_faults_respect_count_and_path(sim: DcsSimulator, http: httpx.Client) -> None:
    """A fault hits only matching paths, as many times as asked."""
    iid = sim.add_instance("cache-a")
    sim.inject("503", count=2, path_contains="/tasks")
    assert http.get("/v2/p1/instances").status_code == 200
    statuses = [http.get(tasks_path(sim, iid)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_fault_rate_is_seeded() -> None:
    """The same seed and rate fault the same requests; rate 0 faults none."""

    def run(seed: int) -> list[int]:
        with DcsSimulator(seed=seed) as sim, httpx.Client(base_url=sim.url) as http:
            sim.set_fault_rate(0.5, ["500", "502"])
            return [http.get("/v2/demo-project/instances").status_code for _ in range(20)]

    first = run(3)
    assert first == run(3)
    assert {200, 500} <= set(first) or {200, 502} <= set(first)
    with DcsSimulator() as sim, httpx.Client(base_url=sim.url) as http:
        sim.set_fault_rate(0.0, ["500"])
        assert {http.get("/v2/demo-project/instances").status_code for _ in range(5)} == {200}


@pytest.mark.parametrize("kind", ["boom", "42", "slowly"])
def test_unknown_fault_kinds_are_refused(sim: DcsSimulator, kind: str) -> None:
    """A misspelt fault kind is an error, not a silent no-op."""
    with pytest.raises(ValueError, match="fault kind"):
        sim.inject(kind)


def test_run_forever_serves_until_stopped() -> None:
    """run_forever reports its URL, serves, and returns once the stop event is set."""
    stop = threading.Event()
    urls: list[str] = []
    ready = threading.Event()

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    thread = threading.Thread(
        target=run_forever, kwargs={"port": 0, "ready": on_ready, "stop": stop}, daemon=True
    )
    thread.start()
    assert ready.wait(5)
    assert httpx.get(urls[0] + "/v2/demo-project/instances").json()["instance_num"] == 0
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_requests_beyond_max_in_flight_get_429_and_are_counted() -> None:
    """With max_in_flight, a request arriving while that many are answered gets 429 at once
    (as a gateway's concurrency limit answers); ``throttled`` counts the 429s sent."""
    with DcsSimulator(latency=0.5) as sim:
        sim.max_in_flight = 1
        statuses: list[int] = []

        def slow_get() -> None:
            with httpx.Client(base_url=sim.url, timeout=5.0) as client:
                statuses.append(client.get("/v2/demo-project/instances").status_code)

        first = threading.Thread(target=slow_get)
        first.start()
        while not sim.requests:  # the first request is being answered (0.5 s of latency)
            threading.Event().wait(0.01)
        with httpx.Client(base_url=sim.url, timeout=5.0) as client:
            second = client.get("/v2/demo-project/instances")
        first.join()
        assert second.status_code == 429
        assert second.headers["Retry-After"] == "1"
        assert statuses == [200]
        assert sim.throttled == 1
        sim.clear_requests()
        assert sim.throttled == 0
