"""DCS and IAM error answers are classified in one place, shortened and redacted."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from bot.dcs.errors import (
    MAX_MESSAGE_CHARS,
    REDACTED,
    DcsApiError,
    DcsAuthError,
    DcsError,
    DcsNotFoundError,
    DcsUnavailableError,
    error_fields,
    error_for_status,
    is_retryable,
    redact,
)


@pytest.mark.parametrize(
    ("status", "service", "expected"),
    [
        (400, "DCS", DcsApiError),
        (401, "DCS", DcsAuthError),
        (403, "DCS", DcsAuthError),
        (404, "DCS", DcsNotFoundError),
        (409, "DCS", DcsApiError),
        (429, "DCS", DcsUnavailableError),
        (500, "DCS", DcsUnavailableError),
        (503, "DCS", DcsUnavailableError),
        (400, "IAM", DcsAuthError),
        (401, "IAM", DcsAuthError),
        (404, "IAM", DcsAuthError),
        (429, "IAM", DcsUnavailableError),
        (502, "IAM", DcsUnavailableError),
    ],
)
def test_statuses_are_classified_once(status: int, service: str, expected: type[DcsError]) -> None:
    """Each status maps to exactly one error class, for DCS and for IAM."""
    error = error_for_status(status, "C.1", "why", service=service)
    assert type(error) is expected
    assert is_retryable(status) == (expected is DcsUnavailableError)
    assert f"{service} answered HTTP {status} C.1" in str(error)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"error_code": "DCS.4001", "error_msg": "bad"}, ("DCS.4001", "bad")),
        ({"error": {"code": 401, "title": "Unauthorized", "message": "no"}}, ("401", "no")),
        ({"error": {"title": "Unauthorized", "message": "no"}}, ("Unauthorized", "no")),
        (["not", "an", "object"], (None, None)),
        ("text", (None, None)),
    ],
)
def test_error_fields_read_both_body_shapes(
    body: object, fields: tuple[str | None, str | None]
) -> None:
    """The DCS shape and the OpenStack/IAM shape give (code, message); others give nothing."""
    assert error_fields(json.dumps(body).encode()) == fields


def test_error_fields_of_a_body_that_is_not_json() -> None:
    """HTML or bytes that are not UTF-8 give no fields, not an exception."""
    assert error_fields(b"<html>\xff\xfe</html>") == (None, None)


def test_long_messages_are_shortened_after_redaction() -> None:
    """A secret straddling the cut is still removed: redaction happens before shortening."""
    secret = "s3cret-" * 10
    message = "x" * (MAX_MESSAGE_CHARS - 20) + secret
    error = error_for_status(400, None, message, secrets=(secret,))
    assert isinstance(error, DcsApiError)
    assert error.error_msg is not None
    assert len(error.error_msg) <= MAX_MESSAGE_CHARS
    assert "s3cret" not in str(error)


@pytest.mark.parametrize(
    "secret", ["a.b*c+d?(e)[f]{1}|^$\\", "q\"u'o", "ünï-パス-🔑", "sp ace&x=y%z"]
)
def test_redact_removes_every_encoding_of_a_secret(secret: str) -> None:
    """Raw, JSON-escaped (ASCII or not), URL-encoded and repr forms are all replaced."""
    forms = [
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        repr(secret)[1:-1],
    ]
    text = redact(" | ".join(forms), secret)
    assert text == " | ".join([REDACTED] * len(forms))


def test_redact_ignores_empty_secrets() -> None:
    """An empty secret redacts nothing."""
    assert redact("keep me", "") == "keep me"
