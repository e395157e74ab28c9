"""Account profiles learn the domains an account's links lead to (account_profiles.link_domains).

An HR or Finance account that links to its payroll or benefits provider every month is usual;
the same wording with a link to a domain the account never used is what a stolen account sends.

Revision ID: 0003_account_link_domains
Revises: 0002_trigram_search
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_account_link_domains"
down_revision = "0002_trigram_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing profiles start with no link history; the server default fills them in.
    with op.batch_alter_table("account_profiles") as batch:
        batch.add_column(sa.Column("link_domains", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("account_profiles") as batch:
        batch.drop_column("link_domains")
