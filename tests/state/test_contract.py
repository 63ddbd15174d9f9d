"""The StateStore contract, run against both backends (SQLite file, PostgreSQL schema)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from state.base import (
    CycleCommit,
    InstanceCursor,
    LeaseLostError,
    NewDelivery,
    StateError,
    StateStore,
    Subscription,
    TaskRecord,
)
from state.sqlite import SqliteStore
from tests.state.conftest import T0, AnyStore, FakeClock, StoreFactory

INSTANCE = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"


def record(task_id: str = "t1", instance_id: str = INSTANCE, **changes: Any) -> TaskRecord:
    """A task record as the poller would build it."""
    base = TaskRecord(
        instance_id=instance_id,
        task_id=task_id,
        name="EXTEND",
        status="EXECUTING",
        created_at=T0 - timedelta(minutes=5),
        updated_at=T0 - timedelta(minutes=1),
        first_seen_at=T0,
        task={"id": task_id, "name": "EXTEND", "status": "EXECUTING", "details": {"a": None}},
    )
    return replace(base, **changes)


def post(task_id: str | None = "t1", channel: str = "C1", **changes: Any) -> NewDelivery:
    """A new chat.postMessage for a task."""
    base = NewDelivery(
        kind="post",
        channel=channel,
        text=f"alert {task_id}",
        blocks=({"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}},),
        instance_id=INSTANCE if task_id else None,
        task_id=task_id,
    )
    return replace(base, **changes)


def test_commit_cycle_stores_tasks_by_instance(store: StateStore) -> None:
    """Committed tasks come back from tasks_of their own instance only, field for field."""
    a, b = record("t1"), record("t2", instance_id=OTHER)
    store.commit_cycle(CycleCommit(tasks=[a, b]))
    assert store.tasks_of(INSTANCE) == {"t1": a}
    assert store.tasks_of(OTHER) == {"t2": b}
    assert store.tasks_of("unknown") == {}


def test_tasks_by_id_reads_only_the_asked_tasks(store: AnyStore) -> None:
    """tasks_by_id returns the known tasks among the IDs, of that instance, with messages."""
    store.commit_cycle(
        CycleCommit(
            tasks=[record("t1"), record("t2"), record("t3"), record("t4", instance_id=OTHER)],
            deliveries=[post("t2")],
        )
    )
    [delivery] = store.pending_deliveries(T0)
    store.delivery_done(delivery.id, ts="2.2")
    found = store.tasks_by_id({INSTANCE: ["t2", "t3", "t4", "unknown"], OTHER: ["t4", "t1"]})
    assert {i: set(tasks) for i, tasks in found.items()} == {INSTANCE: {"t2", "t3"}, OTHER: {"t4"}}
    assert found[INSTANCE]["t2"] == record("t2", messages={"C1": "2.2"})
    assert store.tasks_by_id({INSTANCE: []}) == {}
    assert store.tasks_by_id({}) == {}


def test_commit_cycle_upsert_keeps_messages(store: StateStore) -> None:
    """An upsert changes the task but keeps the Slack messages delivery_done recorded."""
    store.commit_cycle(CycleCommit(tasks=[record()], deliveries=[post()]))
    [delivery] = store.pending_deliveries(T0)
    store.delivery_done(delivery.id, ts="1700000000.000100")

    done = record(status="SUCCESS", finished_at=T0, messages={"C9": "ignored"})
    store.commit_cycle(CycleCommit(tasks=[done]))
    stored = store.tasks_of(INSTANCE)["t1"]
    assert stored.status == "SUCCESS"
    assert stored.finished_at == T0
    assert stored.messages == {"C1": "1700000000.000100"}


@pytest.mark.parametrize(
    ("kind", "task_id", "ts", "expected"),
    [
        ("post", "t1", "111.1", {"C1": "111.1"}),
        ("post", "t1", None, {}),
        ("update", "t1", "111.1", {"C1": "111.1"}),
        ("update", "t1", None, {}),
        ("reply", "t1", None, {}),
        ("digest", None, "111.1", {}),
    ],
)
def test_delivery_done_stores_ts_given_for_a_task(
    store: StateStore, kind: Any, task_id: str | None, ts: str | None, expected: dict[str, str]
) -> None:
    """delivery_done removes the item and remembers a given ts as the task's message (a post,
    or an update that had to be posted anew); without a task or a ts nothing is remembered."""
    store.commit_cycle(CycleCommit(tasks=[record()], deliveries=[post(task_id, kind=kind)]))
    [delivery] = store.pending_deliveries(T0)
    store.delivery_done(delivery.id, ts=ts)
    assert store.count_pending() == 0
    assert store.pending_deliveries(T0 + timedelta(hours=1)) == []
    assert store.tasks_of(INSTANCE)["t1"].messages == expected


def test_delivery_done_keeps_messages_of_other_channels(store: StateStore) -> None:
    """Posts to two channels leave one message per channel on the task."""
    store.commit_cycle(CycleCommit(tasks=[record()], deliveries=[post(), post(channel="C2")]))
    first, second = store.pending_deliveries(T0)
    store.delivery_done(first.id, ts="1.1")
    store.delivery_done(second.id, ts="2.2")
    assert store.tasks_of(INSTANCE)["t1"].messages == {"C1": "1.1", "C2": "2.2"}


def test_delivery_done_of_unknown_id_is_harmless(store: StateStore) -> None:
    """Finishing a delivery that is not there changes nothing."""
    store.commit_cycle(CycleCommit(tasks=[record()], deliveries=[post()]))
    store.delivery_done(999_999, ts="1.1")
    assert store.count_pending() == 1


def test_pending_deliveries_oldest_first_with_all_fields(store: StateStore) -> None:
    """Deliveries come back in enqueue order with every field, and limit caps them."""
    reply = NewDelivery(
        kind="reply",
        channel="C1",
        text="EXECUTING → FAILED",
        instance_id=INSTANCE,
        task_id="t1",
        reply_broadcast=True,
    )
    store.commit_cycle(CycleCommit(tasks=[record()], deliveries=[post(), post(channel="C2")]))
    store.commit_cycle(CycleCommit(deliveries=[reply]))
    pending = store.pending_deliveries(T0, limit=100)
    assert [(d.kind, d.channel) for d in pending] == [
        ("post", "C1"),
        ("post", "C2"),
        ("reply", "C1"),
    ]
    assert pending[0].id < pending[1].id < pending[2].id
    last = pending[2]
    assert (last.text, last.instance_id, last.task_id, last.reply_broadcast) == (
        "EXECUTING → FAILED",
        INSTANCE,
        "t1",
        True,
    )
    assert list(pending[0].blocks) == [dict(b) for b in post().blocks]
    assert pending[0].created_at == T0
    assert (last.attempts, last.next_try_at, last.last_error) == (0, None, None)


def test_pending_deliveries_respects_limit(store: StateStore) -> None:
    """No more than ``limit`` deliveries are handed out at once, the oldest."""
    store.commit_cycle(CycleCommit(deliveries=[post(channel=f"C{i}") for i in range(5)]))
    assert [d.channel for d in store.pending_deliveries(T0, limit=2)] == ["C0", "C1"]


def test_failed_delivery_waits_for_next_try_at(store: StateStore) -> None:
    """A retryable failure hides the delivery until next_try_at and counts the attempt."""
    store.commit_cycle(CycleCommit(deliveries=[post(), post(channel="C2")]))
    first, _second = store.pending_deliveries(T0)
    retry_at = T0 + timedelta(seconds=30)
    store.delivery_failed(first.id, "ratelimited", retry_at)
    later = T0 + timedelta(minutes=5)  # past both the retry time and the claim of the second
    assert [d.channel for d in store.pending_deliveries(retry_at - timedelta(seconds=1))] == []
    [again, _] = store.pending_deliveries(later)
    assert (again.id, again.attempts, again.last_error) == (first.id, 1, "ratelimited")
    assert again.next_try_at == retry_at


def test_failed_delivery_without_next_try_is_dropped(store: StateStore) -> None:
    """A final failure (next_try_at None) removes the delivery."""
    store.commit_cycle(CycleCommit(deliveries=[post(), post(channel="C2")]))
    first, _ = store.pending_deliveries(T0)
    store.delivery_failed(first.id, "channel_not_found", None)
    assert store.count_pending() == 1
    assert [d.channel for d in store.pending_deliveries(T0 + timedelta(hours=1))] == ["C2"]


def test_count_pending_counts_due_and_waiting(store: StateStore) -> None:
    """count_pending includes deliveries that are not due yet."""
    assert store.count_pending() == 0
    store.commit_cycle(CycleCommit(deliveries=[post(), post(channel="C2")]))
    first, _ = store.pending_deliveries(T0)
    store.delivery_failed(first.id, "timeout", T0 + timedelta(days=1))
    assert store.count_pending() == 2


def test_claimed_delivery_is_handed_out_once_until_its_claim_ends(make_store: StoreFactory) -> None:
    """A claimed delivery is not handed out again until failed, done or its claim has ended."""
    store = make_store(claim_seconds=60)
    store.commit_cycle(CycleCommit(deliveries=[post()]))
    [claimed] = store.pending_deliveries(T0)
    assert store.pending_deliveries(T0 + timedelta(seconds=59)) == []
    assert [d.id for d in store.pending_deliveries(T0 + timedelta(seconds=61))] == [claimed.id]
    store.delivery_failed(claimed.id, "timeout", T0 + timedelta(seconds=62))
    assert [d.id for d in store.pending_deliveries(T0 + timedelta(seconds=62))] == [claimed.id]


def test_prune_forgets_old_finished_tasks_only(store: StateStore) -> None:
    """prune drops tasks finished before the cut-off and keeps newer and unfinished ones."""
    old = record("old", status="SUCCESS", finished_at=T0 - timedelta(days=31))
    recent = record("recent", status="FAILED", finished_at=T0 - timedelta(days=1))
    running = record("running", first_seen_at=T0 - timedelta(days=400))
    elsewhere = record(
        "x", instance_id=OTHER, status="SUCCESS", finished_at=T0 - timedelta(days=90)
    )
    store.commit_cycle(CycleCommit(tasks=[old, recent, running, elsewhere]))
    assert store.prune(T0 - timedelta(days=30)) == 2
    assert set(store.tasks_of(INSTANCE)) == {"recent", "running"}
    assert store.tasks_of(OTHER) == {}
    assert store.find_task("old") is None
    assert store.prune(T0 - timedelta(days=30)) == 0


def test_find_task_finds_any_instance_with_messages(store: StateStore) -> None:
    """find_task looks a task up by ID alone, messages included; unknown IDs give None."""
    store.commit_cycle(CycleCommit(tasks=[record("t9", instance_id=OTHER)], deliveries=[]))
    store.commit_cycle(CycleCommit(deliveries=[post("t9", instance_id=OTHER, channel="C7")]))
    [delivery] = store.pending_deliveries(T0)
    store.delivery_done(delivery.id, ts="9.9")
    found = store.find_task("t9")
    assert found is not None
    assert (found.instance_id, found.messages) == (OTHER, {"C7": "9.9"})
    assert store.find_task("nope") is None


def test_cursors_roundtrip_and_update(store: StateStore) -> None:
    """Cursors are stored by instance and replaced by a later commit."""
    first = InstanceCursor(INSTANCE, "cache-prod", baselined=False)
    store.commit_cycle(CycleCommit(cursors=[first]))
    assert store.cursors() == {INSTANCE: first}
    second = replace(first, baselined=True, last_polled_at=T0, last_error="DCS 500", watermark=T0)
    other = InstanceCursor(OTHER, None, baselined=True)
    store.commit_cycle(CycleCommit(cursors=[second, other]))
    assert store.cursors() == {INSTANCE: second, OTHER: other}


def test_subscriptions_add_replace_remove_and_list(store: StateStore) -> None:
    """Subscriptions are keyed by (channel, instance), listed sorted, per channel or all."""
    a = Subscription("C2", "*", statuses=("FAILED",), names=(), created_by="U1")
    b = Subscription("C1", "cache-prod")
    c = Subscription("C1", "*", names=("EXTEND", "BindEip"))
    for sub in (a, b, c):
        store.add_subscription(sub)
    assert store.subscriptions() == [c, b, a]
    assert store.subscriptions("C1") == [c, b]
    assert store.subscriptions("C3") == []

    replaced = replace(a, statuses=("FAILED", "SUCCESS"))
    store.add_subscription(replaced)
    assert store.subscriptions("C2") == [replaced]

    assert store.remove_subscription("C1", "*") is True
    assert store.remove_subscription("C1", "*") is False
    assert store.subscriptions() == [b, replaced]


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00+00:00",
        42,
        1.5,
        True,
        None,
        ["a", 1, None],
        {"nested": {"list": [1, 2], "text": "é ✓"}},
    ],
)
def test_meta_roundtrip(store: StateStore, value: Any) -> None:
    """Any JSON value stored under a key comes back equal."""
    store.set_meta("last_poll", value)
    assert store.get_meta("last_poll") == value


def test_meta_absent_is_none_and_commit_sets_it(store: StateStore) -> None:
    """An absent key reads None; commit_cycle's meta is stored like set_meta."""
    assert store.get_meta("missing") is None
    store.commit_cycle(CycleCommit(meta={"last_poll": "t", "last_error": None}))
    assert (store.get_meta("last_poll"), store.get_meta("last_error")) == ("t", None)


def test_failed_commit_leaves_nothing_of_the_cycle(store: StateStore) -> None:
    """A commit that fails midway (a value that is not JSON) stores none of its parts."""
    store.commit_cycle(CycleCommit(tasks=[record("kept")], meta={"last_poll": "before"}))
    bad = CycleCommit(
        tasks=[record("new"), record("kept", status="SUCCESS")],
        cursors=[InstanceCursor(INSTANCE, "cache-prod", baselined=True)],
        meta={"last_poll": "after"},
        deliveries=[post("new"), post("new", blocks=({"not json": {1, 2}},))],
    )
    with pytest.raises(StateError):
        store.commit_cycle(bad)
    assert set(store.tasks_of(INSTANCE)) == {"kept"}
    assert store.tasks_of(INSTANCE)["kept"].status == "EXECUTING"
    assert store.cursors() == {}
    assert store.get_meta("last_poll") == "before"
    assert store.count_pending() == 0
    store.commit_cycle(CycleCommit(deliveries=[post("kept")]))  # still usable afterwards
    assert store.count_pending() == 1


def test_reopen_after_close_keeps_everything(make_store: StoreFactory) -> None:
    """Closing and opening the same state again loses nothing and reuses no delivery ID."""
    first = make_store()
    first.commit_cycle(
        CycleCommit(
            tasks=[record()],
            cursors=[InstanceCursor(INSTANCE, "cache-prod", baselined=True)],
            deliveries=[post(), post(channel="C2")],
            meta={"last_poll": "x"},
        )
    )
    done, waiting = first.pending_deliveries(T0)
    first.delivery_done(done.id, ts="5.5")
    first.add_subscription(Subscription("C1", "*"))
    first.close()

    again = make_store()
    assert again.tasks_of(INSTANCE)["t1"].messages == {"C1": "5.5"}
    assert again.cursors()[INSTANCE].baselined is True
    assert again.get_meta("last_poll") == "x"
    assert again.subscriptions() == [Subscription("C1", "*")]
    assert [d.id for d in again.pending_deliveries(T0)] == [waiting.id]
    again.commit_cycle(CycleCommit(deliveries=[post(channel="C3")]))
    newest = again.pending_deliveries(T0 + timedelta(hours=1))[-1]
    assert newest.id > waiting.id


def test_acquire_poller_is_exclusive_between_stores(make_store: StoreFactory) -> None:
    """Only one store object is the poller; it can renew, and after release another can take it."""
    a, b = make_store(), make_store()
    assert a.acquire_poller("host-a") is True
    assert b.acquire_poller("host-b") is False
    assert a.acquire_poller("host-a") is True
    a.release_poller("host-a")
    assert b.acquire_poller("host-b") is True
    assert a.acquire_poller("host-a") is False


def test_close_releases_the_poller(make_store: StoreFactory) -> None:
    """Closing the poller's store lets another store become the poller."""
    a, b = make_store(), make_store()
    assert a.acquire_poller("host-a") is True
    a.close()
    assert b.acquire_poller("host-b") is True


def test_open_tasks_are_the_unfinished_ones_of_an_instance(store: StateStore) -> None:
    """open_tasks lists the unfinished tasks of the instances asked, forgetting finished ones."""
    running, done = record("t1"), record("t2", status="SUCCESS", finished_at=T0)
    elsewhere = record("t3", instance_id=OTHER)
    store.commit_cycle(CycleCommit(tasks=[running, done, elsewhere]))
    assert store.open_tasks([INSTANCE]) == {INSTANCE: {"t1": running}}
    assert {i: set(t) for i, t in store.open_tasks([INSTANCE, OTHER]).items()} == {
        INSTANCE: {"t1"},
        OTHER: {"t3"},
    }

    store.commit_cycle(CycleCommit(tasks=[replace(running, status="FAILED", finished_at=T0)]))
    assert store.open_tasks([INSTANCE]) == {}
    assert set(store.open_tasks([OTHER])[OTHER]) == {"t3"}
    assert store.open_tasks([]) == {}


def test_a_delivery_waits_behind_a_waiting_delivery_to_its_channel(store: StateStore) -> None:
    """While a channel's oldest delivery waits for its retry, later ones to that channel are
    not handed out (other channels are), so a restart cannot let an update overtake its post."""
    store.commit_cycle(CycleCommit(deliveries=[post("t1"), post("t2", channel="C2")]))
    first, _ = store.pending_deliveries(T0)
    retry_at = T0 + timedelta(seconds=30)
    store.delivery_failed(first.id, "http 503", retry_at)
    store.commit_cycle(CycleCommit(deliveries=[post("t1", kind="update"), post("t3", "C2")]))
    later = T0 + timedelta(minutes=5)  # every claim has ended

    assert [d.channel for d in store.pending_deliveries(retry_at - timedelta(seconds=1))] == []
    assert [(d.kind, d.channel) for d in store.pending_deliveries(later)] == [
        ("post", "C1"),
        ("post", "C2"),
        ("update", "C1"),
        ("post", "C2"),
    ]


def test_ping_answers_while_open_and_fails_once_closed(make_store: StoreFactory) -> None:
    """ping() returns quietly while the store works, and is a StateError once it is closed."""
    store = make_store()
    store.ping()
    store.ping(timeout=5)
    store.close()
    with pytest.raises(StateError):
        store.ping()


def take_over(first: AnyStore, make_store: StoreFactory, clock: FakeClock) -> AnyStore:
    """Another process takes the poller lease from ``first`` without ``first`` noticing: its
    PostgreSQL lease runs out during a long pause, or its SQLite lock file is deleted."""
    if isinstance(first, SqliteStore):
        (first.path.parent / f"{first.path.name}.lock").unlink()
    else:
        clock.advance(121)  # past the default 120 s lease
    second: AnyStore = make_store()
    assert second.acquire_poller("second") is True
    return second


def test_a_poller_that_lost_its_lease_cannot_commit_a_cycle(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    """Fencing: once another process took the lease, the old holder's commit_cycle raises
    LeaseLostError and writes nothing of the cycle; the new holder commits."""
    first: AnyStore = make_store()
    assert first.acquire_poller("first") is True
    first.commit_cycle(CycleCommit(tasks=[record("t0")]))
    second = take_over(first, make_store, clock)

    with pytest.raises(LeaseLostError):
        first.commit_cycle(
            CycleCommit(tasks=[record("t1")], deliveries=[post("t1")], meta={"k": 1})
        )

    assert set(second.tasks_of(INSTANCE)) == {"t0"}
    assert second.count_pending() == 0
    assert second.get_meta("k") is None
    second.commit_cycle(CycleCommit(tasks=[record("t2")], deliveries=[post("t2")]))
    assert set(second.tasks_of(INSTANCE)) == {"t0", "t2"}


def test_a_poller_that_lost_its_lease_cannot_claim_deliveries(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    """Fencing: the old holder's pending_deliveries raises LeaseLostError and claims nothing;
    the new holder gets every delivery."""
    first: AnyStore = make_store()
    assert first.acquire_poller("first") is True
    first.commit_cycle(CycleCommit(deliveries=[post("t1"), post("t2")]))
    second = take_over(first, make_store, clock)

    with pytest.raises(LeaseLostError):
        first.pending_deliveries(clock.now)

    assert [d.task_id for d in second.pending_deliveries(clock.now)] == ["t1", "t2"]


def test_the_old_holder_learns_it_lost_the_lease_and_stays_fenced(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    """Renewing a lease another process took fails, and the old holder stays fenced (even a
    write that never asked for the lease again is refused) until it takes the lease back."""
    first: AnyStore = make_store()
    assert first.acquire_poller("first") is True
    second = take_over(first, make_store, clock)

    assert first.acquire_poller("first") is False
    with pytest.raises(LeaseLostError):
        first.commit_cycle(CycleCommit(tasks=[record("t1")]))
    second.release_poller("second")
    assert first.acquire_poller("first") is True
    first.commit_cycle(CycleCommit(tasks=[record("t1")]))
    assert set(second.tasks_of(INSTANCE)) == {"t1"}


def test_a_store_that_never_took_the_lease_is_not_fenced(make_store: StoreFactory) -> None:
    """Tools and one-off commands that never poll commit without a lease."""
    tool: AnyStore = make_store()
    holder: AnyStore = make_store()
    assert holder.acquire_poller("poller") is True
    tool.commit_cycle(CycleCommit(tasks=[record("t1")], deliveries=[post("t1")]))
    assert tool.count_pending() == 1


def test_a_cycle_begun_under_a_lost_lease_stays_fenced_when_another_thread_retakes_it(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    """The token is the one the cycle's thread took: when the lease changed hands and a
    heartbeat on another thread took it back, the cycle that began before still writes nothing,
    until its own thread renews the lease."""
    first: AnyStore = make_store()
    assert first.acquire_poller("first") is True  # the cycle's thread
    second = take_over(first, make_store, clock)
    second.release_poller("second")
    retaken: list[bool] = []
    heartbeat = threading.Thread(
        target=lambda: retaken.append(
            first.acquire_poller("first") or first.acquire_poller("first")
        )
    )
    heartbeat.start()
    heartbeat.join()
    assert retaken == [True]

    with pytest.raises(LeaseLostError):
        first.commit_cycle(CycleCommit(tasks=[record("t1")]))
    assert first.acquire_poller("first") is True
    first.commit_cycle(CycleCommit(tasks=[record("t1")]))
    assert set(first.tasks_of(INSTANCE)) == {"t1"}
