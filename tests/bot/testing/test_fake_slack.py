"""The fake Slack Web API, driven over loopback HTTP by the real slack_sdk client and Bolt."""

from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, FixedValueRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from bot.testing.fake_slack import FakeMessage, FakeSlack, RateLimit

TOKEN = "xoxb-fake-token-1234"


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as server:
        yield server


def client(fake: FakeSlack, token: str = TOKEN) -> WebClient:
    return WebClient(token=token, base_url=fake.url, retry_handlers=[])


def error_of(call: Any) -> tuple[int, str, dict[str, Any]]:
    """Run a failing call; return (HTTP status, Slack error, headers)."""
    with pytest.raises(SlackApiError) as info:
        call()
    response = info.value.response
    return response.status_code, response["error"], dict(response.headers)


def test_start_returns_an_api_base_url_on_loopback(fake: FakeSlack) -> None:
    """The base URL is a loopback address ending in /api/, as WebClient's base_url expects."""
    assert fake.url.startswith("http://127.0.0.1:")
    assert fake.url.endswith("/api/")
    assert fake.start() == fake.url


def test_auth_test_identifies_the_bot(fake: FakeSlack) -> None:
    """auth.test answers ok with the team, user and bot IDs Bolt reads."""
    data = client(fake).auth_test().data
    assert isinstance(data, dict)
    assert data["ok"] is True
    assert {"team_id", "user_id", "bot_id", "url"} <= data.keys()


@pytest.mark.parametrize(
    ("token", "error"),
    [("xoxb-wrong", "invalid_auth"), ("", "not_authed")],
)
def test_a_wrong_or_missing_token_is_refused(fake: FakeSlack, token: str, error: str) -> None:
    """Calls with another token get invalid_auth, calls without one not_authed."""
    assert error_of(lambda: client(fake, token).chat_postMessage(channel="C1", text="x"))[1] == (
        error
    )
    assert fake.messages("C1") == []


def test_bolt_app_verifies_its_token_against_the_fake(fake: FakeSlack) -> None:
    """A Bolt App constructed on the fake passes its auth.test token verification."""
    App(client=client(fake), signing_secret="secret")
    assert [c.method for c in fake.calls] == ["auth.test"]
    assert fake.calls[0].token == TOKEN


def test_post_message_keeps_text_blocks_and_returns_increasing_ts(fake: FakeSlack) -> None:
    """Each post gets a new, increasing Slack-style ts and is stored with its text and blocks."""
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    first = client(fake).chat_postMessage(channel="C1", text="one", blocks=blocks)
    second = client(fake).chat_postMessage(channel="C1", text="two")
    assert first["channel"] == "C1"
    assert first["ts"] == "1700000000.000100"
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["text"] == "one"
    assert fake.messages("C1") == [
        FakeMessage(ts=first["ts"], text="one", blocks=blocks),
        FakeMessage(ts=second["ts"], text="two"),
    ]


def test_update_edits_the_message_in_place(fake: FakeSlack) -> None:
    """chat.update changes text and blocks of the message with that ts and marks it edited."""
    ts = client(fake).chat_postMessage(channel="C1", text="old")["ts"]
    new_blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "new"}}]
    answer = client(fake).chat_update(channel="C1", ts=ts, text="new", blocks=new_blocks)
    assert answer["ts"] == ts
    assert fake.messages("C1") == [FakeMessage(ts=ts, text="new", blocks=new_blocks, edited=True)]


@pytest.mark.parametrize(("channel", "ts"), [("C1", "1.000000"), ("C2", None)])
def test_update_of_an_unknown_message_is_message_not_found(
    fake: FakeSlack, channel: str, ts: str | None
) -> None:
    """chat.update needs an existing channel and ts."""
    posted = client(fake).chat_postMessage(channel="C1", text="x")["ts"]
    call = lambda: client(fake).chat_update(channel=channel, ts=ts or posted, text="y")  # noqa: E731
    assert error_of(call)[:2] == (200, "message_not_found")
    assert fake.messages("C1")[0].text == "x"


def test_thread_replies_and_broadcasts_are_recorded(fake: FakeSlack) -> None:
    """A reply carries its thread_ts, and reply_broadcast only counts inside a thread."""
    parent = client(fake).chat_postMessage(channel="C1", text="alert")["ts"]
    client(fake).chat_postMessage(channel="C1", text="quiet", thread_ts=parent)
    client(fake).chat_postMessage(channel="C1", text="loud", thread_ts=parent, reply_broadcast=True)
    replies = [m for m in fake.messages("C1") if m.thread_ts == parent]
    assert [(m.text, m.reply_broadcast) for m in replies] == [("quiet", False), ("loud", True)]


def test_a_reply_to_an_unknown_thread_is_refused(fake: FakeSlack) -> None:
    """Replying under a ts that is not in the channel answers thread_not_found."""
    call = lambda: client(fake).chat_postMessage(channel="C1", text="r", thread_ts="9.9")  # noqa: E731
    assert error_of(call)[1] == "thread_not_found"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, "no_text"),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({"text": "x", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
    ],
)
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_invalid_content_is_refused(fake: FakeSlack, kwargs: dict[str, Any], error: str) -> None:
    """Empty, too long or too many blocks get Slack's error codes and post nothing."""
    assert error_of(lambda: client(fake).chat_postMessage(channel="C1", **kwargs))[1] == error
    assert fake.messages("C1") == []


def test_unknown_channels_answer_channel_not_found() -> None:
    """With known_channels set, any other channel answers channel_not_found."""
    with FakeSlack(token=TOKEN, known_channels={"C1"}) as fake:
        client(fake).chat_postMessage(channel="C1", text="x")
        call = lambda: client(fake).chat_postMessage(channel="C404", text="x")  # noqa: E731
        assert error_of(call)[:2] == (200, "channel_not_found")
        info = lambda: client(fake).conversations_info(channel="C404")  # noqa: E731
        assert error_of(info)[1] == "channel_not_found"
        assert client(fake).conversations_info(channel="C1")["channel"]["id"] == "C1"


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
def test_a_refused_channel_answers_its_error_to_posts_and_edits(
    fake: FakeSlack, error: str
) -> None:
    """refuse_channel: posts and edits in that channel fail with the chosen error; others work."""
    ts = client(fake).chat_postMessage(channel="C1", text="x")["ts"]
    fake.refuse_channel("C1", error)
    post = lambda: client(fake).chat_postMessage(channel="C1", text="y")  # noqa: E731
    edit = lambda: client(fake).chat_update(channel="C1", ts=ts, text="z")  # noqa: E731
    assert error_of(post)[:2] == (200, error)
    assert error_of(edit)[:2] == (200, error)
    assert client(fake).chat_postMessage(channel="C2", text="y")["ok"] is True
    assert [m.text for m in fake.messages("C1")] == ["x"]

    fake.refuse_channel("C1", None)
    assert client(fake).chat_postMessage(channel="C1", text="y")["ok"] is True


def test_conversations_info_tells_membership_and_archiving(fake: FakeSlack) -> None:
    """conversations.info says is_member false when not invited, is_archived when archived."""
    fake.refuse_channel("C1", "not_in_channel")
    fake.refuse_channel("C2", "is_archived")
    fake.refuse_channel("C3", "channel_not_found")
    one = client(fake).conversations_info(channel="C1")["channel"]
    two = client(fake).conversations_info(channel="C2")["channel"]
    assert (one["is_member"], one["is_archived"]) == (False, False)
    assert (two["is_member"], two["is_archived"]) == (True, True)
    info = lambda: client(fake).conversations_info(channel="C3")  # noqa: E731
    assert error_of(info)[1] == "channel_not_found"


def test_refuse_channel_takes_only_channel_errors(fake: FakeSlack) -> None:
    """refuse_channel refuses an error Slack does not give for a channel."""
    with pytest.raises(ValueError, match="refuse_channel takes one of"):
        fake.refuse_channel("C1", "internal_error")


def test_a_deleted_message_cannot_be_edited_or_replied_to(fake: FakeSlack) -> None:
    """delete_message: chat.update answers message_not_found, a reply thread_not_found."""
    ts = client(fake).chat_postMessage(channel="C1", text="alert")["ts"]
    kept = client(fake).chat_postMessage(channel="C1", text="other")["ts"]
    fake.delete_message("C1", ts)
    edit = lambda: client(fake).chat_update(channel="C1", ts=ts, text="z")  # noqa: E731
    reply = lambda: client(fake).chat_postMessage(channel="C1", text="r", thread_ts=ts)  # noqa: E731
    assert error_of(edit)[1] == "message_not_found"
    assert error_of(reply)[1] == "thread_not_found"
    assert [m.ts for m in fake.messages("C1")] == [kept]
    with pytest.raises(KeyError):
        fake.delete_message("C1", ts)


def test_post_ephemeral_answers_a_message_ts(fake: FakeSlack) -> None:
    """chat.postEphemeral is accepted and recorded, without becoming a channel message."""
    answer = client(fake).chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert answer["message_ts"]
    assert fake.calls_to("chat.postEphemeral")[0].params["user"] == "U1"
    assert fake.messages("C1") == []


def test_unknown_methods_answer_unknown_method(fake: FakeSlack) -> None:
    """A method the fake does not play answers unknown_method."""
    assert error_of(lambda: client(fake).api_call("users.list"))[1] == "unknown_method"


@pytest.mark.parametrize(
    ("kwargs", "status", "error", "retry_after"),
    [
        ({"error": "channel_not_found"}, 200, "channel_not_found", None),
        ({"status": 429, "retry_after": 7}, 429, "ratelimited", "7"),
        ({"status": 429}, 429, "ratelimited", "1"),
        ({"status": 500}, 500, "internal_error", None),
        ({"status": 503, "error": "service_unavailable"}, 503, "service_unavailable", None),
    ],
)
def test_fail_next_answers_the_requested_failure(
    fake: FakeSlack, kwargs: dict[str, Any], status: int, error: str, retry_after: str | None
) -> None:
    """fail_next answers its status and error once, without posting, then the method works."""
    fake.fail_next("chat.postMessage", **kwargs)
    got_status, got_error, headers = error_of(
        lambda: client(fake).chat_postMessage(channel="C1", text="x")
    )
    assert (got_status, got_error, headers.get("Retry-After")) == (status, error, retry_after)
    assert fake.messages("C1") == []
    client(fake).chat_postMessage(channel="C1", text="x")
    assert len(fake.messages("C1")) == 1
    assert len(fake.calls_to("chat.postMessage")) == 2


def test_fail_next_count_and_method_are_respected(fake: FakeSlack) -> None:
    """count failures are used up by that method only, in order."""
    fake.fail_next("chat.update", error="internal_error", count=2)
    client(fake).chat_postMessage(channel="C1", text="unaffected")
    ts = fake.messages("C1")[0].ts
    for _ in range(2):
        assert error_of(lambda: client(fake).chat_update(channel="C1", ts=ts, text="y"))[1] == (
            "internal_error"
        )
    client(fake).chat_update(channel="C1", ts=ts, text="y")
    assert fake.messages("C1")[0].text == "y"


def test_fail_next_needs_a_failure() -> None:
    """fail_next without an error, a failing status or a disconnect is a mistake."""
    with pytest.raises(ValueError, match="needs an error"):
        FakeSlack().fail_next("chat.postMessage")


def test_disconnect_drops_the_connection_without_acting(fake: FakeSlack) -> None:
    """A disconnect fault closes the connection with no answer and posts nothing."""
    fake.fail_next("chat.postMessage", disconnect=True)
    with pytest.raises(http.client.RemoteDisconnected):
        client(fake).chat_postMessage(channel="C1", text="x")
    assert fake.messages("C1") == []


def test_slack_sdk_connection_retry_handler_recovers_from_a_disconnect(fake: FakeSlack) -> None:
    """slack_sdk's ConnectionErrorRetryHandler retries a dropped connection and succeeds."""
    fake.fail_next("chat.postMessage", disconnect=True)
    retrying = WebClient(
        token=TOKEN,
        base_url=fake.url,
        retry_handlers=[
            ConnectionErrorRetryHandler(interval_calculator=FixedValueRetryIntervalCalculator(0))
        ],
    )
    retrying.chat_postMessage(channel="C1", text="x")
    assert len(fake.calls_to("chat.postMessage")) == 2
    assert len(fake.messages("C1")) == 1


def test_outage_answers_503_to_everything_until_it_ends(fake: FakeSlack) -> None:
    """During an outage every method answers 503 service_unavailable; afterwards all works."""
    fake.outage(True)
    assert error_of(lambda: client(fake).auth_test())[:2] == (503, "service_unavailable")
    assert error_of(lambda: client(fake).chat_postMessage(channel="C1", text="x"))[0] == 503
    fake.outage(False)
    client(fake).chat_postMessage(channel="C1", text="x")
    assert [m.text for m in fake.messages("C1")] == ["x"]


def test_rate_limit_is_a_token_bucket_per_channel() -> None:
    """Past the burst a channel gets 429 with Retry-After; time refills it; channels are apart."""
    clock = Clock()
    with FakeSlack(token=TOKEN, clock=clock, rate_limit=RateLimit(per_second=0.5, burst=2)) as fake:
        web = client(fake)
        web.chat_postMessage(channel="C1", text="1")
        web.chat_postMessage(channel="C1", text="2")
        status, error, headers = error_of(lambda: web.chat_postMessage(channel="C1", text="3"))
        assert (status, error, headers["Retry-After"]) == (429, "ratelimited", "2")
        web.chat_postMessage(channel="C2", text="other channel")
        web.auth_test()  # not a rate-limited method
        clock.now += 2.0
        web.chat_postMessage(channel="C1", text="3")
        assert [m.text for m in fake.messages("C1")] == ["1", "2", "3"]


def test_rate_limit_retry_after_is_a_whole_second_at_least() -> None:
    """Retry-After is an integer of at least 1 even when the bucket refills sooner."""
    clock = Clock()
    with FakeSlack(token=TOKEN, clock=clock, rate_limit=RateLimit(per_second=10, burst=1)) as fake:
        client(fake).chat_postMessage(channel="C1", text="1")
        headers = error_of(lambda: client(fake).chat_postMessage(channel="C1", text="2"))[2]
        assert headers["Retry-After"] == "1"


def test_form_encoded_calls_are_recorded_with_the_token_apart(fake: FakeSlack) -> None:
    """Form bodies are parsed (blocks from JSON text), and the token is kept out of params."""
    blocks = [{"type": "divider"}]
    body = f"channel=C1&text=hi&blocks={json.dumps(blocks)}&token={TOKEN}".encode()
    request = urllib.request.Request(
        fake.url + "chat.postMessage",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request) as answer:
        assert json.load(answer)["ok"] is True
    (call,) = fake.calls
    assert call.method == "chat.postMessage"
    assert "token" not in call.params
    assert call.token == TOKEN
    assert TOKEN not in repr(call)
    assert fake.messages("C1")[0].blocks == blocks


def test_response_urls_record_what_is_posted_to_them(fake: FakeSlack) -> None:
    """Each response_url is fresh and records the JSON payloads POSTed to it."""
    first, second = fake.response_url(), fake.response_url()
    assert first != second
    WebhookClient(first).send(text="one", response_type="ephemeral")
    WebhookClient(second).send(text="two")
    assert [p["text"] for p in fake.response_urls] == ["one", "two"]
    assert fake.responses_to(first) == [{"text": "one", "response_type": "ephemeral"}]
    assert fake.calls == []


def test_stop_frees_the_port() -> None:
    """After stop, the server no longer answers."""
    fake = FakeSlack(token=TOKEN)
    url = fake.start()
    fake.stop()
    with pytest.raises(OSError, match="refused"):
        urllib.request.urlopen(url + "auth.test", data=b"", timeout=5)
