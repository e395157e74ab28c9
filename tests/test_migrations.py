"""Alembic migrations: they build the models' schema exactly, adopt create_all databases, run once."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.exc import SAWarning
from sqlalchemy.pool import NullPool

from mailmoat.store import migrate
from mailmoat.store.base import Base
from mailmoat.store.db import Store, _load_table_modules, normalise_url
from mailmoat.store.models import MessageRow
from tests.support.pg import pg_url  # noqa: F401  (fixture)


def _diff(url: str) -> list[object]:
    _load_table_modules()
    eng = create_engine(normalise_url(url), poolclass=NullPool)
    try:
        with eng.connect() as conn, warnings.catch_warnings():
            # The expression index on lower(recipient) cannot be reflected; it is left out of the
            # comparison on purpose (migrate.MIGRATION_ONLY_INDEXES).
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index", SAWarning)
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": migrate.include_name})
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        eng.dispose()


def _scripts_to_head(url: str) -> None:
    """Run every revision script (not the create-from-models shortcut of an empty database)."""
    command.upgrade(migrate.alembic_config(url), "head")


def test_single_head_and_baseline() -> None:
    script = migrate.ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1
    assert script.get_base() == migrate.BASELINE


def test_scripts_match_models_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    _scripts_to_head(url)
    assert _diff(url) == []


@pytest.mark.postgres
def test_scripts_match_models_postgres(pg_url: str) -> None:  # noqa: F811
    _scripts_to_head(pg_url)
    assert _diff(pg_url) == []
    eng = create_engine(normalise_url(pg_url), poolclass=NullPool)
    with eng.connect() as conn:
        names = set(conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'messages'")).scalars())
    eng.dispose()
    assert {"trgm_messages_mail_from", "trgm_messages_from_addr"} <= names  # substring search of senders


def test_store_creates_and_stamps(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    with store.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
    store.close()
    assert _diff(url) == []
    assert migrate.upgrade(url) == "current"


def test_adopts_create_all_database(tmp_path: Path) -> None:
    """A database made by the old create_all, with data and a table missing, is adopted intact."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _load_table_modules()
    eng = create_engine(url)
    tables = [t for t in Base.metadata.sorted_tables if t.name != "audit_log"]
    Base.metadata.create_all(eng, tables=tables)
    with eng.begin() as conn:
        conn.execute(insert(MessageRow.__table__).values(id="01OLD", received_at=1.0, direction="inbound", action="deliver"))
    eng.dispose()
    assert migrate.upgrade(url) == "adopted"
    store = Store(url)
    with store.session() as s:
        assert s.scalar(select(MessageRow.id)) == "01OLD"
    with store.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
        assert "audit_log" in inspect(conn).get_table_names()
    store.close()
    assert _diff(url) == []


@pytest.mark.postgres
def test_nodes_starting_together_migrate_once(pg_url: str) -> None:  # noqa: F811
    """Several node processes open the same empty PostgreSQL database at once: one creates, the rest wait."""
    code = "import sys; from mailmoat.store.migrate import upgrade; print(upgrade(sys.argv[1]))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, pg_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outs]
    results = sorted(out.strip() for out, _ in outs)
    assert results.count("created") == 1 and set(results) <= {"created", "current"}, results
    assert _diff(pg_url) == []
    eng = create_engine(normalise_url(pg_url), poolclass=NullPool)
    with eng.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    eng.dispose()


@pytest.mark.postgres
def test_task_queue_tables_are_left_alone(pg_url: str) -> None:  # noqa: F811
    """The procrastinate tables in the same database are neither ours to compare nor a sign of an old schema."""
    import asyncio

    from mailmoat.config import Settings
    from mailmoat.tasks.app import build_app, ensure_schema

    settings = Settings()
    settings.db = pg_url
    app = build_app(settings)

    async def go() -> tuple[bool, bool]:
        async with app.open_async():
            return await ensure_schema(app, settings), await ensure_schema(app, settings)

    assert asyncio.run(go()) == (True, False)  # created once, then left as it is
    assert migrate.upgrade(pg_url) == "created"
    assert _diff(pg_url) == []


def test_a_recipient_in_any_case_is_found_through_an_index(tmp_path: Path) -> None:
    """lower(recipient) has an index of its own (migration 0005), which the lookups use."""
    from mailmoat.store.models import DeliveryRow
    from mailmoat.store.queries import recipient_is

    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    q = select(DeliveryRow.id).where(recipient_is("Alice@Corp.example"))
    with store.engine.connect() as conn:
        sql = str(q.compile(store.engine, compile_kwargs={"literal_binds": True}))
        plan = " ".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
    store.close()
    assert "lower_deliveries_recipient" in plan
