"""The DCS client's exception tree, and the one place HTTP statuses become errors.

DcsError
├── DcsApiError               DCS or IAM answered with an error status (error_code, error_msg)
│   ├── DcsAuthError          401/403 (any refusal from IAM): credentials wrong or not allowed
│   └── DcsNotFoundError      404: unknown project or instance
├── DcsUnavailableError       429/5xx/timeouts/connection errors, after the retries ran out
├── DcsBadResponseError       a body that is not the JSON the reference describes, or too big
├── DcsUnknownInstanceError   an instance asked for by name or ID is not in the project
└── DcsInvalidIdError         an ID that may not go into a DCS URL (nothing was sent)

:func:`error_for_status` classifies a status once for DCS and IAM; :func:`redact` takes a
secret out of a text in every form a server may echo it. Messages never carry credentials.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import quote, quote_plus

#: How much of a server's error code and message is kept.
MAX_CODE_CHARS = 64
MAX_MESSAGE_CHARS = 300
REDACTED = "***"


class DcsError(Exception):
    """Anything that went wrong talking to DCS."""


class DcsApiError(DcsError):
    """DCS answered with an error status and (usually) an error body."""

    def __init__(
        self,
        status_code: int,
        error_code: str | None,
        error_msg: str | None,
        *,
        service: str = "DCS",
    ) -> None:
        self.status_code = status_code
        self.error_code = error_code
        self.error_msg = error_msg
        code = f" {error_code}" if error_code else ""
        msg = f": {error_msg}" if error_msg else ""
        super().__init__(f"{service} answered HTTP {status_code}{code}{msg}")


class DcsAuthError(DcsApiError):
    """401 or 403: the credentials were refused."""


class DcsNotFoundError(DcsApiError):
    """404: the project or instance does not exist."""


class DcsUnavailableError(DcsError):
    """DCS could not be reached or kept failing (429, 5xx, timeouts) until the retries ran out."""

    def __init__(
        self, message: str, status_code: int | None = None, error_code: str | None = None
    ) -> None:
        self.status_code = status_code
        self.error_code = error_code
        super().__init__(message)


class DcsBadResponseError(DcsError):
    """DCS answered 200 with a body that is not the documented JSON (truncated, wrong shape)."""


class DcsUnknownInstanceError(DcsError):
    """An instance asked for by name or ID is not in the project (or its name is ambiguous)."""

    def __init__(self, wanted: str, message: str) -> None:
        self.wanted = wanted
        super().__init__(message)


class DcsInvalidIdError(DcsError):
    """An instance or task ID that is not a DCS ID (``../``, ``?``...): refused before any URL
    is built, so nothing was sent."""


def is_retryable(status: int) -> bool:
    """True for the statuses worth trying again: 429 and 5xx."""
    return status == 429 or status >= 500


def error_fields(content: bytes) -> tuple[str | None, str | None]:
    """``(error_code, error_msg)`` from an error body: the DCS shape (``error_code``,
    ``error_msg``) or the OpenStack/IAM one (``{"error": {"code"|"title", "message"}}``)."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return None, None
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        body = body["error"]
    if not isinstance(body, Mapping):
        return None, None
    code = next((body[k] for k in ("error_code", "code", "title") if body.get(k)), None)
    msg = body.get("error_msg", body.get("message"))
    return (
        str(code) if code is not None else None,
        str(msg) if msg is not None else None,
    )


def error_for_status(
    status: int,
    error_code: str | None,
    error_msg: str | None,
    *,
    service: str = "DCS",
    secrets: tuple[str, ...] = (),
) -> DcsError:
    """The error for an answer with error ``status``, its fields redacted and shortened.

    429/5xx → :class:`DcsUnavailableError` (retryable); for IAM every other refusal is a
    :class:`DcsAuthError`; for DCS 401/403 → ``DcsAuthError``, 404 → ``DcsNotFoundError``,
    anything else → ``DcsApiError``.
    """
    code = _clean(error_code, MAX_CODE_CHARS, secrets)
    msg = _clean(error_msg, MAX_MESSAGE_CHARS, secrets)
    if is_retryable(status):
        shown = f" {code}" if code else ""
        return DcsUnavailableError(f"{service} answered HTTP {status}{shown}", status, code)
    if service != "DCS" or status in (401, 403):
        return DcsAuthError(status, code, msg, service=service)
    if status == 404:
        return DcsNotFoundError(status, code, msg, service=service)
    return DcsApiError(status, code, msg, service=service)


def redact(text: str, *secrets: str) -> str:
    """``text`` without any of ``secrets``, in the forms a server may echo them: as is,
    JSON-escaped (ASCII or not), URL-encoded and as a Python repr."""
    for secret in secrets:
        if not secret:
            continue
        forms = {
            secret,
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
            quote(secret, safe=""),
            quote_plus(secret, safe=""),
            repr(secret)[1:-1],
        }
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, REDACTED)
    return text


def _clean(value: str | None, limit: int, secrets: tuple[str, ...]) -> str | None:
    """Redact first, then shorten: a cut must never leave half a secret behind."""
    if value is None:
        return None
    return redact(value, *secrets)[:limit]
