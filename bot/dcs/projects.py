"""Several projects and regions in one bot.

``DCS_PROJECTS`` entries become :class:`Project` records (:func:`parse_projects`), and
:class:`ProjectClients` puts one :class:`~bot.dcs.client.DcsClient` per project behind the
one-client interface the rest of the bot uses: instances come back labelled with their project
and region, task calls go to the instance's own project, and a project that cannot be read is
reported in :attr:`ProjectClients.failures` without stopping the others.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

from bot.dcs.client import DcsClient, TaskListing
from bot.dcs.errors import DcsError, DcsUnknownInstanceError
from bot.dcs.limit import AdaptiveLimit
from bot.dcs.models import Instance, Task

log = logging.getLogger(__name__)

#: The endpoint of a ``REGION:PROJECT_ID`` entry when ``DCS_ENDPOINT`` is unset.
DEFAULT_ENDPOINT = "https://dcs.{region}.otc.t-systems.com"
REGION_PLACEHOLDER = "{region}"

_REGION = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(?::\d{1,5})?/?$")
_DCS_HOST = re.compile(r"^dcs\.([a-z0-9-]+)\.")


@dataclass(frozen=True, slots=True)
class Project:
    """One watched project: its ID, its DCS endpoint and (when known) its region."""

    project_id: str
    endpoint: str
    region: str | None = None

    @property
    def label(self) -> str:
        """The region, else the endpoint's host: what is shown beside an instance's name."""
        return self.region or (urlsplit(self.endpoint).hostname or self.endpoint)


def parse_projects(value: str, endpoint: str | None) -> tuple[Project, ...]:
    """``DCS_PROJECTS`` into projects; raises ValueError naming every bad entry.

    ``REGION:PROJECT_ID`` takes its endpoint from ``endpoint`` (``DCS_ENDPOINT``) with
    ``{region}`` replaced (default ``https://dcs.{region}.otc.t-systems.com``);
    ``PROJECT_ID@ENDPOINT_URL`` names its endpoint itself.
    """
    template = endpoint or DEFAULT_ENDPOINT
    projects: list[Project] = []
    problems: list[str] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            project = _entry(entry, template)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if any(
            (p.project_id, p.endpoint) == (project.project_id, project.endpoint) for p in projects
        ):
            problems.append(f"{entry!r} is listed twice")
            continue
        projects.append(project)
    if not projects and not problems:
        problems.append("names no project")
    if problems:
        raise ValueError(
            "; ".join(problems)
            + " (each entry REGION:PROJECT_ID or PROJECT_ID@https://dcs.eu-nl.otc.t-systems.com)"
        )
    return tuple(projects)


def _entry(entry: str, template: str) -> Project:
    if "@" in entry:
        project_id, _, url = entry.partition("@")
        if not _PROJECT_ID.match(project_id):
            raise ValueError(f"{entry[:60]!r}: {project_id[:40]!r} is not a project ID")
        if not _URL.match(url):
            raise ValueError(f"{entry[:60]!r}: the endpoint must be an http(s) URL without a path")
        host = urlsplit(url).hostname or ""
        found = _DCS_HOST.match(host)
        return Project(project_id, url.rstrip("/"), found[1] if found else None)
    region, sep, project_id = entry.partition(":")
    if not sep:
        raise ValueError(f"{entry[:60]!r} is neither REGION:PROJECT_ID nor PROJECT_ID@URL")
    if not _REGION.match(region):
        raise ValueError(f"{entry[:60]!r}: {region[:40]!r} is not a region such as eu-de")
    if not _PROJECT_ID.match(project_id):
        raise ValueError(f"{entry[:60]!r}: {project_id[:40]!r} is not a project ID")
    if REGION_PLACEHOLDER not in template:
        raise ValueError(
            f"{entry[:60]!r}: DCS_ENDPOINT has no {{region}} to put {region!r} in "
            "(e.g. DCS_ENDPOINT=https://dcs.{region}.otc.t-systems.com), or use PROJECT_ID@URL"
        )
    return Project(project_id, template.replace(REGION_PLACEHOLDER, region).rstrip("/"), region)


class ProjectClients:
    """One DcsClient per project, used like one client.

    With more than one project, instances carry ``project_id`` and ``region`` (shown as
    ``name (region)``). A project whose instance list cannot be read keeps its last good list
    (or none) and is named in :attr:`failures`; the others go on.
    """

    def __init__(
        self, clients: Sequence[tuple[Project, DcsClient]], *, limit: AdaptiveLimit | None = None
    ) -> None:
        """``limit`` is the limit on requests in flight the clients share (for its figures)."""
        if not clients:
            raise ValueError("ProjectClients needs at least one project")
        self._clients = list(clients)
        self.limit = limit
        self._several = len(self._clients) > 1
        plain = [project.label for project, _ in self._clients]
        #: Two projects in one region are told apart by the start of their project ID.
        self._labels = [
            label if plain.count(label) == 1 else f"{label}/{project.project_id[:8]}"
            for label, (project, _) in zip(plain, self._clients, strict=True)
        ]
        self._lock = threading.Lock()
        self._where: dict[str, DcsClient] = {}
        self._last_good: dict[str, list[Instance]] = {}
        self._failures: dict[str, str] = {}

    @property
    def projects(self) -> list[Project]:
        """The watched projects, in configuration order."""
        return [project for project, _ in self._clients]

    def label(self, project: Project) -> str:
        """How ``project`` is named in messages and :attr:`failures` (its region, usually)."""
        return self._labels[self.projects.index(project)]

    @property
    def project_id(self) -> str:
        """The first project's ID (the only one in a single-project bot)."""
        return self._clients[0][0].project_id

    @property
    def failures(self) -> dict[str, str]:
        """Projects (by label) whose instance list could not be read the last time it was asked."""
        with self._lock:
            return dict(self._failures)

    def client_for(self, instance_id: str) -> DcsClient:
        """The client of the project the instance belongs to (the first when not yet known)."""
        with self._lock:
            known = self._where.get(instance_id)
        if known is not None:
            return known
        if self._several:
            self.list_instances()
            with self._lock:
                known = self._where.get(instance_id)
            if known is None:
                raise DcsUnknownInstanceError(
                    instance_id, f"DCS instance {instance_id!r} is in none of the watched projects"
                )
            return known
        return self._clients[0][1]

    def list_instances(self) -> list[Instance]:
        """Every instance of every project; raises only when no project answers at all (a
        project that fails while others answer contributes its last good list)."""
        found: list[Instance] = []
        errors: dict[str, str] = {}
        first_error: DcsError | None = None
        for (project, client), label in zip(self._clients, self._labels, strict=True):
            key = f"{project.project_id}@{project.endpoint}"
            try:
                instances = [self._label(project, label, i) for i in client.list_instances()]
            except DcsError as exc:
                log.warning("cannot list the instances of project %s: %s", label, exc)
                errors[label] = str(exc)
                first_error = first_error or exc
                with self._lock:
                    instances = list(self._last_good.get(key, []))
            else:
                with self._lock:
                    self._last_good[key] = instances
            with self._lock:
                for instance in instances:
                    self._where[instance.instance_id] = client
            found.extend(instances)
        with self._lock:
            self._failures = errors
        if first_error is not None and len(errors) == len(self._clients):
            raise first_error
        return found

    def _label(self, project: Project, label: str, instance: Instance) -> Instance:
        if not self._several:
            return instance
        return replace(instance, project_id=project.project_id, region=label)

    def resolve_instances(self, wanted: Sequence[str]) -> list[Instance]:
        """The instances named by ``wanted`` (IDs or names) across the projects; empty = all.

        With one project this is exactly ``DcsClient.resolve_instances``. With several, a name
        found in two projects must be given as an ID; an entry found nowhere is an error unless
        a project could not be read (it may be there: it is skipped until the next refresh).
        """
        if not self._several:
            instances = self._clients[0][1].resolve_instances(wanted)
            with self._lock:
                self._where.update((i.instance_id, self._clients[0][1]) for i in instances)
            return instances
        instances = self.list_instances()
        if not wanted:
            return instances
        out: dict[str, Instance] = {}
        for item in (w.strip() for w in wanted):
            if not item:
                continue
            matches = [i for i in instances if i.instance_id == item]
            matches = matches or [i for i in instances if i.name == item]
            matches = matches or [i for i in instances if i.name.casefold() == item.casefold()]
            if len(matches) > 1:
                ids = ", ".join(f"{i.instance_id} ({i.region})" for i in matches)
                raise DcsUnknownInstanceError(
                    item, f"DCS instance name {item!r} is ambiguous ({ids}); use the instance ID"
                )
            if not matches:
                if self.failures:
                    log.warning("watched instance %r not found (a project could not be read)", item)
                    continue
                raise DcsUnknownInstanceError(
                    item, f"unknown DCS instance {item!r} in the {len(self._clients)} projects"
                )
            out.setdefault(matches[0].instance_id, matches[0])
        return list(out.values())

    def list_tasks(
        self, instance_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[Task]:
        """Every task of an instance created within ``start``..``end``, from its project."""
        return self.client_for(instance_id).list_tasks(instance_id, start=start, end=end)

    def read_tasks(
        self, instance_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> TaskListing:
        """:meth:`list_tasks` with the malformed task records it skipped (the poller's call)."""
        return self.client_for(instance_id).read_tasks(instance_id, start=start, end=end)

    def with_deadline(self, seconds: float) -> ProjectClients:
        """The same projects with every call, retries included, bounded to ``seconds`` (for
        calls made while a Slack user waits)."""
        return ProjectClients(
            [(p, c.with_deadline(seconds)) for p, c in self._clients], limit=self.limit
        )

    def list_tasks_page(
        self,
        instance_id: str,
        *,
        offset: int,
        limit: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> tuple[int, list[Task]]:
        """One page of an instance's tasks, from its project."""
        return self.client_for(instance_id).list_tasks_page(
            instance_id, offset=offset, limit=limit, start=start, end=end
        )
