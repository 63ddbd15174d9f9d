"""Configuration: every variable of INTERFACE.md, validated once into one typed settings object.

Only the wiring (``bot.cli``) hands the environment in; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.dcs.projects import REGION_PLACEHOLDER, Project, parse_projects

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

Command = Literal["serve", "poll", "poll-dry-run", "tasks", "check"]

# What to show the operator for each variable: an example of a good value.
EXAMPLES: dict[str, str] = {
    "SLACK_BOT_TOKEN": "xoxb-1234-5678-abcdef",
    "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
    "SLACK_APP_TOKEN": "xapp-1-A0123-4567-abcdef",
    "SLACK_API_URL": "https://slack.com/api/",
    "DCS_ALERT_CHANNEL": "C0123456789",
    "DCS_ENDPOINT": "https://dcs.eu-de.otc.t-systems.com",
    "DCS_PROJECT_ID": "0123456789abcdef0123456789abcdef",
    "DCS_PROJECTS": "eu-de:0123456789abcdef0123456789abcdef,eu-nl:fedcba9876543210fedcba9876543210",
    "DCS_INSTANCES": "cache-prod,5560df16-cebf-4473-95c4-d1b573c16e79",
    "DCS_POLL_INTERVAL": "60",
    "DCS_LOOKBACK": "24h",
    "DCS_DIGEST_THRESHOLD": "10",
    "DCS_RETENTION": "30d",
    "DCS_STUCK_AFTER": "30m",
    "DCS_REPORT_SCHEDULE": "0 8 * * MON",
    "DCS_ALLOWED_CHANNELS": "C0123456789,C0987654321",
    "DCS_ALLOWED_USERS": "U0123456789,U0987654321",
    "DCS_ADMIN_USERS": "U0123456789",
    "STATE_PATH": "./dcs-tasks-bot.sqlite",
    "DATABASE_URL": "postgres://user:password@host:5432/dbname",
    "PORT": "3000",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "json",
    "OS_AUTH_URL": "https://iam.eu-de.otc.t-systems.com/v3",
}


class ConfigError(Exception):
    """The configuration has problems; ``problems`` holds one readable line for each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


#: The longest sane value of each duration setting (a bigger one asks DCS for months of tasks
#: every cycle, or keeps the store growing for years).
MAX_DURATIONS: dict[str, timedelta] = {
    "lookback": timedelta(days=30),
    "retention": timedelta(days=365),
}


def parse_duration(value: str, *, at_most: timedelta | None = None) -> timedelta:
    """Parse ``90m``, ``24h``, ``7d``, ``2w``, ``30s`` or bare seconds into a timedelta,
    refusing anything longer than ``at_most``."""
    match = _DURATION.match(value)
    if not match or int(match.group(1)) <= 0:
        raise ValueError("must be a duration such as 90m, 24h or 7d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if at_most is not None and seconds > at_most.total_seconds():
        raise ValueError(f"must be at most {_short_duration(at_most)}")
    return timedelta(seconds=seconds)


def _short_duration(value: timedelta) -> str:
    days, seconds = value.days, value.seconds
    if not seconds:
        return f"{days}d"
    return f"{int(value.total_seconds() // 60)}m"


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


CsvList = tuple[str, ...]


def _env(*names: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(*names))


class Settings(BaseModel):
    """The validated configuration of one process, from the mapping it is given and nothing
    else (a plain model, not pydantic-settings: the process environment never leaks in)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=False)

    slack_bot_token: SecretStr | None = _env("SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = _env("SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = _env("SLACK_APP_TOKEN")
    slack_api_url: str = Field(
        default="https://slack.com/api/", validation_alias=AliasChoices("SLACK_API_URL")
    )
    alert_channel: str | None = _env("DCS_ALERT_CHANNEL")

    dcs_endpoint: str | None = _env("DCS_ENDPOINT")
    project_id: str | None = _env("DCS_PROJECT_ID")
    dcs_projects: tuple[Project, ...] = Field(
        default=(), validation_alias=AliasChoices("DCS_PROJECTS")
    )
    instances: CsvList = Field(default=(), validation_alias=AliasChoices("DCS_INSTANCES"))
    poll_interval: int = Field(
        default=60, ge=1, le=86400, validation_alias=AliasChoices("DCS_POLL_INTERVAL")
    )
    lookback: timedelta = Field(
        default=timedelta(hours=24), validation_alias=AliasChoices("DCS_LOOKBACK")
    )
    digest_threshold: int = Field(
        default=10, ge=1, validation_alias=AliasChoices("DCS_DIGEST_THRESHOLD")
    )
    retention: timedelta = Field(
        default=timedelta(days=30), validation_alias=AliasChoices("DCS_RETENTION")
    )
    stuck_after: timedelta = Field(
        default=timedelta(minutes=30), validation_alias=AliasChoices("DCS_STUCK_AFTER")
    )
    report_schedule: str | None = _env("DCS_REPORT_SCHEDULE")
    allowed_channels: CsvList = Field(
        default=(), validation_alias=AliasChoices("DCS_ALLOWED_CHANNELS")
    )
    allowed_users: CsvList = Field(default=(), validation_alias=AliasChoices("DCS_ALLOWED_USERS"))
    admin_users: CsvList = Field(default=(), validation_alias=AliasChoices("DCS_ADMIN_USERS"))

    state_path: Path = Field(
        default=Path("./dcs-tasks-bot.sqlite"), validation_alias=AliasChoices("STATE_PATH")
    )
    database_url: SecretStr | None = _env("DATABASE_URL")
    port: int = Field(default=3000, ge=1, le=65535, validation_alias=AliasChoices("PORT"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", validation_alias=AliasChoices("LOG_LEVEL")
    )
    log_format: Literal["text", "json"] = Field(
        default="text", validation_alias=AliasChoices("LOG_FORMAT")
    )

    # DCS authentication, in order of precedence: AK/SK, IAM password, ready token.
    access_key: SecretStr | None = _env("DCS_ACCESS_KEY", "HUAWEICLOUD_SDK_AK")
    secret_key: SecretStr | None = _env("DCS_SECRET_KEY", "HUAWEICLOUD_SDK_SK")
    os_auth_url: str | None = _env("OS_AUTH_URL")
    os_username: str | None = _env("OS_USERNAME")
    os_password: SecretStr | None = _env("OS_PASSWORD")
    os_user_domain_name: str | None = _env("OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME")
    os_project_id: str | None = _env("OS_PROJECT_ID")
    os_project_name: str | None = _env("OS_PROJECT_NAME")
    auth_token: SecretStr | None = _env("DCS_AUTH_TOKEN")

    @field_validator("instances", "allowed_channels", "allowed_users", "admin_users", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        parts = _split(value)
        return () if parts == ("*",) else parts

    @field_validator("lookback", "retention", "stuck_after", mode="before")
    @classmethod
    def _duration(cls, value: object, info: ValidationInfo) -> object:
        at_most = MAX_DURATIONS.get(str(info.field_name))
        if isinstance(value, str):
            return parse_duration(value, at_most=at_most)
        if isinstance(value, timedelta) and at_most is not None and value > at_most:
            raise ValueError(f"must be at most {_short_duration(at_most)}")
        return value

    @field_validator("report_schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            CronTrigger.from_crontab(value.strip(), timezone=UTC)
        except ValueError:
            raise ValueError(
                "must be a cron expression (minute hour day month weekday, UTC)"
            ) from None
        return value.strip()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("dcs_endpoint", "slack_api_url", "os_auth_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("dcs_projects", mode="before")
    @classmethod
    def _projects(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return parse_projects(value, info.data.get("dcs_endpoint")) if value.strip() else ()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not re.match(r"^postgres(ql)?://", value.get_secret_value().strip()):
            raise ValueError("must start with postgres:// or postgresql://")
        return value

    @model_validator(mode="after")
    def _project_fallback(self) -> Settings:
        # DCS_PROJECT_ID falls back to OS_PROJECT_ID (one env var cannot feed two fields).
        if not self.project_id and self.os_project_id:
            object.__setattr__(self, "project_id", self.os_project_id)
        return self

    @property
    def dcs_auth_mode(self) -> Literal["aksk", "iam", "token"] | None:
        """Which DCS credentials are configured, by precedence."""
        if self.access_key and self.secret_key:
            return "aksk"
        if self.os_auth_url and self.os_username and self.os_password:
            return "iam"
        if self.auth_token:
            return "token"
        return None

    @property
    def projects(self) -> tuple[Project, ...]:
        """The watched projects: DCS_PROJECTS, else DCS_ENDPOINT with DCS_PROJECT_ID."""
        if self.dcs_projects:
            return self.dcs_projects
        if self.dcs_endpoint and self.project_id and REGION_PLACEHOLDER not in self.dcs_endpoint:
            return (Project(self.project_id, self.dcs_endpoint.rstrip("/")),)
        return ()

    @property
    def socket_mode(self) -> bool:
        """True when ``serve`` should use Socket Mode (SLACK_APP_TOKEN set)."""
        return self.slack_app_token is not None

    def problems_for(self, command: Command) -> list[str]:
        """What is missing for ``command``: one line per problem, empty when it can run."""
        needs: list[str] = []
        if command in ("serve", "poll", "tasks", "check", "poll-dry-run") and not self.dcs_projects:
            needs += ["DCS_ENDPOINT", "DCS_PROJECT_ID"]
        if command in ("serve", "poll", "check"):
            needs += ["SLACK_BOT_TOKEN", "DCS_ALERT_CHANNEL"]
        if command == "serve" and not self.socket_mode:
            needs.append("SLACK_SIGNING_SECRET")
        present = {
            "DCS_ENDPOINT": self.dcs_endpoint,
            "DCS_PROJECT_ID": self.project_id,
            "SLACK_BOT_TOKEN": self.slack_bot_token,
            "DCS_ALERT_CHANNEL": self.alert_channel,
            "SLACK_SIGNING_SECRET": self.slack_signing_secret,
        }
        problems = [
            f"{name}: is required for `{command.split('-')[0]}`, e.g. {name}={EXAMPLES[name]}"
            for name in needs
            if not present[name]
        ]
        endpoint = self.dcs_endpoint or ""
        if not self.dcs_projects and REGION_PLACEHOLDER in endpoint:
            problems.append(
                "DCS_PROJECTS: DCS_ENDPOINT holds {region}, so name the projects, e.g. "
                f"DCS_PROJECTS={EXAMPLES['DCS_PROJECTS']}"
            )
        auth_url = self.os_auth_url or ""
        if self.dcs_auth_mode == "iam" and REGION_PLACEHOLDER in auth_url:
            for project in self.projects:
                if project.region is None:
                    problems.append(
                        f"OS_AUTH_URL: holds {{region}}, but the project {project.project_id} "
                        f"at {project.endpoint} has no region; use REGION:PROJECT_ID"
                    )
        if command != "check" and needs and self.dcs_auth_mode is None:
            problems.append(
                "DCS credentials: none are set; set DCS_ACCESS_KEY and DCS_SECRET_KEY "
                "(or OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_USER_DOMAIN_NAME, or DCS_AUTH_TOKEN)"
            )
        scoped = self.os_project_id or self.os_project_name or self.project_id or self.dcs_projects
        if self.dcs_auth_mode == "iam" and not scoped:
            problems.append(
                "OS_PROJECT_ID: IAM login needs a project scope, e.g. OS_PROJECT_ID="
                f"{EXAMPLES['DCS_PROJECT_ID']} (or OS_PROJECT_NAME=eu-de)"
            )
        return problems


_SECRET_FIELDS = {
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "DATABASE_URL",
    "DCS_SECRET_KEY",
    "HUAWEICLOUD_SDK_SK",
    "OS_PASSWORD",
    "DCS_AUTH_TOKEN",
}


def _alias_of(loc: tuple[int | str, ...]) -> str:
    name = str(loc[0]) if loc else "configuration"
    field = Settings.model_fields.get(name)
    if field is not None and isinstance(field.validation_alias, AliasChoices):
        return str(field.validation_alias.choices[0])
    return name


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Validate ``environ`` into Settings, or raise ConfigError with one line per problem."""
    values = {key: value for key, value in environ.items() if value != ""}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = _alias_of(error["loc"])
            reason = str(error["msg"]).removeprefix("Value error, ")
            given = "" if name in _SECRET_FIELDS else f" (got {str(error.get('input'))[:40]!r})"
            example = f", e.g. {name}={EXAMPLES[name]}" if name in EXAMPLES else ""
            problems.append(f"{name}: {reason}{given}{example}")
        raise ConfigError(problems) from None
