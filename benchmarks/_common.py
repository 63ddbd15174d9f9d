"""What the benchmarks share: the simulator in a process of its own, the machine line, plain-text
tables, targets, and the ``--quick`` command line of each script."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: The interpreter of ``.venv-bench`` (the official Huawei Cloud SDK lives there, not in .venv).
BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"
PROJECT_ID = "bench-project"
# Made-up credentials that only the local simulator knows: they make the client sign every
# request (and the SDK run its real signer), so signing is part of what is measured.
ACCESS_KEY = "BENCHAK0000000000001"
SECRET_KEY = "bench-sk-known-only-to-the-local-simulator"  # noqa: S105
SLACK_TOKEN = "xoxb-bench-0000000000"  # noqa: S105 - FakeSlack's made-up token
SIGNING_SECRET = "bench-signing-secret-000000000"  # noqa: S105
ALERT_CHANNEL = "C0BENCHALERT"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pg_url() -> str:
    """The PostgreSQL the benchmarks use (``TEST_DATABASE_URL``, else the local test database)."""
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_URL)


def machine_line() -> str:
    """nproc, CPU model and Python version, for the header of every table."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"machine: {os.cpu_count()} cores ({model}), "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}"
    )


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median (the 50th percentile, nearest rank)."""
    return percentile(values, 50)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mb(n_bytes: float) -> str:
    """Bytes as megabytes with one decimal."""
    return f"{n_bytes / 1_000_000:.1f} MB"


# -- tables and targets ---------------------------------------------------------------------


@dataclass
class Table:
    """A plain-text table: the first ``left`` columns left-aligned, the others right-aligned."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    left: int = 1

    def render(self) -> str:
        """The table as text, its title above and its notes below."""
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))

        def line(cells: Sequence[str]) -> str:
            parts = [
                cell.ljust(widths[i]) if i < self.left else cell.rjust(widths[i])
                for i, cell in enumerate(cells)
            ]
            return "  ".join(parts).rstrip()

        out = [self.title, line(self.headers), "  ".join("-" * w for w in widths)]
        out += [line(row) for row in self.rows]
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out)


@dataclass(frozen=True)
class Target:
    """A target of the issue: what was measured against the goal; ``met`` None = not measured."""

    name: str
    measured: str
    goal: str
    met: bool | None

    @property
    def verdict(self) -> str:
        """``met``, ``MISSED`` or ``not measured``."""
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


@dataclass
class BenchResult:
    """What one benchmark printed: tables, targets, and notes on how to read them."""

    name: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def render(self) -> str:
        """Tables, then targets, then notes."""
        parts = [t.render() for t in self.tables]
        if self.targets:
            parts.append(targets_table(f"{self.name}: targets", self.targets).render())
        if self.notes:
            parts.append("\n".join(f"note: {n}" for n in self.notes))
        return "\n\n".join(parts)


def targets_table(title: str, targets: Sequence[Target]) -> Table:
    """One row per target: name, measured, goal, verdict."""
    return Table(
        title,
        ["target", "measured", "goal", "verdict"],
        [[t.name, t.measured, t.goal, t.verdict] for t in targets],
        left=4,
    )


def script_main(name: str, run: Callable[[bool], BenchResult], argv: Sequence[str] | None) -> int:
    """The command line of one benchmark script: ``--quick`` for a fast smoke run."""
    parser = argparse.ArgumentParser(description=f"dcs-tasks-bot benchmark: {name}")
    parser.add_argument("--quick", action="store_true", help="small sizes, a fast smoke run")
    args = parser.parse_args(argv)
    print(machine_line(), flush=True)
    started = time.monotonic()
    result = run(args.quick)
    result.seconds = time.monotonic() - started
    print(f"\n== {result.name} ({result.seconds:.0f} s) ==\n")
    print(result.render(), flush=True)
    return 0


# -- the simulator in its own process ---------------------------------------------------------


class SimProcess:
    """``benchmarks/sim_server.py`` in a subprocess: ``instances`` instances with ``tasks``
    tasks each, ``latency`` seconds added to every answer, AK/SK signatures checked.

    ``listen_backlog``: the server's listen queue; None keeps the simulator's own (socketserver's
    default of 5, which drops handshakes when many connections open at once).
    """

    def __init__(
        self,
        instances: int,
        *,
        tasks: int = 10,
        latency: float = 0.0,
        status: str = "SUCCESS",
        project_id: str = PROJECT_ID,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        listen_backlog: int | None = None,
        step: float = 10.0,
    ) -> None:
        self.project_id = project_id
        self.access_key = access_key
        self.secret_key = secret_key
        self.latency = latency
        self._config = {
            "instances": instances,
            "tasks": tasks,
            "latency": latency,
            "status": status,
            "project_id": project_id,
            "access_key": access_key,
            "secret_key": secret_key,
            "listen_backlog": listen_backlog,
            "step": step,
        }
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.instance_ids: list[str] = []

    def start(self) -> SimProcess:
        """Start the process, seed it, and wait for its URL."""
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("sim_server.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        answer = self._ask(self._config)
        self.url, self.instance_ids = answer["url"], list(answer["instances"])
        return self

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RuntimeError("the simulator process is not running")
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator process ended (status {proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def requests(self) -> int:
        """How many requests it received since the last ``clear``."""
        return int(self._ask({"cmd": "requests"})["count"])

    def cpu_seconds(self) -> float:
        """CPU seconds the simulator process has used so far."""
        return float(self._ask({"cmd": "requests"})["cpu"])

    def throttled(self) -> int:
        """How many 429s it sent since the last ``clear``."""
        return int(self._ask({"cmd": "requests"})["throttled"])

    def set_capacity(self, max_in_flight: int | None) -> None:
        """Answer 429 to requests beyond ``max_in_flight`` at once, as a gateway does."""
        self._ask({"cmd": "capacity", "max_in_flight": max_in_flight})

    def set_latency(self, seconds: float) -> None:
        """Change the latency added to every answer."""
        self._ask({"cmd": "latency", "seconds": seconds})
        self.latency = seconds

    def set_faults(self, rate: float, kinds: Sequence[str]) -> None:
        """Answer a share ``rate`` of requests with a fault of ``kinds`` (e.g. ``["429"]``)."""
        self._ask({"cmd": "faults", "rate": rate, "kinds": list(kinds)})

    def clear(self) -> None:
        """Forget the recorded requests."""
        self._ask({"cmd": "clear"})

    def add_tasks(self, instance_ids: Sequence[str], status: str = "EXECUTING") -> list[str]:
        """One new task on each given instance; their IDs."""
        return list(
            self._ask({"cmd": "add_tasks", "instances": list(instance_ids), "status": status})[
                "ids"
            ]
        )

    def set_status(self, task_ids: Sequence[str], status: str) -> None:
        """Change the status of the given tasks."""
        self._ask({"cmd": "set_status", "tasks": list(task_ids), "status": status})

    def env(self) -> dict[str, str]:
        """The DCS part of the bot's environment, pointed at this simulator."""
        return {
            "DCS_ENDPOINT": self.url,
            "DCS_PROJECT_ID": self.project_id,
            "DCS_ACCESS_KEY": self.access_key,
            "DCS_SECRET_KEY": self.secret_key,
        }

    def stop(self) -> None:
        """Stop the process (politely, then by force)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.write(json.dumps({"cmd": "stop"}) + "\n")
                proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
