"""Allow and deny list entries managed from the console, the API and the CLI (sender_lists).

Revision ID: 0007_sender_lists
Revises: 0006_digests
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_sender_lists"
down_revision = "0006_digests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted from create_all (store/migrate.py) may have the table already.
    if "sender_lists" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "sender_lists",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("list", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("list", "kind", "value", name="uq_sender_lists_entry"),
    )


def downgrade() -> None:
    op.drop_table("sender_lists")
