"""The grammar of ``/dcs-tasks``: text in, a typed command or a one-line ``ParseError`` out.

Pure and total: any text gives a value, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from bot.config import parse_duration

DEFAULT_SINCE = timedelta(hours=24)
MAX_SINCE = timedelta(days=366)
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
DEFAULT_MUTE = timedelta(hours=1)
MAX_MUTE = timedelta(days=7)
DEFAULT_REPORT_SINCE = timedelta(days=7)
MAX_REASON = 200

USAGE: dict[str, str] = {
    "help": "/dcs-tasks help",
    "list": "/dcs-tasks list [INSTANCE] [status:S] [name:N] [since:24h] [limit:N]",
    "show": "/dcs-tasks show TASK_ID",
    "instances": "/dcs-tasks instances",
    "status": "/dcs-tasks status",
    "subscribe": "/dcs-tasks subscribe INSTANCE|region:R|PROJECT_ID|* [status:S,...] [name:N,...]",
    "unsubscribe": "/dcs-tasks unsubscribe INSTANCE|region:R|PROJECT_ID|*",
    "subscriptions": "/dcs-tasks subscriptions",
    "mute": "/dcs-tasks mute INSTANCE|region:R|PROJECT_ID|* [name:N,...] [for:2h] [REASON...]",
    "unmute": "/dcs-tasks unmute INSTANCE|region:R|PROJECT_ID|*|MUTE_ID",
    "mutes": "/dcs-tasks mutes",
    "report": "/dcs-tasks report [INSTANCE] [since:7d]",
}
FULL_USAGE = "\n".join(USAGE.values())

_DIGITS = re.compile(r"[0-9]{1,7}")
_QUOTE_MAX = 40


@dataclass(frozen=True, slots=True)
class Help:
    """``help`` or the empty command: usage with examples."""


@dataclass(frozen=True, slots=True)
class ListTasks:
    """``list``: recent tasks of one watched instance (or all of them), filtered."""

    instance: str | None = None
    status: str | None = None
    name: str | None = None
    since: timedelta = DEFAULT_SINCE
    limit: int = DEFAULT_LIMIT  # 0 = all


@dataclass(frozen=True, slots=True)
class ShowTask:
    """``show TASK_ID``: one task with all its details."""

    task_id: str


@dataclass(frozen=True, slots=True)
class ListInstances:
    """``instances``: the watched instances, their status and last poll."""


@dataclass(frozen=True, slots=True)
class BotStatus:
    """``status``: the bot's own health."""


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``subscribe``: also route matching alerts to the current channel."""

    instance: str
    statuses: tuple[str, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """``unsubscribe``: stop routing an instance's alerts to the current channel."""

    instance: str


@dataclass(frozen=True, slots=True)
class ListSubscriptions:
    """``subscriptions``: what the current channel is subscribed to."""


@dataclass(frozen=True, slots=True)
class MuteAlerts:
    """``mute``: hold back alerts of an instance (or every one) for a while."""

    instance: str
    names: tuple[str, ...] = ()
    duration: timedelta = DEFAULT_MUTE
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unmute:
    """``unmute``: end the mutes of an instance, every mute (``*``) or one by its ID."""

    target: str


@dataclass(frozen=True, slots=True)
class ListMutes:
    """``mutes``: the mutes in force."""


@dataclass(frozen=True, slots=True)
class Report:
    """``report``: per task name, how many ran, succeeded, failed, and how long they took."""

    instance: str | None = None
    since: timedelta = DEFAULT_REPORT_SINCE


@dataclass(frozen=True, slots=True)
class ParseError:
    """What is wrong with the text (one line of Slack mrkdwn) and the usage that applies."""

    reason: str
    usage: str = FULL_USAGE


Command = (
    Help
    | ListTasks
    | ShowTask
    | ListInstances
    | BotStatus
    | Subscribe
    | Unsubscribe
    | ListSubscriptions
    | MuteAlerts
    | Unmute
    | ListMutes
    | Report
)
_Parser = Callable[[list[str]], Command]


def quote(token: str) -> str:
    """``token`` as safe inline code for Slack: printable, no backticks, escaped, shortened."""
    clean = "".join(c if c.isprintable() and c != "`" else "?" for c in token)
    if len(clean) > _QUOTE_MAX:
        clean = clean[: _QUOTE_MAX - 1] + "…"
    clean = clean.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"`{clean}`"


class _Invalid(Exception):
    """Internal: a reason the arguments of one subcommand are wrong."""


def _split_args(tokens: list[str], keys: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    options: dict[str, str] = {}
    for token in tokens:
        key, colon, value = token.partition(":")
        if not colon:
            positional.append(token)
            continue
        key = key.lower()
        if key not in keys:
            known = ", ".join(f"{k}:" for k in keys) or "no options"
            raise _Invalid(f"unknown option {quote(token)} (this command takes {known})")
        if not value:
            raise _Invalid(f"{key}: needs a value, e.g. {_EXAMPLES[key]}")
        if key in options:
            raise _Invalid(f"{key}: is given twice")
        options[key] = value
    return positional, options


_EXAMPLES = {
    "status": "status:FAILED",
    "name": "name:EXTEND",
    "since": "since:24h",
    "limit": "limit:50",
    "for": "for:2h",
    "region": "region:eu-nl",
}


def _given(positional: list[str]) -> str:
    return " ".join(quote(p) for p in positional[:3]) + (" …" if len(positional) > 3 else "")


def _at_most_one(positional: list[str], what: str) -> str | None:
    if len(positional) > 1:
        raise _Invalid(f"give one {what} at most (got {_given(positional)})")
    return positional[0] if positional else None


def _exactly_one(positional: list[str], what: str) -> str:
    if len(positional) != 1:
        got = f" (got {_given(positional)})" if positional else ""
        raise _Invalid(f"give exactly one {what}{got}")
    return positional[0]


def _since(value: str) -> timedelta:
    try:
        since = parse_duration(value)
    except (ValueError, OverflowError):
        raise _Invalid(
            f"since: must be a duration such as 90m, 24h or 7d (got {quote(value)})"
        ) from None
    if since > MAX_SINCE:
        raise _Invalid(f"since: must be at most {MAX_SINCE.days}d (got {quote(value)})")
    return since


def _limit(value: str) -> int:
    if not _DIGITS.fullmatch(value) or int(value) > MAX_LIMIT:
        raise _Invalid(
            f"limit: must be a whole number from 0 to {MAX_LIMIT}, 0 = all (got {quote(value)})"
        )
    return int(value)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split(",") if part)


def _parse_list(args: list[str]) -> ListTasks:
    positional, options = _split_args(args, ("status", "name", "since", "limit"))
    return ListTasks(
        instance=_at_most_one(positional, "INSTANCE"),
        status=options["status"].upper() if "status" in options else None,
        name=options.get("name"),
        since=_since(options["since"]) if "since" in options else DEFAULT_SINCE,
        limit=_limit(options["limit"]) if "limit" in options else DEFAULT_LIMIT,
    )


def _region_target(positional: list[str], options: dict[str, str], what: str) -> str:
    """The one target of (un)subscribe and unmute: an instance, ``*``, a project ID or
    ``region:R``."""
    if "region" in options:
        if positional:
            raise _Invalid(
                f"give either region: or an instance, not both (got {quote(positional[0])})"
            )
        return f"region:{options['region']}"
    return _exactly_one(positional, what)


def _parse_subscribe(args: list[str]) -> Subscribe:
    positional, options = _split_args(args, ("status", "name", "region"))
    return Subscribe(
        instance=_region_target(positional, options, "INSTANCE (or * for every instance)"),
        statuses=tuple(s.upper() for s in _csv(options.get("status", ""))),
        names=_csv(options.get("name", "")),
    )


def _mute_length(value: str) -> timedelta:
    try:
        length = parse_duration(value)
    except (ValueError, OverflowError):
        raise _Invalid(
            f"for: must be a duration such as 30m, 2h or 1d (got {quote(value)})"
        ) from None
    if length > MAX_MUTE:
        raise _Invalid(f"for: a mute lasts at most {MAX_MUTE.days}d (got {quote(value)})")
    return length


def _parse_mute(args: list[str]) -> MuteAlerts:
    """``INSTANCE|* [name:N,...] [for:2h] [REASON...]``: name: and for: anywhere after the
    instance; every other word (``ticket:42`` too) is the reason."""
    if not args or args[0].partition(":")[0].lower() in ("name", "for"):
        raise _Invalid("give the INSTANCE (or * for every instance) first")
    options: dict[str, str] = {}
    reason: list[str] = []
    for token in args[1:]:
        key, colon, value = token.partition(":")
        key = key.lower()
        if not colon or key not in ("name", "for"):
            reason.append(token)
            continue
        if not value:
            raise _Invalid(f"{key}: needs a value, e.g. {_EXAMPLES[key]}")
        if key in options:
            raise _Invalid(f"{key}: is given twice")
        options[key] = value
    text = " ".join(reason)
    if len(text) > MAX_REASON:
        raise _Invalid(f"the reason is too long ({len(text)} characters, at most {MAX_REASON})")
    return MuteAlerts(
        instance=args[0],
        names=_csv(options.get("name", "")),
        duration=_mute_length(options["for"]) if "for" in options else DEFAULT_MUTE,
        reason=text,
    )


def _parse_report(args: list[str]) -> Report:
    positional, options = _split_args(args, ("since",))
    return Report(
        instance=_at_most_one(positional, "INSTANCE"),
        since=_since(options["since"]) if "since" in options else DEFAULT_REPORT_SINCE,
    )


def _parse_unsubscribe(args: list[str]) -> Unsubscribe:
    positional, options = _split_args(args, ("region",))
    return Unsubscribe(_region_target(positional, options, "INSTANCE (or *)"))


def _parse_unmute(args: list[str]) -> Unmute:
    positional, options = _split_args(args, ("region",))
    return Unmute(_region_target(positional, options, "INSTANCE, * or MUTE_ID"))


def _no_args(make: Command) -> _Parser:
    def parse_no_args(args: list[str]) -> Command:
        if args:
            raise _Invalid(f"this command takes no arguments (got {quote(args[0])})")
        return make

    return parse_no_args


def _one_positional(make: type[ShowTask], what: str) -> _Parser:
    def parse_one(args: list[str]) -> Command:
        positional, _ = _split_args(args, ())
        return make(_exactly_one(positional, what))

    return parse_one


_PARSERS = {
    "help": _no_args(Help()),
    "list": _parse_list,
    "show": _one_positional(ShowTask, "TASK_ID"),
    "instances": _no_args(ListInstances()),
    "status": _no_args(BotStatus()),
    "subscribe": _parse_subscribe,
    "unsubscribe": _parse_unsubscribe,
    "subscriptions": _no_args(ListSubscriptions()),
    "mute": _parse_mute,
    "unmute": _parse_unmute,
    "mutes": _no_args(ListMutes()),
    "report": _parse_report,
}


def parse(text: str) -> Command | ParseError:
    """Parse the text after ``/dcs-tasks``; a first word that is no subcommand means ``list``."""
    tokens = text.split()
    if not tokens:
        return Help()
    word, args = tokens[0].lower(), tokens[1:]
    parser = _PARSERS.get(word)
    if parser is None:
        try:
            return _parse_list(tokens)
        except _Invalid as problem:
            if ":" in tokens[0]:  # options without ``list``: the list grammar applies
                return ParseError(str(problem), USAGE["list"])
            return ParseError(f"unknown command {quote(tokens[0])}")
    try:
        return parser(args)
    except _Invalid as problem:
        return ParseError(str(problem), USAGE[word])
