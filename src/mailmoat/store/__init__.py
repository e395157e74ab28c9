"""The record: SQLAlchemy models, the Store facade, queries and Alembic migrations."""
