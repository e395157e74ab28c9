"""Retained raw messages where every node reaches them: a (shared) directory, or PostgreSQL large objects.

A blob reference is what `messages.raw_path` holds. Plain paths (every row written before blob
stores, the "file" store, and spool entries kept as the retained copy: `*.spool`) stay valid;
PostgreSQL large objects are written `pglo:<oid>`. `read_blob(ref, store)` reads every kind, so
readers need not know which store wrote it.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, select, text, update

from mailmoat.config import Settings
from mailmoat.durable import absolute, write_file
from mailmoat.ingest.spool import KEPT_SUFFIX, entry_message
from mailmoat.model import Envelope

PG_PREFIX = "pglo:"


class BlobStore(Protocol):
    name: str

    def put(self, envelope: Envelope, raw: bytes) -> str: ...

    def get(self, ref: str) -> bytes | None: ...

    def delete(self, ref: str) -> None: ...


class FileBlobStore:
    """`<root>/<YYYYMM..>/<id>.eml`, written durably (fsync, rename); the reference is the absolute path."""

    name = "file"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def put(self, envelope: Envelope, raw: bytes) -> str:
        # ULID time prefix: directories stay small and sorted by age.
        return str(write_file(absolute(self.root) / envelope.id[:6], f"{envelope.id}.eml", raw))

    def get(self, ref: str) -> bytes | None:
        try:
            data = Path(ref).read_bytes()
        except OSError:
            return None
        # A kept spool entry (the gateway's retained copy) starts with its envelope line.
        return entry_message(data) if ref.endswith(KEPT_SUFFIX) else data

    def delete(self, ref: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            Path(ref).unlink()


class PgBlobStore:
    """PostgreSQL large objects in the store's database: reachable by every node, no shared mount needed."""

    name = "postgres"

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("blobs.backend = 'postgres' needs a PostgreSQL store")
        self.engine = engine

    def put(self, envelope: Envelope, raw: bytes) -> str:
        from mailmoat.store.models import MessageRow

        with self.engine.begin() as conn:
            # A retry of the same message (pipeline re-run after a crash) reuses its object.
            old = conn.execute(select(MessageRow.raw_path).where(MessageRow.id == envelope.id)).scalar()
            if old and old.startswith(PG_PREFIX):
                size = conn.execute(
                    text("SELECT length(lo_get(CAST(:o AS oid)))  WHERE EXISTS "
                         "(SELECT 1 FROM pg_largeobject_metadata WHERE oid = CAST(:o AS oid))"),
                    {"o": int(old[len(PG_PREFIX) :])},
                ).scalar()
                if size == len(raw):
                    return str(old)
            oid = conn.execute(text("SELECT lo_from_bytea(0, :data)"), {"data": raw}).scalar()
        return f"{PG_PREFIX}{int(oid or 0)}"

    def get(self, ref: str) -> bytes | None:
        oid = _oid(ref)
        if oid is None:
            return None
        with self.engine.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_largeobject_metadata WHERE oid = CAST(:o AS oid)"), {"o": oid}).scalar()
            if not exists:
                return None
            data = conn.execute(text("SELECT lo_get(CAST(:o AS oid))"), {"o": oid}).scalar()
        return bytes(data) if data is not None else None

    def delete(self, ref: str) -> None:
        oid = _oid(ref)
        if oid is None:
            return
        with self.engine.begin() as conn:
            conn.execute(
                text("SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = CAST(:o AS oid)"), {"o": oid}
            )


def _oid(ref: str) -> int | None:
    if not ref.startswith(PG_PREFIX):
        return None
    try:
        return int(ref[len(PG_PREFIX) :])
    except ValueError:
        return None


def open_blobstore(settings: Settings, engine: Engine | None = None) -> BlobStore:
    """The configured blob store ([blobs] backend/path)."""
    backend = settings.blobs.backend
    if backend == "file":
        return FileBlobStore(settings.blobs.path or settings.raw_dir)
    if backend == "postgres":
        if engine is None:
            raise ValueError("blobs.backend = 'postgres' needs the store's engine")
        return PgBlobStore(engine)
    raise ValueError(f"blobs.backend: expected 'file' or 'postgres', got {backend!r}")


def read_blob(ref: str, engine: Engine | None = None) -> bytes | None:
    """The bytes behind a reference of any kind (plain path or pglo:<oid>); None when gone."""
    if not ref:
        return None
    if ref.startswith(PG_PREFIX):
        if engine is None or engine.dialect.name != "postgresql":
            return None
        return PgBlobStore(engine).get(ref)
    return FileBlobStore("/").get(ref)


def purge_postgres(engine: Engine, days: int, now: float | None = None) -> int:
    """Unlink large objects of messages older than `days` with no copy waiting for delivery; clear their refs."""
    from mailmoat.store.models import DeliveryRow, MessageRow

    cutoff = (now if now is not None else time.time()) - max(0, days) * 86400
    with engine.begin() as conn:
        queued = select(DeliveryRow.message_id).where(DeliveryRow.status.in_(["pending", "sending", "deferred"]))
        rows = conn.execute(
            select(MessageRow.id, MessageRow.raw_path).where(
                MessageRow.raw_path.like(f"{PG_PREFIX}%"), MessageRow.received_at < cutoff, MessageRow.id.not_in(queued)
            )
        ).all()
        for _, ref in rows:
            oid = _oid(ref)
            if oid is not None:
                conn.execute(
                    text("SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = CAST(:o AS oid)"), {"o": oid}
                )
        if rows:
            conn.execute(update(MessageRow).where(MessageRow.id.in_([r[0] for r in rows])).values(raw_path=""))
    return len(rows)


__all__ = ["PG_PREFIX", "BlobStore", "FileBlobStore", "PgBlobStore", "open_blobstore", "purge_postgres", "read_blob"]
