"""Alembic migrations of the mailmoat store (run through `mailmoat.store.migrate.upgrade`)."""
