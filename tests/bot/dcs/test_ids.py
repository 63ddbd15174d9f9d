"""Tests for bot.dcs.ids: only DCS-shaped IDs may go into a DCS URL."""

from __future__ import annotations

import httpx
import pytest

from bot.dcs.client import DcsClient
from bot.dcs.errors import DcsError, DcsInvalidIdError
from bot.dcs.ids import checked_id, is_dcs_id
from bot.testing.simulator import DcsSimulator
from tests.conftest import DCS_TOKEN

FORGED = [
    "../../v2/other-project/instances",
    "i-1/../x",
    "i-1?limit=1",
    "i-1#x",
    "i-1%2F..",
    "i 1",
    "",
    "-leading-dash",
    "x" * 65,
    "é-unicode",
]


@pytest.mark.parametrize(
    "value",
    ["5560df16-cebf-4473-95c4-d1b573c16e79", "ff80808186a1d6f10186a2e9d6e3001e", "a"],
)
def test_dcs_ids_pass(value: str) -> None:
    """UUIDs and hex task IDs are DCS IDs."""
    assert is_dcs_id(value)
    assert checked_id(value, "instance ID") == value


@pytest.mark.parametrize("value", [*FORGED, None, 5])
def test_anything_else_is_refused(value: object) -> None:
    """Path separators, queries, escapes, spaces, empty or overlong values are no DCS IDs."""
    assert not is_dcs_id(value)


@pytest.mark.parametrize("value", FORGED)
def test_the_client_refuses_a_forged_instance_id_before_sending(
    simulator: DcsSimulator, value: str
) -> None:
    """list_tasks with a forged instance ID raises a DcsError and sends nothing."""
    with httpx.Client(base_url=simulator.url, headers={"X-Auth-Token": DCS_TOKEN}) as http:
        client = DcsClient(http, simulator.project_id, sleep=lambda _: None)
        with pytest.raises(DcsInvalidIdError, match="nothing was sent") as raised:
            client.list_tasks(value)
    assert isinstance(raised.value, DcsError)
    assert simulator.requests == []
