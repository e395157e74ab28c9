"""Near-copy verdicts in the store (near_copy_verdicts): recalls and releases shared by every node.

A recall job closed on one node must hold the campaign's near copies on every node at once, so the
verdicts that teach the near-copy memory are kept here rather than in a file beside the model.

Revision ID: 0004_near_copy_verdicts
Revises: 0003_account_link_domains
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_near_copy_verdicts"
down_revision = "0003_account_link_domains"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted from create_all (store/migrate.py) may have the table already.
    if "near_copy_verdicts" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "near_copy_verdicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_near_copy_verdicts_key"), "near_copy_verdicts", ["key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_near_copy_verdicts_key"), table_name="near_copy_verdicts")
    op.drop_table("near_copy_verdicts")
