"""Tests for bot.config: parsing, defaults, per-command requirements and readable problems."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config import ConfigError, load_settings, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("30s", timedelta(seconds=30)),
        ("3600", timedelta(hours=1)),
        (" 5 m ", timedelta(minutes=5)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    """Durations accept s/m/h/d/w suffixes or bare seconds."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0h", "-5m", "5y", "abc", "1.5h", "h"])
def test_bad_durations_are_refused(text: str) -> None:
    """Anything that is not a positive whole duration is a ValueError."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_process_environment_never_leaks_into_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the mapping handed in counts: exported variables do not override or add to it."""
    monkeypatch.setenv("DCS_POLL_INTERVAL", "7")
    monkeypatch.setenv("DATABASE_URL", "postgresql://leak@127.0.0.1:1/leak")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-leak")

    s = load_settings({"DCS_POLL_INTERVAL": "30"})

    assert s.poll_interval == 30
    assert s.database_url is None
    assert s.slack_app_token is None
    assert load_settings({}).poll_interval == 60


def test_defaults_match_the_interface() -> None:
    """With nothing set, every default is the one INTERFACE.md names."""
    s = load_settings({})
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.instances == ()
    assert s.poll_interval == 60
    assert s.lookback == timedelta(hours=24)
    assert s.digest_threshold == 10
    assert s.retention == timedelta(days=30)
    assert str(s.state_path) == "dcs-tasks-bot.sqlite"
    assert s.port == 3000
    assert s.log_level == "INFO"
    assert s.database_url is None


@pytest.mark.parametrize(("value", "expected"), [("*", ()), ("", ()), ("a, b,,c", ("a", "b", "c"))])
def test_instances_are_a_comma_list_where_star_means_all(
    value: str, expected: tuple[str, ...]
) -> None:
    """DCS_INSTANCES empty or * means every instance; otherwise a trimmed list."""
    assert load_settings({"DCS_INSTANCES": value}).instances == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DCS_POLL_INTERVAL", "abc"),
        ("DCS_POLL_INTERVAL", "0"),
        ("DCS_LOOKBACK", "forever"),
        ("DCS_RETENTION", "0d"),
        ("DCS_LOOKBACK", "31d"),
        ("DCS_LOOKBACK", "99999999999999999999d"),
        ("DCS_RETENTION", "366d"),
        ("DCS_RETENTION", "53w"),
        ("DCS_DIGEST_THRESHOLD", "0"),
        ("PORT", "70000"),
        ("LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "mysql://u:p@h/db"),
        ("DCS_ENDPOINT", "dcs.example.com"),
        ("SLACK_API_URL", "ftp://slack"),
    ],
)
def test_a_malformed_value_gives_one_line_naming_the_variable_and_an_example(
    name: str, value: str
) -> None:
    """Each problem is one line starting with the variable's name and showing an example."""
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value})
    assert len(caught.value.problems) == 1
    line = caught.value.problems[0]
    assert line.startswith(f"{name}: ")
    assert "e.g. " in line
    assert "\n" not in line


@pytest.mark.parametrize(
    ("name", "longest", "too_long", "words"),
    [
        ("DCS_LOOKBACK", "30d", "721h", "at most 30d"),
        ("DCS_RETENTION", "365d", "366d", "at most 365d"),
    ],
)
def test_durations_have_sane_upper_bounds(
    name: str, longest: str, too_long: str, words: str
) -> None:
    """The longest allowed value loads; one unit more is refused with the bound named."""
    load_settings({name: longest})
    with pytest.raises(ConfigError) as caught:
        load_settings({name: too_long})
    assert words in caught.value.problems[0]
    assert caught.value.problems[0].startswith(f"{name}: ")


def test_several_problems_are_all_reported() -> None:
    """Every malformed variable is reported, not just the first."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"PORT": "x", "DCS_LOOKBACK": "y", "DCS_POLL_INTERVAL": "z"})
    names = sorted(p.split(":")[0] for p in caught.value.problems)
    assert names == ["DCS_LOOKBACK", "DCS_POLL_INTERVAL", "PORT"]


def test_secrets_are_never_echoed_in_problems_or_repr() -> None:
    """A malformed secret is reported without its value, and repr hides every secret."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"DATABASE_URL": "mysql://user:pw-s3cret@host/db"})
    assert "pw-s3cret" not in str(caught.value)
    s = load_settings(
        {
            "SLACK_BOT_TOKEN": "xoxb-very-secret",
            "DCS_SECRET_KEY": "sk-very-secret",
            "OS_PASSWORD": "pw-very-secret",
            "DATABASE_URL": "postgres://u:db-very-secret@h/db",
        }
    )
    assert "very-secret" not in repr(s)
    assert "very-secret" not in str(s)


def test_required_settings_depend_on_the_command() -> None:
    """serve needs Slack and DCS; tasks needs only DCS; Socket Mode needs no signing secret."""
    dcs = {"DCS_ENDPOINT": "https://dcs.example.com", "DCS_PROJECT_ID": "p", "DCS_AUTH_TOKEN": "t"}
    s = load_settings(dcs)
    assert s.problems_for("tasks") == []
    serve = [p.split(":")[0] for p in s.problems_for("serve")]
    assert serve == ["SLACK_BOT_TOKEN", "DCS_ALERT_CHANNEL", "SLACK_SIGNING_SECRET"]
    socket = load_settings(
        {**dcs, "SLACK_BOT_TOKEN": "xoxb-1", "DCS_ALERT_CHANNEL": "C1", "SLACK_APP_TOKEN": "xapp"}
    )
    assert socket.problems_for("serve") == []


def test_credentials_follow_the_documented_precedence() -> None:
    """AK/SK beats IAM, IAM beats a ready token; HUAWEICLOUD_SDK_* are accepted too."""
    iam = {
        "OS_AUTH_URL": "https://iam.example.com/v3",
        "OS_USERNAME": "u",
        "OS_PASSWORD": "p",
        "OS_PROJECT_ID": "x",
    }
    aksk = {"HUAWEICLOUD_SDK_AK": "ak", "HUAWEICLOUD_SDK_SK": "sk"}
    assert load_settings({**iam, **aksk, "DCS_AUTH_TOKEN": "t"}).dcs_auth_mode == "aksk"
    assert load_settings({**iam, "DCS_AUTH_TOKEN": "t"}).dcs_auth_mode == "iam"
    assert load_settings({"DCS_AUTH_TOKEN": "t"}).dcs_auth_mode == "token"
    assert load_settings({}).dcs_auth_mode is None


def test_project_id_falls_back_to_os_project_id() -> None:
    """DCS_PROJECT_ID falls back to OS_PROJECT_ID, which stays available for IAM scope."""
    s = load_settings({"OS_PROJECT_ID": "from-os"})
    assert (s.project_id, s.os_project_id) == ("from-os", "from-os")
    s = load_settings({"OS_PROJECT_ID": "from-os", "DCS_PROJECT_ID": "from-dcs"})
    assert (s.project_id, s.os_project_id) == ("from-dcs", "from-os")


def test_stuck_after_and_report_schedule() -> None:
    """DCS_STUCK_AFTER is a duration (30m by default); DCS_REPORT_SCHEDULE a cron expression,
    unset by default; a wrong one is one line with an example."""
    default = load_settings({})
    assert default.stuck_after == timedelta(minutes=30)
    assert default.report_schedule is None
    chosen = load_settings({"DCS_STUCK_AFTER": "2h", "DCS_REPORT_SCHEDULE": " 0 8 * * MON "})
    assert chosen.stuck_after == timedelta(hours=2)
    assert chosen.report_schedule == "0 8 * * MON"
    for name, value in (("DCS_STUCK_AFTER", "soon"), ("DCS_REPORT_SCHEDULE", "8am mondays")):
        with pytest.raises(ConfigError) as caught:
            load_settings({name: value})
        [problem] = caught.value.problems
        assert problem.startswith(f"{name}: ")
        assert "e.g." in problem
