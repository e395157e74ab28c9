"""Quarantine digests (digests) and their release links (digest_links).

Revision ID: 0006_digests
Revises: 0005_recipient_any_case
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_digests"
down_revision = "0005_recipient_any_case"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted from create_all (store/migrate.py) may have the tables already.
    have = set(sa.inspect(op.get_bind()).get_table_names())
    if "digests" not in have:
        op.create_table(
            "digests",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("recipient", sa.String(length=320), nullable=False),
            sa.Column("slot", sa.String(length=32), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("items", sa.Integer(), nullable=False),
            sa.Column("covered_until", sa.Float(), nullable=False),
            sa.Column("mail_id", sa.String(length=40), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("recipient", "slot", name="uq_digests_recipient_slot"),
        )
        op.create_index(op.f("ix_digests_recipient"), "digests", ["recipient"], unique=False)
    if "digest_links" not in have:
        op.create_table(
            "digest_links",
            sa.Column("token_hash", sa.String(length=64), nullable=False),
            sa.Column("message_id", sa.String(length=40), nullable=False),
            sa.Column("recipient", sa.String(length=320), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("expires_at", sa.Float(), nullable=False),
            sa.Column("used_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("token_hash"),
        )
        op.create_index(op.f("ix_digest_links_message_id"), "digest_links", ["message_id"], unique=False)
        op.create_index(op.f("ix_digest_links_expires_at"), "digest_links", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_digest_links_expires_at"), table_name="digest_links")
    op.drop_index(op.f("ix_digest_links_message_id"), table_name="digest_links")
    op.drop_table("digest_links")
    op.drop_index(op.f("ix_digests_recipient"), table_name="digests")
    op.drop_table("digests")
