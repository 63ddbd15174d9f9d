"""The one way tests reach PostgreSQL: ``TEST_DATABASE_URL`` (a local default otherwise), a loud
skip when it cannot be reached (a failure when ``CI=true``), and a fresh schema per test."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

import psycopg
import pytest
from psycopg import sql

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def reachable_url() -> str:
    """A PostgreSQL URL that answers, or a loud skip (a failure in CI)."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_URL)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = f"PostgreSQL NOT REACHABLE at TEST_DATABASE_URL ({exc}): its tests cannot run"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@dataclass
class PgSchema:
    """A fresh schema name in the test database (created on demand), dropped after the test."""

    url: str
    name: str = field(default_factory=lambda: f"test_{uuid.uuid4().hex[:12]}")

    @property
    def search_path_url(self) -> str:
        """A DATABASE_URL whose connections use this schema (libpq ``options``)."""
        joiner = "&" if "?" in self.url else "?"
        return f"{self.url}{joiner}options=-csearch_path%3D{self.name}"

    def create(self) -> None:
        """Create the schema (stores create their own; processes given a search_path do not)."""
        self._execute("CREATE SCHEMA IF NOT EXISTS {}")

    def drop(self) -> None:
        """Drop the schema and everything in it."""
        self._execute("DROP SCHEMA IF EXISTS {} CASCADE")

    def _execute(self, statement: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(self.name)))
