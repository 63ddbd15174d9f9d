"""Tests for the deploy files at the root: Procfile, Dockerfile, .dockerignore, app.json and
manifest.yml stay consistent with each other, with the lock and with their hosts' schemas.

No Docker daemon and no network here: the files are read and checked against what each host
needs (the schemas' required keys and limits are copied from the published schemas, cited)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
#: What the image needs from the build context (pyproject names README.md as the readme).
BUILD_INPUTS = [
    "pyproject.toml",
    "uv.lock",
    ".python-version",
    "README.md",
    "bot",
    "handlers",
    "state",
]
#: Set by the platform (PORT by the router, DATABASE_URL by the Postgres add-on): declaring them
#: in app.json would clash with the add-on's own config var.
PLATFORM_VARS = {"PORT", "DATABASE_URL"}
SECRET_VARIABLES = {
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "DCS_SECRET_KEY",
    "OS_PASSWORD",
    "DCS_AUTH_TOKEN",
}


def procfile() -> dict[str, str]:
    """The Procfile's process types and their commands."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    pairs = [line.split(":", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {kind.strip(): command.strip() for kind, command in pairs}


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def instructions(name: str) -> list[str]:
    """The arguments of every ``name`` instruction, in order."""
    return [rest for word, rest in dockerfile() if word == name]


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage (from its FROM on)."""
    steps = dockerfile()
    start = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[start:]


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (a top-level file or folder) out of the context."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").removeprefix("**/")
        if fnmatch.fnmatch(path, pattern):
            ignored = not negate
    return ignored


# --- Procfile ------------------------------------------------------------------------------------


def test_procfile_web_line_is_serve_through_python_m_bot() -> None:
    """``python -m bot``: works whether or not the buildpack installed the project itself."""
    assert procfile() == {"web": "python -m bot serve"}


def test_procfile_web_line_runs_from_the_source_tree(tmp_path: Path) -> None:
    """The web line's program and arguments start the real command line from the app's root."""
    argv = shlex.split(procfile()["web"])
    assert argv[0] == "python"
    result = subprocess.run(
        [sys.executable, *argv[1:], "--help"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: dcs-tasks-bot serve" in result.stdout


# --- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_cmd_is_the_procfile_web_line() -> None:
    cmd = instructions("CMD")[-1]
    assert json.loads(cmd) == shlex.split(procfile()["web"])


def test_dockerfile_installs_from_the_lock_without_dev_tools() -> None:
    syncs = [run for run in instructions("RUN") if "uv sync" in run]
    assert syncs
    for run in syncs:
        assert "--locked" in run
        assert "--no-dev" in run
    assert not any(re.search(r"\bpip install\b", run) for run in instructions("RUN"))


def test_dockerfile_python_matches_python_version_and_uv_the_makefile_bound() -> None:
    wanted = (ROOT / ".python-version").read_text().strip()
    bases = [re.match(r"(\S+)", f).group(1) for f in instructions("FROM")]  # type: ignore[union-attr]
    assert bases
    assert all(base.startswith(f"python:{wanted}") for base in bases), bases
    copied = " ".join(instructions("COPY"))
    uv = re.search(r"ghcr\.io/astral-sh/uv:(\d+)\.(\d+)", copied)
    assert uv is not None, "uv comes from its official image"
    spec = re.search(r"UV_SPEC := uv>=(\d+)\.(\d+),<(\d+)\.(\d+)", (ROOT / "Makefile").read_text())
    assert spec is not None
    low = (int(spec[1]), int(spec[2]))
    high = (int(spec[3]), int(spec[4]))
    assert low <= (int(uv[1]), int(uv[2])) < high


def test_dockerfile_runs_as_an_unprivileged_user_and_honours_port() -> None:
    final = final_stage()
    users = [rest for word, rest in final if word == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    run_as = [i for i, (word, _) in enumerate(final) if word == "USER"][-1]
    cmd_at = [i for i, (word, _) in enumerate(final) if word == "CMD"][-1]
    assert run_as < cmd_at
    # PORT is only a default the platform overrides; the bot reads it (bot.config).
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert re.search(r"\bPORT=3000\b", env)
    assert Settings.model_fields["port"].default == 3000


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    for copy in instructions("COPY"):
        if copy.startswith("--from"):
            continue
        *sources, _target = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not dockerignored(source), f"{source} is copied but .dockerignore drops it"
    for needed in BUILD_INPUTS:
        assert not dockerignored(needed), needed


def test_dockerignore_keeps_local_state_and_virtualenvs_out() -> None:
    for path in (".git", ".venv", ".venv-uv", "dcs-tasks-bot.sqlite", "__pycache__", "tests"):
        assert dockerignored(path), path


def test_lock_matches_pyproject_and_python_version() -> None:
    """The buildpacks' ``uv sync --locked`` needs uv.lock for this very project."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    names = {package["name"] for package in lock["package"]}
    assert project["name"] in names
    wanted = (ROOT / ".python-version").read_text().strip()
    low = re.match(r">=(\d+\.\d+)", project["requires-python"])
    assert low is not None
    assert tuple(map(int, wanted.split("."))) >= tuple(map(int, low[1].split(".")))
    assert lock["requires-python"] == project["requires-python"]


# --- app.json (https://devcenter.heroku.com/articles/app-json-schema) ---------------------------

#: Top-level keys of the app.json schema (additionalProperties: false).
APP_JSON_KEYS = {
    "name", "description", "keywords", "website", "repository", "logo", "success_url",
    "scripts", "env", "formation", "image", "addons", "buildpacks", "environments", "stack",
}  # fmt: skip


def app_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "app.json").read_text())
    return data


def setting_names() -> set[str]:
    """The main environment name of every setting."""
    names = set()
    for field in Settings.model_fields.values():
        assert isinstance(field.validation_alias, AliasChoices)
        names.add(str(field.validation_alias.choices[0]))
    return names


def test_app_json_keys_and_limits() -> None:
    app = app_json()
    assert set(app) <= APP_JSON_KEYS
    assert 3 <= len(app["name"]) <= 30
    assert 0 < len(app["description"]) <= 140
    assert all(isinstance(k, str) and k for k in app["keywords"])
    for key in ("repository", "website"):
        assert re.match(r"^https://", app[key])
    assert app["success_url"].startswith("/")


def test_app_json_runs_the_web_process_with_postgres() -> None:
    app = app_json()
    assert set(app["formation"]) == set(procfile())
    for process in app["formation"].values():
        assert isinstance(process["quantity"], int)
        assert process["quantity"] >= 1
        assert process["size"]
    plans = [a["plan"] if isinstance(a, dict) else a for a in app["addons"]]
    assert any(plan.startswith("heroku-postgresql") for plan in plans)
    assert app["buildpacks"] == [{"url": "heroku/python"}]


def test_app_json_describes_every_setting_and_whether_it_is_required() -> None:
    env = app_json()["env"]
    assert set(env) == setting_names() - PLATFORM_VARS
    for name, var in env.items():
        assert re.match(r"^[A-Z][A-Z0-9_]*$", name)
        assert set(var) <= {"description", "value", "required", "generator"}, name
        assert var["description"].strip(), name
        assert isinstance(var["required"], bool), name
        if "value" in var:
            assert isinstance(var["value"], str), name
    for secret in SECRET_VARIABLES:
        assert "value" not in env[secret], f"{secret} must not be pre-filled"


def test_app_json_requires_what_serve_requires() -> None:
    """Exactly the variables ``serve`` (HTTP mode) cannot start without are required."""
    env = app_json()["env"]
    required = {name for name, var in env.items() if var["required"]}
    problems = Settings.model_validate({}).problems_for("serve")
    named = {line.split(":")[0] for line in problems if re.match(r"^[A-Z_]+:", line)}
    assert required == named


def test_app_json_defaults_are_the_settings_defaults() -> None:
    env = app_json()["env"]
    defaults = Settings.model_validate({k: v["value"] for k, v in env.items() if "value" in v})
    assert defaults == Settings.model_validate({})


# --- manifest.yml (https://github.com/slackapi/manifest-schema, schema 1.0.0) -------------------


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text())
    return data


def test_manifest_required_keys_and_limits() -> None:
    m = manifest()
    assert m["_metadata"]["major_version"] == 1
    info = m["display_information"]
    assert 1 <= len(info["name"]) <= 35
    assert 1 <= len(info.get("description", "x")) <= 140
    if "long_description" in info:
        assert 175 <= len(info["long_description"]) <= 4000
    assert re.match(r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$", info["background_color"])
    assert 1 <= len(m["features"]["bot_user"]["display_name"]) <= 80
    commands = m["features"]["slash_commands"]
    assert 1 <= len(commands) <= 50
    for command in commands:
        assert re.match(r"^/", command["command"])
        assert 2 <= len(command["command"]) <= 32
        assert 1 <= len(command["description"]) <= 2000
        assert 1 <= len(command.get("usage_hint", "x")) <= 1000
        assert re.match(r"^https?://", command["url"])
        assert len(command["url"]) <= 3000
    for scope in m["oauth_config"]["scopes"]["bot"]:
        assert len(scope) <= 50
    interactivity = m["settings"]["interactivity"]
    assert re.match(r"^https?://", interactivity["request_url"])


def test_manifest_urls_point_at_slack_events_of_the_explained_placeholder_host() -> None:
    m = manifest()
    urls = [c["url"] for c in m["features"]["slash_commands"]]
    urls.append(m["settings"]["interactivity"]["request_url"])
    hosts = {re.match(r"^https://([^/]+)/slack/events$", url)[1] for url in urls}  # type: ignore[index]
    assert len(hosts) == 1
    (host,) = hosts
    comments = "".join(
        line for line in (ROOT / "manifest.yml").read_text().splitlines() if line.startswith("#")
    )
    assert host in comments, "the header says what to replace the placeholder with"


def test_manifest_declares_the_command_http_mode_and_only_the_needed_scopes() -> None:
    """/dcs-tasks and interactivity on one URL, HTTP mode, and the bot scopes commands and
    chat:write only; the bot user is the name of ``/invite @dcs-tasks-bot``."""
    m = manifest()
    (command,) = m["features"]["slash_commands"]
    assert command["command"] == "/dcs-tasks"
    assert command["usage_hint"].startswith("help | list [INSTANCE]")
    assert m["settings"]["interactivity"] == {"is_enabled": True, "request_url": command["url"]}
    assert m["settings"]["socket_mode_enabled"] is False
    assert m["oauth_config"]["scopes"] == {"bot": ["commands", "chat:write"]}
    assert m["features"]["bot_user"]["display_name"] == "dcs-tasks-bot"


@pytest.mark.parametrize("host", ["Heroku", "Dokku", "Scalingo", "Render", "Railway", "Fly"])
def test_readme_says_how_each_host_deploys(host: str) -> None:
    deploying = (ROOT / "README.md").read_text().split("## Deploying", 1)[1].split("\n## ", 1)[0]
    assert host in deploying
