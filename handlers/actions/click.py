"""What a click on an alert's button says: who clicked, where, and which task it is about."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.dcs.ids import is_dcs_id


@dataclass(frozen=True, slots=True)
class ButtonClick:
    """One ``task_refresh``/``task_details`` click; ``message_ts`` is None on an ephemeral one."""

    user_id: str
    channel_id: str
    message_ts: str | None
    instance_id: str
    task_id: str


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _get(data: object, key: str) -> Any:
    return data.get(key) if isinstance(data, Mapping) else None


def read_click(body: Mapping[str, Any]) -> ButtonClick | None:
    """The click in a ``block_actions`` payload; None when it is not one of our buttons, or
    its instance or task ID is not shaped like a DCS ID."""
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions:
        return None
    try:
        value = json.loads(_get(actions[0], "value") or "")
    except (TypeError, ValueError):
        return None
    instance_id, task_id = _text(_get(value, "instance_id")), _text(_get(value, "task_id"))
    user_id = _text(_get(body.get("user"), "id"))
    channel_id = _text(_get(body.get("channel"), "id")) or _text(
        _get(body.get("container"), "channel_id")
    )
    if not (instance_id and task_id and user_id and channel_id):
        return None
    if not (is_dcs_id(instance_id) and is_dcs_id(task_id)):
        return None  # forged: a value that is no DCS ID never reaches a URL
    message_ts = _text(_get(body.get("message"), "ts")) or _text(
        _get(body.get("container"), "message_ts")
    )
    if _get(body.get("container"), "is_ephemeral") is True:
        message_ts = None
    return ButtonClick(user_id, channel_id, message_ts, instance_id, task_id)
