"""An index on lower(recipient) of deliveries: a recipient is found whatever case it was written in.

SMTP keeps the case a sender typed ("John.Smith@Partner.example"), and the deliveries table records
it so. Recall by recipient and the correspondence checks compare lower(recipient) with the address
in lower case; this index serves that comparison on SQLite and PostgreSQL alike. It is an
expression index, which the models cannot declare, so it exists only in migrations and is kept out
of the model comparison (mailmoat.store.migrate.include_name).

Revision ID: 0005_recipient_any_case
Revises: 0004_near_copy_verdicts
"""

from __future__ import annotations

from alembic import op

revision = "0005_recipient_any_case"
down_revision = "0004_near_copy_verdicts"
branch_labels = None
depends_on = None

INDEX = "lower_deliveries_recipient"


def upgrade() -> None:
    op.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON deliveries (lower(recipient))")


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
