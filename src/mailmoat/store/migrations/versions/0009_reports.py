"""Colleagues' reports of suspect mail, linked to the messages they report (reports).

Revision ID: 0009_reports
Revises: 0008_release_requests
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_reports"
down_revision = "0008_release_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted from create_all (store/migrate.py) may have the table already.
    if "reports" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("report_id", sa.String(length=40), nullable=False),
        sa.Column("reporter", sa.String(length=320), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("matched_by", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("reported_at", sa.Float(), nullable=False),
        sa.Column("dismissed_at", sa.Float(), nullable=False),
        sa.Column("dismissed_by", sa.String(length=128), nullable=False),
        sa.Column("notified_at", sa.Float(), nullable=False),
        sa.Column("acked_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("report_id", "reporter", "message_id", "reported_at"):
        op.create_index(op.f(f"ix_reports_{column}"), "reports", [column], unique=False)


def downgrade() -> None:
    for column in ("report_id", "reporter", "message_id", "reported_at"):
        op.drop_index(op.f(f"ix_reports_{column}"), table_name="reports")
    op.drop_table("reports")
