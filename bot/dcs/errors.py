"""The DCS client's exception tree. Messages never carry credentials.

DcsError
├── DcsApiError            DCS answered with an error body (error_code, error_msg)
│   ├── DcsAuthError       401/403: credentials wrong or not allowed
│   └── DcsNotFoundError   404: unknown project or instance
├── DcsUnavailableError    429/5xx/timeouts/connection errors, after the retries ran out
├── DcsBadResponseError    a body that is not the JSON the reference describes
└── DcsInvalidIdError      an ID that may not go into a DCS URL (nothing was sent)
"""

from __future__ import annotations


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


class DcsInvalidIdError(DcsError):
    """An instance or task ID that is not a DCS ID (``../``, ``?``...): refused before any URL
    is built, so nothing was sent."""
