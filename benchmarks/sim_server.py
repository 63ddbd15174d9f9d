"""The DCS simulator as a process of its own, so that the client and the server measured by a
benchmark do not share a GIL.

Protocol: JSON, one object per line. The first line on stdin is the configuration::

    {"instances": N, "tasks": M, "latency": s, "project_id": ..., "access_key": ...,
     "secret_key": ..., "status": "SUCCESS", "listen_backlog": null}

The process seeds N instances with M tasks each, serves on a free loopback port and prints
``{"url": ..., "instances": [ids]}``. Each further line is a command, answered by one line:

- ``{"cmd": "requests"}`` → ``{"count": n, "cpu": s, "throttled": n}``: requests since the last
  ``clear``, the CPU seconds of this process, and the 429s sent since the last ``clear``;
- ``{"cmd": "capacity", "max_in_flight": n}``: answer 429 beyond ``n`` requests at once (null:
  no limit);
- ``{"cmd": "clear"}``; ``{"cmd": "latency", "seconds": s}``;
- ``{"cmd": "add_tasks", "instances": [...], "status": s}`` → ``{"ids": [...]}``;
- ``{"cmd": "set_status", "tasks": [...], "status": s}``;
- ``{"cmd": "stop"}``, or the end of input: stop serving and exit.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from typing import Any

from bot.testing import simulator
from bot.testing.simulator import DcsSimulator


def _reply(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main() -> int:
    """Seed, serve, and answer commands until ``stop`` or end of input."""
    config = json.loads(sys.stdin.readline())
    backlog = config.get("listen_backlog")
    if backlog:
        # socketserver listens with a backlog of 5: a burst of new connections overflows it and
        # the kernel drops their handshakes (1 s retransmits). A real API gateway has a deep one.
        simulator._Server.request_queue_size = int(backlog)
    sim = DcsSimulator(
        project_id=config.get("project_id", "bench-project"),
        access_key=config.get("access_key"),
        secret_key=config.get("secret_key"),
        latency=float(config.get("latency", 0.0)),
        task_count_as_number=False,
    )
    ids = []
    for i in range(int(config["instances"])):
        iid = sim.add_instance(f"cache-{i:04d}")
        sim.add_tasks_bulk(
            iid,
            int(config.get("tasks", 0)),
            status=config.get("status", "SUCCESS"),
            step=timedelta(seconds=float(config.get("step", 10.0))),
        )
        ids.append(iid)
    url = sim.start()
    _reply({"url": url, "instances": ids})
    try:
        for line in sys.stdin:
            command = json.loads(line)
            cmd = command["cmd"]
            if cmd == "stop":
                _reply({})
                break
            if cmd == "requests":
                _reply(
                    {
                        "count": len(sim.requests),
                        "cpu": time.process_time(),
                        "throttled": sim.throttled,
                    }
                )
            elif cmd == "latency":
                sim.latency = float(command["seconds"])
                _reply({})
            elif cmd == "faults":
                sim.set_fault_rate(float(command["rate"]), list(command["kinds"]))
                _reply({})
            elif cmd == "capacity":
                sim.max_in_flight = command["max_in_flight"]
                _reply({})
            elif cmd == "clear":
                sim.clear_requests()
                _reply({})
            elif cmd == "add_tasks":
                status = command.get("status", "EXECUTING")
                new = [sim.add_task(iid, "EXTEND", status) for iid in command["instances"]]
                _reply({"ids": new})
            elif cmd == "set_status":
                for task_id in command["tasks"]:
                    sim.set_status(task_id, command["status"])
                _reply({})
            else:
                _reply({"error": f"unknown command {cmd!r}"})
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
