"""Bring a store database to the newest schema, once, even when several nodes start at the same moment.

PostgreSQL: a session advisory lock serialises the nodes; SQLite: an flock on a file next to the
database. Inside the lock:

- an empty database gets every revision in order (the models and the migrations agree:
  tests/test_migrations.py compares them);
- a database made by the earlier `create_all` (tables, but no `alembic_version`) is adopted: missing
  tables are created, it is stamped at the baseline, then the later revisions run;
- anything else is upgraded to head by the migration scripts.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, inspect, pool, text

from mailmoat.store.base import Base
from mailmoat.store.db import _load_table_modules, normalise_url, sqlite_file

BASELINE = "0001_baseline"
# pg_advisory_lock key: "mailmoat" as a 64-bit number, the same on every node.
LOCK_KEY = int.from_bytes(b"mailmoat", "big") & 0x7FFF_FFFF_FFFF_FFFF
_INI = Path(__file__).with_name("alembic.ini")
_local = threading.Lock()
# Tables in the same database that are not ours: the task queue's (procrastinate manages its schema).
FOREIGN_PREFIXES = ("procrastinate_",)
# Indexes that only migrations create, not the models: PostgreSQL's trigram search (trgm_*) and
# expression indexes such as lower(recipient) (lower_*).
MIGRATION_ONLY_INDEXES = ("trgm_", "lower_")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic filter: compare only mailmoat's own tables, and not the database-specific indexes."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith(FOREIGN_PREFIXES)
    if type_ == "index":
        return not name.startswith(MIGRATION_ONLY_INDEXES)
    return True


def alembic_config(url: str | None = None) -> Config:
    cfg = Config(str(_INI))
    if url:
        cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


@functools.cache
def head() -> str:
    """The newest revision id of the packaged migrations."""
    got = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert got is not None
    return got


def current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, engine: Engine | None = None) -> str:
    """Migrate the database at `url` to head under a cross-node lock; returns what was done.

    "current" (nothing to do), "created" (empty database), "adopted" (made by create_all before
    migrations existed) or "upgraded".
    """
    url = normalise_url(url)
    own = engine is None
    eng = engine if engine is not None else create_engine(url, poolclass=pool.NullPool)
    try:
        # Cheap check first: a node starting against an up-to-date database takes no lock.
        with eng.connect() as conn:
            if current(conn) == head():
                return "current"
        with _local, _lock(eng, url) as conn:
            return _upgrade_locked(conn)
    finally:
        if own:
            eng.dispose()


def _upgrade_locked(conn: Connection) -> str:
    _load_table_modules()
    rev = current(conn)
    if rev == head():
        return "current"  # another node did it while we waited for the lock
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    tables = {t for t in inspect(conn).get_table_names() if not t.startswith(FOREIGN_PREFIXES)}
    if rev is None:
        if not tables - {"alembic_version"}:
            command.upgrade(cfg, "head")  # every revision: the same path as any later upgrade
            conn.commit()
            return "created"
        # Made by create_all before migrations: add what is missing, then it is the baseline.
        Base.metadata.create_all(conn, tables=[t for t in Base.metadata.sorted_tables if t.name not in tables])
        command.stamp(cfg, BASELINE)
        conn.commit()
        command.upgrade(cfg, "head")
        conn.commit()
        return "adopted"
    command.upgrade(cfg, "head")
    conn.commit()
    return "upgraded"


@contextlib.contextmanager
def _lock(engine: Engine, url: str) -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                conn.commit()
        return
    path = sqlite_file(url)
    if path is None:  # in-memory: one process only
        with engine.connect() as conn:
            yield conn
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with engine.connect() as conn:
            yield conn
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


__all__ = ["BASELINE", "FOREIGN_PREFIXES", "LOCK_KEY", "alembic_config", "current", "head", "include_name", "upgrade"]
