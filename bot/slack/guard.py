"""A WSGI guard in front of Bolt on ``/slack/events``: hostile requests cost nothing.

Before Bolt sees a request, the guard refuses, with one log line and no traceback:
- no ``X-Slack-Signature``, or an ``X-Slack-Request-Timestamp`` that is not a number: 401;
- a body that is not UTF-8, or an interactivity ``payload`` that is not a JSON object: 400;
- a signature already seen within the 5-minute window (a replay): 401.
Bolt then checks the signature itself (bad or stale: 401). A signature is remembered while
its request is handled and kept only when Bolt did not refuse it, so made-up signatures never
fill the memory; it is forgotten when its timestamp leaves the window, and at most
``max_remembered`` are kept (the oldest go first).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

#: Slack's window: a request signed further than this from now is stale (Bolt refuses it).
WINDOW_SECONDS = 300


class SeenSignatures:
    """Signatures of requests within the window, bounded; thread-safe."""

    def __init__(
        self,
        *,
        window: float = WINDOW_SECONDS,
        max_remembered: int = 20_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._window = window
        self._max = max(1, max_remembered)
        self._clock = clock
        self._until: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)

    def claim(self, signature: str, timestamp: int) -> bool:
        """Remember ``signature``; False when it is already remembered (a replay)."""
        now = self._clock()
        with self._lock:
            self._forget_expired(now)
            if signature in self._until:
                return False
            self._until[signature] = max(now, timestamp + self._window)
            while len(self._until) > self._max:
                self._until.popitem(last=False)
            return True

    def release(self, signature: str) -> None:
        """Forget ``signature`` (its request was refused: it proved nothing)."""
        with self._lock:
            self._until.pop(signature, None)

    def _forget_expired(self, now: float) -> None:
        expired = [s for s, until in self._until.items() if until < now]
        for signature in expired:
            del self._until[signature]


def _refuse(
    start_response: StartResponse, status: str, reason: str, environ: WSGIEnvironment
) -> Iterable[bytes]:
    logger.warning(
        "refused %s %s from %s: %s",
        environ.get("REQUEST_METHOD", "?"),
        environ.get("PATH_INFO", "?"),
        environ.get("REMOTE_ADDR", "?"),
        reason,
    )
    body = json.dumps({"error": "invalid request"}).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _problem(environ: WSGIEnvironment, body: bytes) -> tuple[str, str] | None:
    """(HTTP status, reason) when the request is malformed; None when Bolt may see it."""
    signature = environ.get("HTTP_X_SLACK_SIGNATURE")
    timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or "")
    if not signature:
        return "401 Unauthorized", "no signature"
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return "401 Unauthorized", "the timestamp is not a number"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "400 Bad Request", "the body is not UTF-8"
    if "json" in str(environ.get("CONTENT_TYPE") or ""):
        return None
    payloads = parse_qs(text, keep_blank_values=True).get("payload")
    if payloads is not None:
        try:
            decoded = json.loads(payloads[0])
        except ValueError:
            return "400 Bad Request", "the payload is not JSON"
        if not isinstance(decoded, dict):
            return "400 Bad Request", "the payload is not a JSON object"
    return None


def guard_slack_events(
    app: WSGIApplication, *, seen: SeenSignatures | None = None
) -> WSGIApplication:
    """``app`` (Bolt's WSGI handler) behind the checks described in the module docstring."""
    remembered = seen if seen is not None else SeenSignatures()

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _refuse(start_response, "400 Bad Request", "bad Content-Length", environ)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        problem = _problem(environ, body)
        if problem is not None:
            return _refuse(start_response, *problem, environ)
        signature = str(environ["HTTP_X_SLACK_SIGNATURE"])
        timestamp = int(environ["HTTP_X_SLACK_REQUEST_TIMESTAMP"])
        if not remembered.claim(signature, timestamp):
            return _refuse(start_response, "401 Unauthorized", "a replayed request", environ)
        environ["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []

        def noting(status_line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(status_line)
            return start_response(status_line, headers, exc_info)

        try:
            answer = app(environ, noting)
        except Exception as exc:
            remembered.release(signature)
            if status:
                raise
            reason = f"unexpected {type(exc).__name__} while handling it"
            return _refuse(start_response, "400 Bad Request", reason, environ)
        if status and status[0].startswith("401"):
            remembered.release(signature)
        return answer

    return guarded
