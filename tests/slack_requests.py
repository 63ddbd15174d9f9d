"""Requests exactly as Slack sends them: form bodies of slash commands, signed with
slack-sdk's own SignatureVerifier (``X-Slack-Signature``, ``X-Slack-Request-Timestamp``)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier


def post_signed(
    client: httpx.Client, url: str, body: str, *, secret: str, timestamp: int | None = None
) -> httpx.Response:
    """POST ``body`` to ``url`` signed with ``secret`` at ``timestamp`` (default: now)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }
    return client.post(url, content=body, headers=headers)


def command_body(text: str, *, user: str, channel: str, response_url: str) -> str:
    """The form body of ``/dcs-tasks text`` from ``user`` in ``channel``."""
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": "T0FAKETEAM",
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "queries",
            "user_id": user,
            "user_name": "alice",
            "command": "/dcs-tasks",
            "text": text,
            "api_app_id": "A0DCSTASKS",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        }
    )
