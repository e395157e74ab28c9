"""Release requests from digests: a link's kind (release or request) and the requests themselves.

Revision ID: 0008_release_requests
Revises: 0007_sender_lists
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_release_requests"
down_revision = "0007_sender_lists"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A database adopted from create_all (store/migrate.py) may have these already.
    if "kind" not in {c["name"] for c in inspector.get_columns("digest_links")}:
        op.add_column("digest_links", sa.Column("kind", sa.String(length=8), server_default="release", nullable=False))
    if "release_requests" in inspector.get_table_names():
        return
    op.create_table(
        "release_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("requested_at", sa.Float(), nullable=False),
        sa.Column("declined_at", sa.Float(), nullable=False),
        sa.Column("declined_by", sa.String(length=128), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "recipient", name="uq_release_requests_copy"),
    )
    op.create_index(op.f("ix_release_requests_message_id"), "release_requests", ["message_id"], unique=False)
    op.create_index(op.f("ix_release_requests_requested_at"), "release_requests", ["requested_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_release_requests_requested_at"), table_name="release_requests")
    op.drop_index(op.f("ix_release_requests_message_id"), table_name="release_requests")
    op.drop_table("release_requests")
    with op.batch_alter_table("digest_links") as batch:
        batch.drop_column("kind")
