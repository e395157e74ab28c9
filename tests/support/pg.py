"""PostgreSQL for tests: a fresh database with a unique name per test, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_ADMIN = os.environ.get("MAILMOAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> object:
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:  # no server: skip with the reason
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}")


@contextmanager
def pg_database(prefix: str = "mm_test") -> Iterator[str]:
    """A new empty database; yields its URL (postgresql://...), drops it (forcing sessions out) after."""
    conn = _admin()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        conn.close()  # type: ignore[attr-defined]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_database() as url:
        yield url
