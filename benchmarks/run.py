"""``make bench``: every benchmark of issue 6, one table each, then the targets met and missed.

``python benchmarks/run.py [--quick] [--only cycle,state]``. A benchmark that cannot run (no
PostgreSQL, no ``.venv-bench``...) says why and the others go on; the exit status is 1 only
when a benchmark crashed, never for a missed target (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import (
    bench_ack,
    bench_cycle,
    bench_delivery,
    bench_quiet,
    bench_state,
    bench_stats,
    bench_windows,
)
from benchmarks._common import BenchResult, Target, machine_line, targets_table

BENCHMARKS: dict[str, Callable[[bool], BenchResult]] = {
    "cycle": bench_cycle.run,
    "quiet": bench_quiet.run,
    "state": bench_state.run,
    "ack": bench_ack.run,
    "delivery": bench_delivery.run,
    "stats": bench_stats.run,
    "windows": bench_windows.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks in order and print their tables and a summary."""
    parser = argparse.ArgumentParser(description="dcs-tasks-bot benchmarks (issue 6)")
    parser.add_argument("--quick", action="store_true", help="small sizes, a fast smoke run")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated, of: {', '.join(BENCHMARKS)}"
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    print(machine_line())
    print(
        f"mode: {'quick' if args.quick else 'full'}; started {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    started = time.monotonic()
    targets: list[Target] = []
    crashed: list[str] = []
    timings: list[str] = []
    for name in chosen:
        begun = time.monotonic()
        try:
            result = BENCHMARKS[name](args.quick)
        except Exception as exc:
            crashed.append(name)
            print(f"\n== {name}: FAILED ==\n", flush=True)
            traceback.print_exc()
            targets.append(
                Target(f"{name}: benchmark ran", f"{type(exc).__name__}: {exc}"[:80], "ran", False)
            )
            continue
        result.seconds = time.monotonic() - begun
        timings.append(f"{name} {result.seconds:.0f} s")
        print(f"\n== {name} ({result.seconds:.0f} s) ==\n", flush=True)
        print(result.render(), flush=True)
        targets += result.targets

    met = sum(1 for t in targets if t.met is True)
    missed = sum(1 for t in targets if t.met is False)
    unmeasured = sum(1 for t in targets if t.met is None)
    print("\n== summary ==\n")
    print(machine_line())
    print(
        targets_table(
            f"targets: {met} met, {missed} missed, {unmeasured} not measured", targets
        ).render()
    )
    print(f"\ntime: {', '.join(timings)}; total {time.monotonic() - started:.0f} s")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
