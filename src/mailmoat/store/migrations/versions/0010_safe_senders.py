"""Recipients' safe senders, chosen from a digest's release page (safe_senders).

Revision ID: 0010_safe_senders
Revises: 0009_reports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_safe_senders"
down_revision = "0009_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted from create_all (store/migrate.py) may have the table already.
    if "safe_senders" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "safe_senders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("via", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("recipient", "sender", name="uq_safe_senders_pair"),
    )
    op.create_index(op.f("ix_safe_senders_recipient"), "safe_senders", ["recipient"], unique=False)
    op.create_index(op.f("ix_safe_senders_sender"), "safe_senders", ["sender"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_safe_senders_sender"), table_name="safe_senders")
    op.drop_index(op.f("ix_safe_senders_recipient"), table_name="safe_senders")
    op.drop_table("safe_senders")
