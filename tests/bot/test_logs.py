"""Tests for bot.logs: one line per event in text and JSON, tracebacks folded into their event,
fields as key=value, secrets redacted in both formats, Bolt's boot warning dropped."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

from bot.logs import (
    BOLT_TOKEN_UNUSED,
    REDACTED,
    DropBoltTokenWarning,
    JsonFormatter,
    RedactSecrets,
    TextFormatter,
    configure_logging,
)
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.bot.test_cli import PROD_ID, run_bot
from tests.conftest import DCS_TOKEN, bot_env

SECRET = "xoxb-secret-0123456789"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]]]:
    """A logger of its own writing into a buffer (formatter set by each test)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactSecrets([SECRET]))
    handler.addFilter(DropBoltTokenWarning())
    logger = logging.getLogger(f"test.logs.{id(buffer)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, buffer, handler
    logger.removeHandler(handler)


def log_failure(logger: logging.Logger) -> None:
    try:
        raise RuntimeError(f"boom\nwith {SECRET} inside")
    except RuntimeError:
        logger.exception("cycle failed\nsecond line", extra={"fields": {"instance_count": 3}})


def test_text_is_one_line_per_event_with_fields_and_the_traceback_folded(
    logged: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, buffer, handler = logged
    handler.setFormatter(TextFormatter())
    logger.info("request", extra={"fields": {"method": "POST", "path": "/slack/events", "ms": 1.5}})
    log_failure(logger)

    lines = buffer.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(
        " INFO " + logger.name + ": request method=POST path=/slack/events ms=1.5"
    )
    assert 'cycle failed\\nsecond line instance_count=3 exc="Traceback' in lines[1]
    assert "RuntimeError: boom\\nwith [redacted] inside" in lines[1]
    assert SECRET not in buffer.getvalue()


def test_json_is_one_object_per_line_with_fields_and_the_traceback(
    logged: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, buffer, handler = logged
    handler.setFormatter(JsonFormatter())
    logger.warning("rate limited", extra={"fields": {"status": 429}})
    log_failure(logger)

    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert len(events) == 2
    assert events[0]["level"] == "WARNING"
    assert events[0]["message"] == "rate limited"
    assert events[0]["status"] == 429
    assert events[0]["time"].endswith("Z")
    assert events[1]["message"] == "cycle failed\nsecond line"
    assert events[1]["instance_count"] == 3
    assert events[1]["exc"].startswith("Traceback")
    assert SECRET not in buffer.getvalue()


def test_bolts_token_warning_is_dropped_and_its_text_is_bolts(
    logged: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, buffer, handler = logged
    handler.setFormatter(TextFormatter())
    logger.warning(warning_client_prioritized_and_token_skipped())
    logger.warning("another warning")

    assert warning_client_prioritized_and_token_skipped() == BOLT_TOKEN_UNUSED
    assert buffer.getvalue().count("\n") == 1
    assert "another warning" in buffer.getvalue()


def test_log_format_json_makes_every_line_of_a_failing_poll_json(
    simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path
) -> None:
    simulator.add_instance("cache-prod", instance_id=PROD_ID)
    simulator.inject("400", count=1000)  # not retried: the poll fails at once
    env = bot_env(simulator, slack, tmp_path / "state.sqlite", LOG_FORMAT="json")

    result = run_bot("poll", "--once", env=env, cwd=tmp_path)

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    assert any(event["level"] == "ERROR" for event in events)
    text_logs = [line for line in result.stderr.splitlines() if line[:4].isdigit()]
    assert text_logs == []  # no line in the text format (which starts with the time)
    assert DCS_TOKEN not in result.stderr


def test_an_unknown_log_format_is_a_configuration_line(tmp_path: Path) -> None:
    result = run_bot("check", env={"LOG_FORMAT": "yaml"}, cwd=tmp_path)

    assert result.returncode == 2
    assert "configuration: LOG_FORMAT:" in result.stderr
    assert "e.g. LOG_FORMAT=json" in result.stderr
    assert "Traceback" not in result.stderr


OTHER_SECRET = "Hunter2-password"


@pytest.fixture
def restore_root() -> Iterator[None]:
    """Put the root logger back as it was (configure_logging replaces its handlers)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def captured(secrets: list[str]) -> tuple[logging.Logger, io.StringIO]:
    """A logger writing through RedactSecrets into a string."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactSecrets(secrets))
    logger = logging.getLogger(f"test.logs.{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


def test_secrets_in_the_message_and_its_arguments_are_redacted() -> None:
    """A secret in the format string or in an argument never reaches the output."""
    logger, out = captured([SECRET, OTHER_SECRET])

    logger.warning("token %s and " + OTHER_SECRET, SECRET)

    assert out.getvalue().strip() == f"token {REDACTED} and {REDACTED}"


def test_short_values_are_not_treated_as_secrets() -> None:
    """Values under six characters would redact ordinary words: they are left alone."""
    logger, out = captured(["abc", ""])

    logger.info("abc is fine")

    assert out.getvalue().strip() == "abc is fine"


def test_configure_logging_redacts_on_stderr(
    restore_root: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """After configure_logging, any logger's line on stderr has the secrets redacted."""
    configure_logging("INFO", [SECRET])

    logging.getLogger("bot.anything").warning("calling Slack with %s", SECRET)
    logging.getLogger("bot.anything").debug("below the level")

    err = capsys.readouterr().err
    assert SECRET not in err
    assert f"WARNING bot.anything: calling Slack with {REDACTED}" in err
    assert "below the level" not in err
