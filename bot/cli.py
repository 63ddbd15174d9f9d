"""The command line: ``dcs-tasks-bot serve|poll|tasks|check|demo|simulate|migrate-state``.

This is the only module that reads the environment. Every failure an operator can cause ends
in a clear message and an exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from bot import __version__
from bot.config import Command, ConfigError, Settings, load_settings, parse_duration
from bot.console import render_to_console
from bot.dcs.errors import DcsError
from bot.dcs.models import Task
from bot.dcs.query import TaskQuery, run_query
from bot.lifecycle import Lifecycle, claim_poller
from bot.logs import configure_logging
from bot.wiring import build, dcs_client, open_state
from state.base import PollerLockedError, StateError

log = logging.getLogger("bot.cli")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _duration(value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use a duration such as 90m, 24h or 7d") from None


def _limit(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError("use a whole number (0 = all)")
    return int(value)


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="dcs-tasks-bot",
        description="Slack alerts and queries for DCS (managed Redis/Memcached) background tasks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("serve", help="the Slack app (HTTP on $PORT, or Socket Mode) and the poller")
    poll = sub.add_parser("poll", help="the poller alone (a worker process)")
    poll.add_argument("--once", action="store_true", help="run one cycle, then exit")
    poll.add_argument(
        "--dry-run", action="store_true", help="print the messages instead; change no state"
    )
    tasks = sub.add_parser("tasks", help="query tasks from the terminal")
    tasks.add_argument("instance", nargs="?", metavar="INSTANCE", help="name or ID (default: all)")
    tasks.add_argument("--since", type=_duration, default=timedelta(hours=24), metavar="24h")
    tasks.add_argument("--status", metavar="S", help="only this status, e.g. FAILED")
    tasks.add_argument("--name", metavar="N", help="only this task name, e.g. EXTEND")
    tasks.add_argument("--limit", type=_limit, default=20, metavar="N", help="default 20, 0 = all")
    tasks.add_argument("--json", action="store_true", help="one JSON array of the DCS task objects")
    sub.add_parser("check", help="validate the configuration and reach DCS and Slack")
    sub.add_parser("demo", help="the whole pipeline on the built-in DCS simulator")
    simulate = sub.add_parser("simulate", help="run the built-in DCS simulator alone")
    simulate.add_argument("--port", type=int, default=8080, metavar="N")
    migrate = sub.add_parser("migrate-state", help="copy the SQLite state into PostgreSQL")
    migrate.add_argument("--to", required=True, metavar="DATABASE_URL")
    return parser


def _settings(environ: Mapping[str, str], command: Command | None) -> Settings:
    settings = load_settings(environ)
    problems = settings.problems_for(command) if command else []
    if problems:
        raise ConfigError(problems)
    return settings


def _secrets(settings: Settings) -> list[str]:
    values = [
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.database_url,
        settings.secret_key,
        settings.os_password,
        settings.auth_token,
    ]
    return [v.get_secret_value() for v in values if v is not None]


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    sleep: Callable[[float], object] | None = None,
) -> int:
    """Entry point of the ``dcs-tasks-bot`` console script. ``sleep`` is how ``tasks`` waits
    between DCS retries and ``demo`` between steps (tests running ``main`` in-process skip
    those waits)."""
    args = make_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        return _dispatch(args, env, sleep)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"configuration: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except PollerLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except StateError as exc:
        print(f"state: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except DcsError as exc:
        print(f"DCS: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # a port in use, a file that cannot be written...
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _dispatch(
    args: argparse.Namespace, env: Mapping[str, str], sleep: Callable[[float], object] | None
) -> int:
    command: str = args.command
    if command == "demo":
        from bot.demo import run_demo

        configure_logging("WARNING")
        return run_demo(Console(), sleep=sleep or time.sleep)
    if command == "simulate":
        return _simulate(args.port)

    required: Command | None = {
        "serve": "serve",
        "poll": "poll-dry-run" if args.command == "poll" and args.dry_run else "poll",
        "tasks": "tasks",
    }.get(command)
    settings = _settings(env, required)
    configure_logging(settings.log_level, _secrets(settings), settings.log_format)
    if command == "poll":
        return _poll(settings, once=args.once, dry_run=args.dry_run)
    if command == "tasks":
        return _tasks(settings, args, sleep)
    if command == "check":
        from bot.check import run_checks

        return run_checks(settings, print)
    if command == "serve":
        from bot.serve import serve

        return serve(settings)
    if command == "migrate-state":
        return _migrate(settings, args.to)
    raise AssertionError(command)


def _poll(settings: Settings, *, once: bool, dry_run: bool) -> int:
    if dry_run:
        return _dry_run(settings)
    if once:
        parts = build(settings)
        try:
            runner = parts.runner()
            claim_poller(runner, shared=bool(settings.database_url), state_path=settings.state_path)
            result = runner.tick()
            if runner.last_failure is not None:
                print(f"poll cycle failed: {runner.last_failure}", file=sys.stderr)
                return EXIT_FAILED
            if result is None:
                print("another process is the poller; nothing done", file=sys.stderr)
                return EXIT_FAILED
            return EXIT_OK if result.ok else EXIT_FAILED
        finally:
            parts.close()
    life = Lifecycle()
    life.install_signals()

    def start() -> Callable[[], None]:
        parts = build(settings, stopping=life.stop)
        try:
            runner = parts.runner()
            claim_poller(runner, shared=bool(settings.database_url), state_path=settings.state_path)
            runner.start()
        except BaseException:
            parts.close()
            raise

        def stop() -> None:
            runner.stop()
            parts.close()

        return stop

    return life.run(start)


def _dry_run(settings: Settings) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        # A missing state file is read as "no state" without creating it.
        path = settings.state_path
        if not settings.database_url and not path.exists():
            path = Path(scratch) / "dry-run.sqlite"
        parts = build(settings, with_slack=False, store=open_state(settings, state_path=path))
        try:
            result = parts.poller.run_cycle(commit=False)
        finally:
            parts.close()
    console = Console()
    for delivery in result.commit.deliveries:
        render_to_console(
            console,
            channel=delivery.channel,
            kind=delivery.kind,
            text=delivery.text,
            blocks=delivery.blocks,
            thread_of=delivery.task_id if delivery.kind == "reply" else None,
            broadcast=delivery.reply_broadcast,
        )
    console.print(
        f"dry run: {result.instances} instances, {len(result.changes)} changes, "
        f"{len(result.commit.deliveries)} messages; nothing posted, no state changed"
    )
    for instance_id, error in result.errors.items():
        console.print(f"failed: {instance_id}: {error}", markup=False)
    return EXIT_OK if result.ok else EXIT_FAILED


def _tasks(
    settings: Settings, args: argparse.Namespace, sleep: Callable[[float], object] | None
) -> int:
    http, dcs = dcs_client(settings, sleep=sleep)
    with http:
        wanted = [args.instance] if args.instance else list(settings.instances)
        instances = dcs.resolve_instances(wanted)
        query = TaskQuery(since=args.since, status=args.status, name=args.name, limit=args.limit)
        result = run_query(dcs, instances, query, now=datetime.now(UTC))
    for instance_id, error in result.errors.items():
        print(f"error: {instance_id}: {error}", file=sys.stderr)
    if args.json:
        shown = [t.to_json() for t in result.tasks]
        json.dump(shown, sys.stdout, indent=2)
        print()
    else:
        names = {i.instance_id: i.label for i in instances}
        print(_table(result.tasks, names, result.total))
    return EXIT_FAILED if result.errors else EXIT_OK


def _table(tasks: Sequence[Task], names: Mapping[str, str], total: int) -> str:
    rows = [("CREATED (UTC)", "INSTANCE", "TASK", "STATUS", "USER", "ID")]
    for t in tasks:
        created = t.created_at.strftime("%Y-%m-%d %H:%M:%S") if t.created_at else "-"
        instance = names.get(t.instance_id, t.instance_id)
        rows.append((created, instance, t.name, t.status, t.user_name or "-", t.id))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if not tasks:
        lines.append("(no tasks)")
    elif total > len(tasks):
        lines.append(f"... {total - len(tasks)} more; use --limit 0 for all")
    return "\n".join(lines)


def _simulate(port: int) -> int:
    from bot.demo import DEMO_TOKEN, demo_simulator

    configure_logging("INFO")
    life = Lifecycle()
    life.install_signals()

    def start() -> Callable[[], None]:
        running = ExitStack()
        try:
            sim = running.enter_context(demo_simulator(port=port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on port {port}: {exc.strerror}") from None
        print(f"DCS simulator on {sim.url} (project {sim.project_id}); Ctrl-C to stop")
        print(
            f"  DCS_ENDPOINT={sim.url} DCS_PROJECT_ID={sim.project_id} DCS_AUTH_TOKEN={DEMO_TOKEN}",
            flush=True,
        )
        return running.close

    return life.run(start)


def _migrate(settings: Settings, url: str) -> int:
    from state.migrate import migrate_state
    from state.postgres import PostgresStore

    if not settings.state_path.exists():
        print(f"error: no SQLite state at STATE_PATH={settings.state_path}", file=sys.stderr)
        return EXIT_FAILED
    target = PostgresStore(url)
    try:
        # Given the path, migrate_state takes the poller lock: a running poller stops it.
        counts = migrate_state(settings.state_path, target)
    finally:
        target.close()
    print("copied " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
