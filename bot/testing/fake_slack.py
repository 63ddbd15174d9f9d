"""A fake Slack Web API on a real loopback HTTP server, for tests, the demo and benchmarks.

``slack_sdk.WebClient(base_url=fake.url)`` and slack-bolt talk to it as to Slack: it answers
``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral`` and
``conversations.info``, keeps the messages of each channel, records every call it received
(including the ones it failed), and accepts POSTs to the ``response_url`` addresses it hands out.

Channels and messages: ``refuse_channel`` makes every call to a chosen channel answer
``channel_not_found``, ``not_in_channel`` or ``is_archived`` (as Slack does for a deleted channel,
one the bot was never invited to, or an archived one); ``delete_message`` removes a message, so
editing it answers ``message_not_found`` and replying in its thread ``thread_not_found``.

Faults: ``fail_next`` makes the next calls of a method fail (an ``ok: false`` error, HTTP 429 with
``Retry-After``, HTTP 5xx, or a dropped connection); ``outage(True)`` makes every Web API call
answer HTTP 503 ``{"ok": false, "error": "service_unavailable"}`` (an answer, not a dropped
connection, so clients see a server error without waiting for timeouts); ``RateLimit`` applies
a per-channel token bucket to ``chat.postMessage``/``chat.update`` as Slack does.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bot.testing.loopback import LoopbackHTTPServer, Serving

__all__ = ["FakeMessage", "FakeSlack", "RateLimit", "SlackCall"]

_API_PREFIX = "/api/"
_RESPONSE_URL_PREFIX = "/response_url/"
_RATE_LIMITED_METHODS = frozenset({"chat.postMessage", "chat.update"})
_MAX_TEXT = 40_000
_CHANNEL_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
_MAX_BLOCKS = 50
_FIRST_TS = 1_700_000_000 * 1_000_000  # ts in microseconds: "1700000000.000100" and up

AUTH = {
    "url": "https://fake-workspace.slack.com/",
    "team": "Fake Workspace",
    "user": "dcs-tasks-bot",
    "team_id": "T0FAKETEAM",
    "user_id": "U0FAKEBOT",
    "bot_id": "B0FAKEBOT",
    "is_enterprise_install": False,
}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket per channel: ``burst`` calls at once, refilled at ``per_second``."""

    per_second: float = 1.0
    burst: int = 3


@dataclass(frozen=True, slots=True)
class SlackCall:
    """One Web API call as the fake received it: form, JSON and query parameters merged."""

    method: str
    params: Mapping[str, Any]
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class FakeMessage:
    """A message as it now stands in a channel of the fake."""

    ts: str
    text: str | None
    blocks: list[Any] | None = None
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edited: bool = False


@dataclass(frozen=True, slots=True)
class _Fault:
    error: str | None
    status: int
    retry_after: int | None
    disconnect: bool


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int = 200
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    disconnect: bool = False


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.lower() in {"1", "true", "yes"}
    return bool(value)


def _json_field(value: object) -> Any:
    """Form bodies carry ``blocks`` as a JSON string; JSON bodies as a list."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FakeSlack:
    """The fake Slack Web API. Use as a context manager, or ``start()`` and ``stop()``."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test",  # noqa: S107 - the fake's own made-up token
        clock: Callable[[], float] = time.monotonic,
        rate_limit: RateLimit | None = None,
        known_channels: set[str] | None = None,
        app_token: str | None = None,
    ) -> None:
        """``known_channels``: other channels answer ``channel_not_found`` (None: all exist).
        ``app_token``: the app-level token ``apps.connections.open`` accepts; it answers with
        :attr:`socket_mode_url` (a ``ws://`` URL of a test's Socket Mode server)."""
        self._token = token
        self._app_token = app_token
        self.socket_mode_url: str | None = None
        self._clock = clock
        self._rate_limit = rate_limit
        self._known_channels = None if known_channels is None else set(known_channels)
        self._lock = threading.Lock()
        self._calls: list[SlackCall] = []
        self._messages: dict[str, list[FakeMessage]] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._outage = False
        self._refused: dict[str, str] = {}
        self._ts = itertools.count(_FIRST_TS + 100, 100)
        self._response_ids = itertools.count(1)
        self._response_posts: list[tuple[str, dict[str, Any]]] = []
        self._serving: Serving | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free loopback port; return the Web API base URL (ends with ``/api/``)."""
        if self._serving is not None:
            return self.url
        server = LoopbackHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._serving = Serving(server, name="fake-slack")
        self.url = f"{self.root}{_API_PREFIX.lstrip('/')}"
        return self.url

    @property
    def root(self) -> str:
        """``http://127.0.0.1:PORT/`` of the running server."""
        if self._serving is None:
            raise RuntimeError("FakeSlack is not started")
        return f"{self._serving.url}/"

    def stop(self) -> None:
        """Stop serving and free the port."""
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop()

    def __enter__(self) -> FakeSlack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what happened ---------------------------------------------------------------------

    @property
    def calls(self) -> list[SlackCall]:
        """Every Web API call received so far, in order (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        """The calls received for one method, e.g. ``chat.postMessage``."""
        return [c for c in self.calls if c.method == method]

    def messages(self, channel: str) -> list[FakeMessage]:
        """The messages of a channel as they now stand (thread replies included), oldest first."""
        with self._lock:
            return list(self._messages.get(channel, ()))

    def response_url(self) -> str:
        """A fresh ``response_url``; what is POSTed to it lands in ``response_urls``."""
        return f"{self.root}{_RESPONSE_URL_PREFIX.lstrip('/')}{next(self._response_ids)}"

    @property
    def response_urls(self) -> list[dict[str, Any]]:
        """The JSON payloads POSTed to any ``response_url``, in order."""
        with self._lock:
            return [payload for _, payload in self._response_posts]

    def responses_to(self, url: str) -> list[dict[str, Any]]:
        """The JSON payloads POSTed to one ``response_url``."""
        path = urlsplit(url).path
        with self._lock:
            return [payload for p, payload in self._response_posts if p == path]

    # -- faults ----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        retry_after: int | None = None,
        count: int = 1,
        disconnect: bool = False,
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail, without acting on them.

        ``status=200`` with ``error``: ``{"ok": false, "error": error}``. ``status=429``: rate
        limited with ``Retry-After: retry_after`` (default 1). ``status>=500``: that status with
        ``{"ok": false, "error": error or "internal_error"}``. ``disconnect``: close the
        connection without any answer.
        """
        if status == 200 and error is None and not disconnect:
            raise ValueError("fail_next needs an error, a failing status or disconnect=True")
        fault = _Fault(error=error, status=status, retry_after=retry_after, disconnect=disconnect)
        with self._lock:
            self._faults.setdefault(method, deque()).extend([fault] * count)

    def refuse_channel(self, channel: str, error: str | None = "not_in_channel") -> None:
        """Every later call to ``channel`` answers ``error`` (``channel_not_found``,
        ``not_in_channel`` or ``is_archived``); ``None`` accepts the channel again."""
        if error is not None and error not in _CHANNEL_ERRORS:
            raise ValueError(f"refuse_channel takes one of {sorted(_CHANNEL_ERRORS)}")
        with self._lock:
            if error is None:
                self._refused.pop(channel, None)
            else:
                self._refused[channel] = error

    def delete_message(self, channel: str, ts: str) -> None:
        """Delete a message (as a user can): editing it or replying to it fails from now on."""
        with self._lock:
            index = self._find(channel, ts)
            if index is None:
                raise KeyError(f"no message {ts} in {channel}")
            del self._messages[channel][index]

    def outage(self, on: bool) -> None:
        """While on, every Web API call answers HTTP 503 (``service_unavailable``)."""
        with self._lock:
            self._outage = on

    # -- the API ---------------------------------------------------------------------------

    def _handle(self, method: str, params: dict[str, Any], token: str | None) -> _Answer:
        with self._lock:
            self._calls.append(SlackCall(method=method, params=params, token=token))
            if self._outage:
                return _Answer(503, {"ok": False, "error": "service_unavailable"})
            faults = self._faults.get(method)
            if faults:
                return self._fault_answer(faults.popleft())
            if not token:
                return _Answer(body={"ok": False, "error": "not_authed"})
            if method == "apps.connections.open":
                return self._connections_open(token)
            if token != self._token:
                return _Answer(body={"ok": False, "error": "invalid_auth"})
            handler = _METHODS.get(method)
            if handler is None:
                return _Answer(404, {"ok": False, "error": "unknown_method"})
            channel = params.get("channel")
            if method != "auth.test":
                if not isinstance(channel, str) or not channel:
                    return _Answer(body={"ok": False, "error": "channel_not_found"})
                if self._known_channels is not None and channel not in self._known_channels:
                    return _Answer(body={"ok": False, "error": "channel_not_found"})
                refused = self._refused.get(channel)
                if refused is not None and not (
                    method == "conversations.info" and refused != "channel_not_found"
                ):
                    return _Answer(body={"ok": False, "error": refused})
                if method in _RATE_LIMITED_METHODS:
                    wait = self._take_token(channel)
                    if wait is not None:
                        return _Answer(
                            429,
                            {"ok": False, "error": "ratelimited"},
                            {"Retry-After": str(wait)},
                        )
            return handler(self, params)

    def _connections_open(self, token: str) -> _Answer:
        if self._app_token is None or token != self._app_token:
            return _Answer(body={"ok": False, "error": "invalid_auth"})
        if not self.socket_mode_url:
            return _Answer(body={"ok": False, "error": "internal_error"})
        return _Answer(body={"ok": True, "url": self.socket_mode_url})

    @staticmethod
    def _fault_answer(fault: _Fault) -> _Answer:
        if fault.disconnect:
            return _Answer(disconnect=True)
        if fault.status == 429:
            return _Answer(
                429,
                {"ok": False, "error": fault.error or "ratelimited"},
                {"Retry-After": str(fault.retry_after or 1)},
            )
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        return _Answer(
            fault.status, {"ok": False, "error": fault.error or "internal_error"}, headers
        )

    def _take_token(self, channel: str) -> int | None:
        """Spend one token of the channel's bucket; when empty, the whole seconds to wait."""
        limit = self._rate_limit
        if limit is None:
            return None
        now = self._clock()
        bucket = self._buckets.setdefault(channel, _Bucket(float(limit.burst), now))
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / limit.per_second))

    def _next_ts(self) -> str:
        micros = next(self._ts)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _find(self, channel: str, ts: str) -> int | None:
        for i, message in enumerate(self._messages.get(channel, ())):
            if message.ts == ts:
                return i
        return None

    def _auth_test(self, params: dict[str, Any]) -> _Answer:
        return _Answer(body={"ok": True, **AUTH})

    def _post_message(self, params: dict[str, Any]) -> _Answer:
        channel = str(params["channel"])
        text, blocks = params.get("text"), _json_field(params.get("blocks"))
        problem = _check_content(text, blocks)
        if problem:
            return _Answer(body={"ok": False, "error": problem})
        thread_ts = params.get("thread_ts") or None
        if thread_ts is not None and self._find(channel, str(thread_ts)) is None:
            return _Answer(body={"ok": False, "error": "thread_not_found"})
        message = FakeMessage(
            ts=self._next_ts(),
            text=None if text is None else str(text),
            blocks=blocks,
            thread_ts=None if thread_ts is None else str(thread_ts),
            reply_broadcast=thread_ts is not None and _truthy(params.get("reply_broadcast")),
        )
        self._messages.setdefault(channel, []).append(message)
        return _Answer(
            body={"ok": True, "channel": channel, "ts": message.ts, "message": _as_json(message)}
        )

    def _update(self, params: dict[str, Any]) -> _Answer:
        channel, ts = str(params["channel"]), str(params.get("ts") or "")
        index = self._find(channel, ts)
        if index is None:
            return _Answer(body={"ok": False, "error": "message_not_found"})
        old = self._messages[channel][index]
        text = params.get("text", old.text)
        blocks = _json_field(params["blocks"]) if "blocks" in params else old.blocks
        problem = _check_content(text, blocks)
        if problem:
            return _Answer(body={"ok": False, "error": problem})
        new = replace(old, text=None if text is None else str(text), blocks=blocks, edited=True)
        self._messages[channel][index] = new
        return _Answer(
            body={
                "ok": True,
                "channel": channel,
                "ts": ts,
                "text": new.text,
                "message": _as_json(new),
            }
        )

    def _post_ephemeral(self, params: dict[str, Any]) -> _Answer:
        problem = _check_content(params.get("text"), _json_field(params.get("blocks")))
        if problem:
            return _Answer(body={"ok": False, "error": problem})
        if not params.get("user"):
            return _Answer(body={"ok": False, "error": "user_not_in_channel"})
        return _Answer(body={"ok": True, "message_ts": self._next_ts()})

    def _conversations_info(self, params: dict[str, Any]) -> _Answer:
        channel = str(params["channel"])
        return _Answer(
            body={
                "ok": True,
                "channel": {
                    "id": channel,
                    "name": channel.lower(),
                    "is_channel": True,
                    "is_member": self._refused.get(channel) != "not_in_channel",
                    "is_archived": self._refused.get(channel) == "is_archived",
                },
            }
        )

    def _record_response(self, path: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._response_posts.append((path, payload))


_METHODS: dict[str, Callable[[FakeSlack, dict[str, Any]], _Answer]] = {
    "auth.test": FakeSlack._auth_test,
    "chat.postMessage": FakeSlack._post_message,
    "chat.update": FakeSlack._update,
    "chat.postEphemeral": FakeSlack._post_ephemeral,
    "conversations.info": FakeSlack._conversations_info,
}


def _check_content(text: object, blocks: object) -> str | None:
    if not text and not blocks:
        return "no_text"
    if isinstance(text, str) and len(text) > _MAX_TEXT:
        return "msg_too_long"
    if blocks is not None and (not isinstance(blocks, list) or len(blocks) > _MAX_BLOCKS):
        return "invalid_blocks"
    return None


def _as_json(message: FakeMessage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "message",
        "ts": message.ts,
        "text": message.text or "",
        "user": AUTH["user_id"],
        "bot_id": AUTH["bot_id"],
    }
    if message.blocks is not None:
        out["blocks"] = message.blocks
    if message.thread_ts is not None:
        out["thread_ts"] = message.thread_ts
    if message.edited:
        out["edited"] = {"user": AUTH["user_id"], "ts": message.ts}
    return out


def _handler_for(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeSlack/1"

        def do_POST(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read what happened from the fake, not from stderr."""

        def _serve(self) -> None:
            url = urlsplit(self.path)
            body = self._read_body()
            if url.path.startswith(_RESPONSE_URL_PREFIX) and self.command == "POST":
                payload = _json_field(body.decode("utf-8", "replace"))
                fake._record_response(
                    url.path, payload if isinstance(payload, dict) else {"body": payload}
                )
                self._send_raw(200, b"ok", "text/plain")
                return
            if not url.path.startswith(_API_PREFIX):
                self._send_raw(404, b"not found", "text/plain")
                return
            params, token = self._params(url.query, body)
            answer = fake._handle(url.path[len(_API_PREFIX) :], params, token)
            if answer.disconnect:
                self.close_connection = True
                self.connection.close()
                return
            data = json.dumps(answer.body or {}).encode()
            self._send_raw(answer.status, data, "application/json; charset=utf-8", answer.headers)

        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _params(self, query: str, body: bytes) -> tuple[dict[str, Any], str | None]:
            params: dict[str, Any] = dict(parse_qsl(query))
            content_type = self.headers.get_content_type()
            if content_type == "application/json" and body:
                decoded = json.loads(body)
                if isinstance(decoded, dict):
                    params.update(decoded)
            elif body:
                params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            token = params.pop("token", None)
            auth = self.headers.get("Authorization") or ""
            if auth.startswith("Bearer "):
                token = auth[len("Bearer ") :]
            return params, None if token is None else str(token)

        def _send_raw(
            self,
            status: int,
            data: bytes,
            content_type: str,
            headers: Mapping[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler
