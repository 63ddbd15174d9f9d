"""Logging: one line per event on stderr (Heroku's log router reads it), as text
(``time level logger: message key=value ...``) or JSON (one object per line), with every
configured secret redacted from the final text as a last line of defence.

A traceback is folded into its event (``exc="Traceback...\\n..."`` in text, ``"exc"`` in JSON),
so a log router never splits one event into lines. Fields ride on a record as
``extra={"fields": {...}}``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

REDACTED = "[redacted]"
LogFormat = Literal["text", "json"]

#: Bolt warns that ``token`` goes unused whenever SLACK_BOT_TOKEN is in the environment, although
#: the bot hands Bolt a ready client on purpose: noise at every boot.
#: (Its text, not Bolt's function: importing Bolt would slow every command down.)
BOLT_TOKEN_UNUSED = "As you gave `client` as well, `token` will be unused."  # noqa: S105 - a log text


class RedactSecrets(logging.Filter):
    """Replaces each known secret value in a record's formatted message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Short values would redact ordinary words; real secrets are long.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (and traceback text) without the secrets."""
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self._secrets:
            message = message.replace(secret, REDACTED)
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, REDACTED)
        record.msg, record.args = message, None
        return True


class DropBoltTokenWarning(logging.Filter):
    """Drops Bolt's "token will be unused" warning (see ``BOLT_TOKEN_UNUSED``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for that one message."""
        return record.getMessage() != BOLT_TOKEN_UNUSED


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, Mapping) else {}


def _traceback(record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    text = record.exc_text or ""
    if record.stack_info:
        text = f"{text}\n{record.stack_info}".strip()
    return text or None


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


def _text_value(value: object) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "-_./:@+" for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted, newlines escaped: still one line


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``, always one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text."""
        message = record.getMessage().replace("\r", "\\r").replace("\n", "\\n")
        parts = [f"{_timestamp(record)} {record.levelname} {record.name}: {message}"]
        parts += [f"{key}={_text_value(value)}" for key, value in _fields(record).items()]
        if (traceback := _traceback(record)) is not None:
            parts.append(f"exc={_text_value(traceback)}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        event: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            event.setdefault(key, value)
        if (traceback := _traceback(record)) is not None:
            event["exc"] = traceback
        return json.dumps(event, ensure_ascii=False, default=str)


def configure_logging(level: str, secrets: Iterable[str] = (), fmt: LogFormat = "text") -> None:
    """Send logs to stderr, one line per event in ``fmt``, with secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactSecrets(secrets))
    handler.addFilter(DropBoltTokenWarning())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("apscheduler", "httpx", "httpcore", "waitress", "slack_bolt", "slack_sdk"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # sqlitedict logs its own errors for a damaged file; the StateError says it once, clearly.
    logging.getLogger("sqlitedict").setLevel(logging.CRITICAL)
