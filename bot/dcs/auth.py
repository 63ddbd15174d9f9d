"""DCS authentication as ``httpx.Auth`` schemes: AK/SK signing, IAM password token, ready token.

AK/SK follows the APIG ``SDK-HMAC-SHA256`` scheme of the official Huawei Cloud SDK signer
(``huaweicloudsdkcore.signer.Signer``); ``bot.testing.aksk`` is its server side. No secret
(SK, password, token) ever appears in a repr or an exception message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import httpx

from bot.dcs.errors import (
    DcsBadResponseError,
    DcsError,
    DcsUnavailableError,
    error_fields,
    error_for_status,
    redact,
)

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_CONTENT_HASH = "x-sdk-content-sha256"
_AUTHORIZATION = re.compile(
    rf"^{ALGORITHM}\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-fA-F]+)\s*$"
)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- AK/SK signing -------------------------------------------------------------------------


def canonical_uri(raw_path: str) -> str:
    """Each decoded path segment RFC 3986-encoded, always ending in ``/`` (as the SDK does)."""
    uri = "/".join(quote(segment, safe="~") for segment in unquote(raw_path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(query_string: str) -> str:
    """The decoded parameters sorted by key then value, RFC 3986-encoded (``+`` is a space)."""
    pairs = sorted(parse_qsl(query_string, keep_blank_values=True))
    return "&".join(f"{quote(key, safe='~')}={quote(value, safe='~')}" for key, value in pairs)


def default_signed_headers(names: Iterable[str]) -> list[str]:
    """Which headers AkSkAuth signs: Host, Content-Type and every ``X-`` header, sorted.

    Transport headers (Accept-Encoding, Connection, User-Agent, Content-Length) are left out:
    they are not the request's meaning and intermediaries may rewrite them. Names with ``_`` are
    never signed (the official signer skips them too).
    """
    chosen = {
        name.lower()
        for name in names
        if "_" not in name
        and (name.lower() in ("host", "content-type") or name.lower().startswith("x-"))
    }
    return sorted(chosen)


def signature(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    signed: Sequence[str],
    body: bytes,
    secret_key: str,
) -> str:
    """HMAC-SHA256 of the string to sign; ``headers`` must have lowercase names."""
    payload_hash = hashlib.sha256(body).hexdigest()
    if body and _CONTENT_HASH in signed and headers.get(_CONTENT_HASH):
        payload_hash = headers[_CONTENT_HASH]  # e.g. UNSIGNED-PAYLOAD, as the SDK honours it
    canonical = "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(query_string),
            "".join(f"{name}:{headers[name].strip()}\n" for name in signed),
            ";".join(signed),
            payload_hash,
        ]
    )
    string_to_sign = "\n".join(
        [ALGORITHM, headers["x-sdk-date"], hashlib.sha256(canonical.encode()).hexdigest()]
    )
    return hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_key: str,
    *,
    signed_headers: Sequence[str] | None = None,
) -> tuple[str, str]:
    """Return ``(signed_headers, signature)`` for a request whose headers carry ``X-Sdk-Date``.

    ``url`` is absolute (``https://host/path?query``, its path percent-encoded as sent). Host is
    taken from the headers, else from the URL. ``signed_headers`` defaults to
    :func:`default_signed_headers`. Raises ValueError when X-Sdk-Date or a signed header is absent.
    """
    parts = urlsplit(url)
    lowered = {name.lower(): value for name, value in headers.items()}
    if "host" not in lowered and parts.netloc:
        lowered["host"] = parts.netloc.rpartition("@")[2]
    if "x-sdk-date" not in lowered:
        raise ValueError("X-Sdk-Date header is required to sign")
    names = (
        [name.lower() for name in signed_headers]
        if signed_headers is not None
        else default_signed_headers(lowered)
    )
    missing = [name for name in names if name not in lowered]
    if missing:
        raise ValueError(f"signed header missing: {missing[0]}")
    signed = signature(method, parts.path or "/", parts.query, lowered, names, body, secret_key)
    return ";".join(names), signed


class AkSkAuth(httpx.Auth):
    """Signs every request with ``SDK-HMAC-SHA256`` (X-Sdk-Date, Host and Authorization)."""

    requires_request_body = True

    def __init__(self, access_key: str, secret_key: str, *, clock: Clock = utc_now) -> None:
        if not access_key or not secret_key:
            raise ValueError("AK/SK signing needs both an access key and a secret key")
        self.access_key = access_key
        self._secret_key = secret_key
        self._clock = clock

    def __repr__(self) -> str:
        return f"AkSkAuth(access_key={self.access_key[:4]!r}..., secret_key=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add X-Sdk-Date and the Authorization header; nothing touches a header afterwards."""
        request.headers["X-Sdk-Date"] = as_utc(self._clock()).strftime(DATE_FORMAT)
        signed, signature = sign(
            request.method,
            str(request.url),
            request.headers,
            request.content,
            self._secret_key,
        )
        request.headers["Authorization"] = (
            f"{ALGORITHM} Access={self.access_key}, SignedHeaders={signed}, Signature={signature}"
        )
        yield request


# --- Tokens --------------------------------------------------------------------------------


class TokenAuth(httpx.Auth):
    """Sends a ready IAM token (``DCS_AUTH_TOKEN``) as ``X-Auth-Token``."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the token is empty")
        self._token = token

    def __repr__(self) -> str:
        return "TokenAuth(token=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the token header."""
        request.headers["X-Auth-Token"] = self._token
        yield request


class _Token(NamedTuple):
    value: str
    expires_at: datetime


class IamTokenAuth(httpx.Auth):
    """Fetches an IAM user token by password, caches it, and sends it as ``X-Auth-Token``.

    The token is fetched again ``refresh_margin`` before it expires, and once more when the API
    answers 401 (a second 401 is returned as is). Tokens are fetched with ``client`` (a plain
    ``httpx.Client`` without this auth; one is made when omitted), one fetch at a time; the
    fetch blocks, so this is meant for ``httpx.Client``.
    """

    requires_response_body = False
    default_lifetime = timedelta(hours=1)  # used when IAM's answer has no readable expires_at

    def __init__(
        self,
        auth_url: str,
        username: str,
        password: str,
        user_domain_name: str | None,
        *,
        project_id: str | None = None,
        project_name: str | None = None,
        client: httpx.Client | None = None,
        clock: Clock = utc_now,
        refresh_margin: timedelta = timedelta(minutes=5),
    ) -> None:
        if not (project_id or project_name):
            raise ValueError("IAM token needs a project scope: project_id or project_name")
        self.tokens_url = auth_url.rstrip("/") + "/auth/tokens"
        self.username = username
        self._password = password
        self.user_domain_name = user_domain_name
        self.project_id = project_id
        self.project_name = project_name
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=10.0)
        self._clock = clock
        self._margin = refresh_margin
        self._lock = threading.Lock()
        self._token: _Token | None = None

    def __repr__(self) -> str:
        return (
            f"IamTokenAuth(tokens_url={self.tokens_url!r}, username={self.username!r}, "
            f"password=***, project_id={self.project_id!r}, project_name={self.project_name!r})"
        )

    def close(self) -> None:
        """Close the token client if this object made it."""
        if self._owns_client:
            self._client.close()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send the cached token; on a 401, fetch a new one and send the request once more."""
        token = self.token()
        request.headers["X-Auth-Token"] = token
        response = yield request
        if response.status_code == 401:
            request.headers["X-Auth-Token"] = self.token(stale=token)
            yield request

    def token(self, stale: str | None = None) -> str:
        """A token valid beyond the refresh margin, fetched when needed.

        ``stale`` is a token the API refused: it is replaced unless another thread already did.
        """
        with self._lock:
            current = self._token
            if (
                current is not None
                and current.value != stale
                and as_utc(self._clock()) < current.expires_at - self._margin
            ):
                return current.value
            self._token = self._fetch()
            return self._token.value

    def _request_body(self) -> dict[str, Any]:
        user: dict[str, Any] = {"name": self.username, "password": self._password}
        if self.user_domain_name:
            user["domain"] = {"name": self.user_domain_name}
        project: dict[str, Any]
        if self.project_id:
            project = {"id": self.project_id}
        else:
            project = {"name": self.project_name}
            if self.user_domain_name:
                project["domain"] = {"name": self.user_domain_name}
        return {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": user}},
                "scope": {"project": project},
            }
        }

    def _fetch(self) -> _Token:
        """Ask IAM for a token; failures become the :mod:`bot.dcs.errors` tree, redacted."""
        url = self.tokens_url
        try:
            response = self._client.post(
                url, params={"nocatalog": "true"}, json=self._request_body()
            )
        except httpx.HTTPError as exc:
            reason = redact(str(exc), self._password)
            raise DcsUnavailableError(
                f"IAM token request to {url} failed: {type(exc).__name__}: {reason}"
            ) from None
        if response.status_code >= 400:
            raise self._refusal(response)
        value = response.headers.get("X-Subject-Token")
        if not value:
            raise DcsBadResponseError(
                f"IAM answered HTTP {response.status_code} without X-Subject-Token"
            )
        return _Token(value, self._expires_at(response))

    def _refusal(self, response: httpx.Response) -> DcsError:
        """The error for IAM's error answer, with the password taken out of everything."""
        code, message = error_fields(response.content)
        error = error_for_status(
            response.status_code,
            code,
            f"IAM refused a token for user {self.username!r}: "
            f"{message or response.reason_phrase or 'no reason given'}",
            service="IAM",
            secrets=(self._password,),
        )
        if isinstance(error, DcsUnavailableError):
            return DcsUnavailableError(
                f"IAM token request to {self.tokens_url} answered HTTP {response.status_code}",
                response.status_code,
                error.error_code,
            )
        return error

    def _expires_at(self, response: httpx.Response) -> datetime:
        try:
            expires = datetime.fromisoformat(str(response.json()["token"]["expires_at"]))
        except (ValueError, KeyError, TypeError):
            return as_utc(self._clock()) + self.default_lifetime
        return as_utc(expires)
