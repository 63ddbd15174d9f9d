"""What one Slack call came to, and what delivery does about it: every rule in one place.

- ``ok``: done; remember the message's ``ts`` when it was a new one.
- ``retry``: network errors, HTTP 5xx and 408, rate limits (HTTP 429 or ``ratelimited``, with
  ``Retry-After``) and Slack's transient errors: try again later.
- ``fallback``: the task's message or thread is gone (deleted, too old to edit, archived while an
  edit was due): post the change as a new message instead, which later changes then edit.
- ``final``: anything else; the delivery is dropped and logged. ``CHANNEL_ERRORS`` among them say
  the channel itself can no longer be posted to (reported in ``/dcs-tasks status`` and health).
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

__all__ = [
    "CHANNEL_ERRORS",
    "FINAL_ERRORS",
    "LOST_MESSAGE_ERRORS",
    "RETRYABLE_ERRORS",
    "Action",
    "Outcome",
    "classify",
    "redact",
]

#: How a delivery lands in Slack: a new message, an edit of the task's message, or a thread reply.
Action = Literal["post", "edit", "reply"]

#: ``ok: false`` errors that say "try again later".
RETRYABLE_ERRORS = frozenset(
    {
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "ratelimited",
        "rate_limited",
    }
)

#: Final errors that say the bot cannot post in the channel at all (not invited, gone, archived).
CHANNEL_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})

#: ``ok: false`` errors that will not go away by retrying (any other unknown error is final too).
FINAL_ERRORS = CHANNEL_ERRORS | frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "restricted_action",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "thread_not_found",
        "unknown_method",
    }
)

#: Per action, the errors that mean "the task's message is gone": post the change anew.
LOST_MESSAGE_ERRORS: Mapping[Action, frozenset[str]] = {
    "post": frozenset(),
    "edit": frozenset(
        {"message_not_found", "cant_update_message", "edit_window_closed", "is_archived"}
    ),
    "reply": frozenset({"thread_not_found", "message_not_found"}),
}

_RATE_LIMITED = frozenset({"ratelimited", "rate_limited"})
_TOKEN = re.compile(r"xox[a-zA-Z]-[A-Za-z0-9-]+")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one Slack call came to, and why: ``ok``, ``retry`` later, ``fallback`` to a new
    message, or ``final`` (drop)."""

    kind: Literal["ok", "retry", "fallback", "final"]
    reason: str
    retry_after: float | None = None

    @property
    def channel_failing(self) -> bool:
        """True when the channel itself cannot be posted to (final, one of ``CHANNEL_ERRORS``)."""
        return self.kind == "final" and self.reason in CHANNEL_ERRORS


def redact(text: str) -> str:
    """``text`` without Slack tokens, at most 200 characters."""
    return _TOKEN.sub("[redacted]", text)[:200]


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # URLError wraps the socket error
    detail = reason if reason is not None else exc
    return redact(f"{type(exc).__name__}: {detail}")


def classify(
    exc: BaseException | None, response: SlackResponse | None, action: Action = "post"
) -> Outcome:
    """Classify the result of one Slack Web API call made for ``action``: the call's exception,
    or its response.

    Retryable: network errors, HTTP 5xx and 408, HTTP 429 or ``ratelimited`` (``retry_after``
    from ``Retry-After``, at least 1 s), and ``RETRYABLE_ERRORS``. Fallback: the action's
    ``LOST_MESSAGE_ERRORS``. Final: ``FINAL_ERRORS``, any other ``ok: false`` error or 4xx, and
    unexpected exceptions (a bug is not fixed by retrying).
    """
    if isinstance(exc, SlackApiError):
        response = exc.response
        exc = None
    if exc is not None:
        if isinstance(exc, OSError | http.client.HTTPException):
            return Outcome("retry", f"network: {_describe(exc)}")
        return Outcome("final", f"unexpected: {type(exc).__name__}")
    if response is None:
        raise ValueError("classify needs an exception or a response")

    status = response.status_code
    data = response.data if isinstance(response.data, dict) else {}
    error = redact(str(data.get("error") or ""))
    retry_after = _retry_after(response.headers)
    if status == 429 or error in _RATE_LIMITED:
        return Outcome("retry", "ratelimited", max(1.0, retry_after or 0.0))
    if status >= 500 or status == 408:
        reason = f"http {status}" + (f" {error}" if error else "")
        return Outcome("retry", reason, retry_after)
    if status == 200 and (isinstance(response.data, bytes) or data.get("ok") is True):
        return Outcome("ok", "ok")
    if error in RETRYABLE_ERRORS:
        return Outcome("retry", error, retry_after)
    if error in LOST_MESSAGE_ERRORS[action]:
        return Outcome("fallback", error)
    if error in FINAL_ERRORS:
        return Outcome("final", error)
    if error:
        return Outcome("final", f"{error} (unrecognised error)")
    return Outcome("final", f"http {status} without an error code")
