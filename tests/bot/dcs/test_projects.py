"""Tests for bot.dcs.projects: DCS_PROJECTS entries, and the settings built on them."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings
from bot.dcs.projects import Project, parse_projects

BASE = {"SLACK_BOT_TOKEN": "xoxb-1", "DCS_ALERT_CHANNEL": "C1", "DCS_AUTH_TOKEN": "t"}


@pytest.mark.parametrize(
    ("value", "endpoint", "expected"),
    [
        ("eu-de:p1", None, [Project("p1", "https://dcs.eu-de.otc.t-systems.com", "eu-de")]),
        (
            "eu-de:p1, eu-nl:p2",
            "https://dcs.{region}.example.com/",
            [
                Project("p1", "https://dcs.eu-de.example.com", "eu-de"),
                Project("p2", "https://dcs.eu-nl.example.com", "eu-nl"),
            ],
        ),
        (
            "p3@https://dcs.eu-nl.otc.t-systems.com/",
            None,
            [Project("p3", "https://dcs.eu-nl.otc.t-systems.com", "eu-nl")],
        ),
        ("p4@http://127.0.0.1:8080", None, [Project("p4", "http://127.0.0.1:8080", None)]),
    ],
)
def test_entries_become_projects(value: str, endpoint: str | None, expected: list[Project]) -> None:
    """REGION:PROJECT_ID takes DCS_ENDPOINT's {region} (or the OTC default); @URL its own."""
    assert list(parse_projects(value, endpoint)) == expected


@pytest.mark.parametrize(
    ("value", "endpoint", "says"),
    [
        ("p1", None, "neither REGION:PROJECT_ID nor PROJECT_ID@URL"),
        ("EU DE:p1", None, "is not a region"),
        ("eu-de:p/1", None, "is not a project ID"),
        ("p1@ftp://x", None, "must be an http(s) URL"),
        ("p1@https://evil.example.com/path?x", None, "without a path"),
        ("eu-de:p1", "https://dcs.eu-de.otc.t-systems.com", "has no {region}"),
        ("eu-de:p1,eu-de:p1", None, "listed twice"),
        (" , ", None, "names no project"),
    ],
)
def test_bad_entries_are_named_with_an_example(value: str, endpoint: str | None, says: str) -> None:
    """Each bad entry gets its reason, and the message shows the two accepted forms."""
    with pytest.raises(ValueError, match="REGION:PROJECT_ID") as caught:
        parse_projects(value, endpoint)
    assert says in str(caught.value)


def test_settings_need_no_endpoint_or_project_id_with_dcs_projects() -> None:
    """DCS_PROJECTS replaces DCS_ENDPOINT and DCS_PROJECT_ID for every command."""
    settings = load_settings({**BASE, "DCS_PROJECTS": "eu-de:p1,eu-nl:p2"})
    assert settings.problems_for("poll") == []
    assert [p.region for p in settings.projects] == ["eu-de", "eu-nl"]


def test_a_bad_dcs_projects_is_one_line_naming_the_variable() -> None:
    """A malformed DCS_PROJECTS stops the start with a line that names it."""
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, "DCS_PROJECTS": "eu-de"})
    assert caught.value.problems[0].startswith("DCS_PROJECTS: ")


def test_an_endpoint_with_region_needs_dcs_projects() -> None:
    """DCS_ENDPOINT with {region} but no DCS_PROJECTS says what to set."""
    settings = load_settings(
        {**BASE, "DCS_ENDPOINT": "https://dcs.{region}.otc.t-systems.com", "DCS_PROJECT_ID": "p"}
    )
    assert any(p.startswith("DCS_PROJECTS: ") for p in settings.problems_for("poll"))


def test_iam_with_region_in_the_auth_url_needs_a_region_for_each_project() -> None:
    """OS_AUTH_URL with {region} cannot serve a PROJECT_ID@URL entry without a region."""
    settings = load_settings(
        {
            **BASE,
            "DCS_PROJECTS": "eu-de:p1,p2@http://127.0.0.1:1",
            "OS_AUTH_URL": "https://iam.{region}.otc.t-systems.com/v3",
            "OS_USERNAME": "u",
            "OS_PASSWORD": "pw",
        }
    )
    problems = settings.problems_for("poll")
    assert any(p.startswith("OS_AUTH_URL: ") and "p2" in p for p in problems)
