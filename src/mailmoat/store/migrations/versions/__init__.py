"""Revisions of the store schema, oldest first."""
