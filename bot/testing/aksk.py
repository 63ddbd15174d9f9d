"""The server side of AK/SK signing: what the DCS simulator checks a signed request with."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from bot.dcs.auth import _AUTHORIZATION, ALGORITHM, DATE_FORMAT, as_utc, signature


def verify_signed_request(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta = timedelta(minutes=15),
) -> str | None:
    """Check an ``SDK-HMAC-SHA256`` request as a server would: None if valid, else why not.

    ``raw_path`` and ``query_string`` are as received (still percent-encoded); ``secret_for``
    maps an access key to its secret key, or None when the key is unknown.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    authorization = lowered.get("authorization")
    if not authorization:
        return "missing Authorization"
    if not authorization.startswith(ALGORITHM + " "):
        return "unsupported Authorization scheme"
    match = _AUTHORIZATION.match(authorization)
    if match is None:
        return "malformed Authorization"
    access_key, signed_list, claimed = match.groups()
    signed = signed_list.lower().split(";")
    if "x-sdk-date" not in lowered:
        return "missing X-Sdk-Date"
    try:
        sent_at = datetime.strptime(lowered["x-sdk-date"], DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return "malformed X-Sdk-Date"
    for required in ("host", "x-sdk-date"):
        if required not in signed:
            return f"{required} not signed"
    missing = [name for name in signed if name not in lowered]
    if missing:
        return f"signed header missing: {missing[0]}"
    secret_key = secret_for(access_key)
    if secret_key is None:
        return "unknown access key"
    if as_utc(now) - sent_at > max_skew:
        return "X-Sdk-Date too old"
    if sent_at - as_utc(now) > max_skew:
        return "X-Sdk-Date in the future"
    expected = signature(method, raw_path or "/", query_string, lowered, signed, body, secret_key)
    if not hmac.compare_digest(expected, claimed.lower()):
        return "signature mismatch"
    return None
