"""Trigram indexes for trace's substring search of senders (PostgreSQL only).

`mailmoat trace --sender x` matches a case-insensitive substring of MAIL FROM or From, which no
B-tree index can serve: on PostgreSQL a GIN trigram index on lower(...) turns the full-table scan
into a bitmap index scan (bench/scale_bench.py shows the plans). SQLite keeps scanning: it is
meant for the size where that is fast enough. These indexes are named `trgm_*` and kept out of
the model comparison (mailmoat.store.migrate.include_name): they exist only in migrations.

Revision ID: 0002_trigram_search
Revises: 0001_baseline
"""

from __future__ import annotations

from alembic import op

revision = "0002_trigram_search"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

INDEXES = {"trgm_messages_mail_from": "mail_from", "trgm_messages_from_addr": "from_addr"}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON messages USING gin (lower({column}) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
