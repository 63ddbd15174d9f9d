"""Typed, frozen records for what DCS returns: instances, background tasks and their details.

This is the boundary where DCS JSON becomes data the bot keeps: every string is made storable
here, once (no NUL, no lone surrogate: PostgreSQL refuses both), non-finite numbers become null,
and a record nested deeper than :data:`MAX_DEPTH` or a task without a usable ``id`` or ``status``
is malformed (:class:`~bot.dcs.errors.DcsBadResponseError`), so both stores get clean data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from bot.dcs.errors import DcsBadResponseError

#: Statuses after which a task never changes again (DCS treats the set as open).
FINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "CANCELLED", "CANCELED", "DELETED"})


def is_final(status: str) -> bool:
    """True when ``status`` ends a task."""
    return status.upper() in FINAL_STATUSES


def parse_time(value: object) -> datetime | None:
    """Parse a DCS timestamp such as ``2020-06-17T07:38:42.503Z``; anything else gives None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


#: How deeply a task or instance object may nest (the documented ones nest two levels).
MAX_DEPTH = 16


def storable(text: str) -> str:
    """``text`` as both stores accept it: NUL characters removed, lone surrogates replaced."""
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def storable_json(value: object, depth: int = 0) -> Any:
    """A JSON value with every string (keys too) :func:`storable` and non-finite numbers as null.

    Raises DcsBadResponseError when it nests deeper than :data:`MAX_DEPTH`.
    """
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        raise DcsBadResponseError(f"a record in the DCS answer nests deeper than {MAX_DEPTH}")
    if isinstance(value, Mapping):
        return {storable(str(k)): storable_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v, depth + 1) for v in value]
    return storable(str(value))


def _str(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return storable(str(value))


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return None


@dataclass(frozen=True, slots=True)
class TaskDetails:
    """The DetailsBody of a task: every field optional, as DCS fills only the relevant ones."""

    old_capacity: str | None = None
    new_capacity: str | None = None
    enable_public_ip: bool | None = None
    public_ip_id: str | None = None
    public_ip_address: str | None = None
    enable_ssl: bool | None = None
    old_cache_mode: str | None = None
    new_cache_mode: str | None = None
    old_resource_spec_code: str | None = None
    new_resource_spec_code: str | None = None
    old_replica_num: int | None = None
    new_replica_num: int | None = None
    old_cache_type: str | None = None
    new_cache_type: str | None = None
    replica_ip: str | None = None
    replica_az: str | None = None
    group_name: str | None = None
    old_port: int | None = None
    new_port: int | None = None
    is_only_adjust_charging: bool | None = None
    account_name: str | None = None
    source_ip: str | None = None
    target_ip: str | None = None
    node_name: str | None = None
    rename_commands: tuple[str, ...] | None = None
    updated_config_length: int | None = None

    @classmethod
    def from_json(cls, data: object) -> TaskDetails:
        """Build from a DetailsBody object, ignoring unknown keys and values of the wrong type."""
        if not isinstance(data, Mapping):
            return cls()
        return cls(**{name: convert(data.get(name)) for name, convert in _DETAIL_CONVERTERS})

    def present(self) -> dict[str, Any]:
        """The fields that have a value, in declaration order."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value != ():
                out[f.name] = value
        return out


def _commands(raw: object) -> tuple[str, ...] | None:
    return tuple(storable(str(c)) for c in raw if c is not None) if isinstance(raw, list) else None


_CONVERTERS: dict[str, Any] = {"bool | None": _bool, "int | None": _int}
# Worked out once: a poll cycle parses tens of thousands of DetailsBody objects.
_DETAIL_CONVERTERS: tuple[tuple[str, Any], ...] = tuple(
    (f.name, _commands if f.name == "rename_commands" else _CONVERTERS.get(str(f.type), _str))
    for f in fields(TaskDetails)
)


@dataclass(frozen=True, slots=True)
class Task:
    """One SingleBackgroundTask of one instance."""

    instance_id: str
    id: str
    name: str
    status: str
    user_name: str | None = None
    user_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    enable_show: bool | None = None
    details: TaskDetails = field(default_factory=TaskDetails)
    #: The DCS object as received, without ``params`` (see ``from_json``).
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        """True when the task has ended."""
        return is_final(self.status)

    @classmethod
    def from_json(cls, instance_id: str, data: object) -> Task:
        """Build from a SingleBackgroundTask object, its strings made :func:`storable`.

        ``params`` may carry secrets (a password change): it is dropped here, the one place DCS
        JSON becomes a Task, so nothing downstream can store, show or log it.

        Malformed (DcsBadResponseError naming the task where it can): not an object, no ``id``,
        a ``status`` that is missing or not a string, nesting deeper than :data:`MAX_DEPTH`.
        """
        if not isinstance(data, Mapping):
            raise DcsBadResponseError("a task in the DCS answer is not a JSON object")
        task_id = _str(data.get("id"))
        if not task_id:
            raise DcsBadResponseError("a task in the DCS answer has no id")
        status = data.get("status")
        if not isinstance(status, str) or not storable(status).strip():
            raise DcsBadResponseError(f"task {task_id[:64]!r} has no status or a non-string one")
        try:
            clean: dict[str, Any] = storable_json(
                {key: value for key, value in data.items() if key != "params"}
            )
        except DcsBadResponseError as exc:
            raise DcsBadResponseError(f"task {task_id[:64]!r}: {exc}") from None
        return cls(
            instance_id=instance_id,
            id=task_id,
            name=_str(clean.get("name")) or "",
            status=storable(status).strip().upper(),
            user_name=_str(clean.get("user_name")),
            user_id=_str(clean.get("user_id")),
            created_at=parse_time(clean.get("created_at")),
            updated_at=parse_time(clean.get("updated_at")),
            enable_show=_bool(clean.get("enable_show")),
            details=TaskDetails.from_json(clean.get("details")),
            raw=clean,
        )

    def to_json(self) -> dict[str, Any]:
        """The DCS task object as received, with ``instance_id`` added (``tasks --json``)."""
        out = dict(self.raw)
        out["instance_id"] = self.instance_id
        return out


@dataclass(frozen=True, slots=True)
class Instance:
    """One DCS instance, as the instance list returns it."""

    instance_id: str
    name: str
    engine: str | None = None
    status: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: Set only when several projects are watched: the instance's project and its region
    #: (or, for a ``PROJECT_ID@URL`` entry without one, the endpoint's host).
    project_id: str | None = None
    region: str | None = None

    @property
    def label(self) -> str:
        """How the instance is shown: ``name (region)`` when several projects are watched."""
        return f"{self.name} ({self.region})" if self.region else self.name

    @property
    def places(self) -> tuple[str, ...]:
        """What a subscription may name besides the instance: ``region:R`` and its project."""
        out = (f"region:{self.region}",) if self.region else ()
        return out + ((self.project_id,) if self.project_id else ())

    @classmethod
    def from_json(cls, data: object) -> Instance:
        """Build from an element of ``instances[]``."""
        if not isinstance(data, Mapping):
            raise DcsBadResponseError("an instance in the DCS answer is not a JSON object")
        instance_id = _str(data.get("instance_id"))
        if not instance_id:
            raise DcsBadResponseError("an instance in the DCS answer has no instance_id")
        clean: dict[str, Any] = storable_json(data)
        return cls(
            instance_id=instance_id,
            name=_str(clean.get("name")) or instance_id,
            engine=_str(clean.get("engine")),
            status=_str(clean.get("status")),
            raw=clean,
        )
