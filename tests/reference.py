"""Test data from the DCS API reference page "Listing Background Tasks"."""

from __future__ import annotations

from typing import Any

#: The example task of the reference's example response, as DCS documents it.
REFERENCE_TASK: dict[str, Any] = {
    "id": "8abf6e1e72c12e7c0172c15b508500aa",
    "name": "EXTEND",
    "user_name": "dcs_000_02",
    "user_id": "d53977d1adfb49c5b025ba7d33a13fd7",
    "details": {
        "old_cache_mode": "single",
        "new_cache_mode": "single",
        "old_capacity": "0.125",
        "new_capacity": "0.25",
        "old_resource_spec_code": "redis.single.xu1.tiny.125",
        "new_resource_spec_code": "redis.single.xu1.tiny.256",
        "old_replica_num": 1,
        "new_replica_num": 1,
        "old_cache_type": "single",
        "new_cache_type": "single",
        "replica_ip": "192.192.0.1",
        "replica_az": "az01",
        "group_name": "group1",
        "old_port": 6379,
        "new_port": 6379,
        "is_only_adjust_charging": False,
        "account_name": "account1",
        "source_ip": "192.192.0.0",
        "target_ip": "192.192.0.1",
        "node_name": "node1",
        "rename_commands": [],
        "updated_config_length": 0,
    },
    "enable_show": False,
    "status": "SUCCESS",
    "created_at": "2020-06-17T08:18:06.597Z",
    "updated_at": "2020-06-17T08:18:10.106Z",
}
