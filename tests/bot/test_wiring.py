"""Tests for bot.wiring: the parts chosen from the settings, and the Slack side built on the
same parts as the poller."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.dcs.auth import AkSkAuth, IamTokenAuth, TokenAuth
from bot.wiring import dcs_auth, handler_deps, make_http_client, open_state
from state.sqlite import SqliteStore
from tests.conftest import Harness

BASE_ENV = {"DCS_ENDPOINT": "https://dcs.example.com", "DCS_PROJECT_ID": "dcs-project"}
AKSK_ENV = {"DCS_ACCESS_KEY": "AK", "DCS_SECRET_KEY": "SK-secret"}
IAM_ENV = {
    "OS_AUTH_URL": "https://iam.example.com/v3",
    "OS_USERNAME": "alice",
    "OS_PASSWORD": "iam-password",
    "OS_USER_DOMAIN_NAME": "d",
}
TOKEN_ENV = {"DCS_AUTH_TOKEN": "ready-token-value"}


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({**AKSK_ENV, **IAM_ENV, **TOKEN_ENV}, AkSkAuth),
        ({"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "SK"}, AkSkAuth),
        ({**IAM_ENV, **TOKEN_ENV}, IamTokenAuth),
        (TOKEN_ENV, TokenAuth),
        ({"DCS_ACCESS_KEY": "AK-without-SK"}, type(None)),
        ({}, type(None)),
    ],
)
def test_dcs_auth_picks_by_precedence(env: dict[str, str], kind: type) -> None:
    """AK/SK wins over the IAM password, which wins over a ready token; nothing set gives None."""
    assert type(dcs_auth(load_settings({**BASE_ENV, **env}))) is kind


@pytest.mark.parametrize(
    ("env", "project_id", "project_name"),
    [
        ({}, "dcs-project", None),
        ({"OS_PROJECT_ID": "os-project"}, "os-project", None),
        ({"DCS_PROJECT_ID": "", "OS_PROJECT_ID": "os-project"}, "os-project", None),
        ({"OS_PROJECT_NAME": "eu-de"}, None, "eu-de"),
    ],
)
def test_dcs_auth_iam_scope(
    env: dict[str, str], project_id: str | None, project_name: str | None
) -> None:
    """The IAM scope is OS_PROJECT_ID, else OS_PROJECT_NAME, else the DCS project."""
    auth = dcs_auth(load_settings({**BASE_ENV, **IAM_ENV, **env}))
    assert isinstance(auth, IamTokenAuth)
    assert (auth.project_id, auth.project_name) == (project_id, project_name)


def test_without_database_url_the_state_is_the_sqlite_file(tmp_path: Path) -> None:
    """No DATABASE_URL: the store is SQLite at STATE_PATH."""
    path = tmp_path / "state.sqlite"
    store = open_state(load_settings({"STATE_PATH": str(path)}))
    try:
        assert isinstance(store, SqliteStore)
        assert path.exists()
    finally:
        store.close()


def test_a_dcs_client_needs_an_endpoint() -> None:
    """Without DCS_ENDPOINT the HTTP client is refused with a line naming the variable."""
    with pytest.raises(ConfigError, match="DCS_ENDPOINT"):
        make_http_client(load_settings({}))


def test_handlers_read_the_instances_the_poller_resolved(harness: Harness) -> None:
    """The handlers' instance list is the poller's: after a cycle, reading it asks DCS nothing."""
    harness.cycle()
    listed = sum(1 for r in harness.sim.requests if r.path.endswith("/instances"))

    deps = handler_deps(harness.parts)

    assert [i.name for i in deps.watched()] == ["cache-prod"]
    assert deps.store is harness.parts.store
    assert sum(1 for r in harness.sim.requests if r.path.endswith("/instances")) == listed
