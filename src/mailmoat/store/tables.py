"""Imports every table module so that `Base.metadata` knows the whole schema (create_all, Alembic)."""

from mailmoat.store import audit_models, models, recall_models
from mailmoat.store.base import Base

__all__ = ["Base", "audit_models", "models", "recall_models"]
