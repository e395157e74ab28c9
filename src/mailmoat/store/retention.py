"""Retention: delete retained raw messages older than `retention.raw_days` (files or large objects), except those still queued."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update

from mailmoat.config import Settings
from mailmoat.ingest.spool import KEPT_SUFFIX
from mailmoat.schedule import run_every
from mailmoat.store.db import DEFERRED, PENDING, SENDING, Store
from mailmoat.store.models import DeliveryRow, MessageRow

log = logging.getLogger(__name__)


@dataclass
class PurgeReport:
    files: int = 0
    bytes: int = 0
    kept_queued: int = 0


def purge_raw(store: Store, raw_dir: str | os.PathLike[str], days: int, now: float | None = None) -> PurgeReport:
    """Remove raw files older than `days` (by file time) and clear `raw_path` on their records.

    A message with a copy still waiting for delivery keeps its raw file: the retry queue needs it.
    `days <= 0` keeps nothing that is not queued.
    """
    report = PurgeReport()
    root = Path(raw_dir)
    if not root.is_dir():
        return report
    cutoff = (now if now is not None else time.time()) - max(0, days) * 86400
    with store.session() as s:
        queued = set(
            s.scalars(
                select(DeliveryRow.message_id).where(DeliveryRow.status.in_([PENDING, SENDING, DEFERRED])).distinct()
            )
        )
    purged_ids: list[str] = []
    for day_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in day_dir.iterdir():
            if not f.is_file():
                continue
            try:
                st = f.stat()
            except OSError:
                continue
            if st.st_mtime >= cutoff:
                continue
            msg_id = f.name.split(".", 1)[0] if f.suffix in (".eml", KEPT_SUFFIX) else ""
            # A kept spool entry with a second link is still in the spool (not yet processed to
            # its end): its link also tells a retry that an earlier attempt may have delivered.
            if msg_id in queued or (f.suffix == KEPT_SUFFIX and st.st_nlink > 1):
                report.kept_queued += 1
                continue
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
                report.files += 1
                report.bytes += st.st_size
                if msg_id:
                    purged_ids.append(msg_id)
        with contextlib.suppress(OSError):
            day_dir.rmdir()  # only succeeds once empty
    for i in range(0, len(purged_ids), 500):
        chunk = purged_ids[i : i + 500]
        with store.session() as s:
            s.execute(update(MessageRow).where(MessageRow.id.in_(chunk)).values(raw_path=""))
    return report


def purge_everywhere(store: Store, settings: Settings, now: float | None = None) -> PurgeReport:
    """`purge_raw` of the local raw store and of a shared blob directory, and the purge of
    PostgreSQL large objects: wherever the configured blob store keeps retained messages."""
    days = settings.retention.raw_days
    report = purge_raw(store, settings.raw_dir, days, now)
    shared = settings.blobs.path
    if settings.blobs.backend == "file" and shared and Path(shared).resolve() != Path(settings.raw_dir).resolve():
        more = purge_raw(store, shared, days, now)
        report.files += more.files
        report.bytes += more.bytes
        report.kept_queued += more.kept_queued
    if settings.blobs.backend == "postgres" and store.engine.dialect.name == "postgresql":
        from mailmoat.blobstore import purge_postgres

        report.files += purge_postgres(store.engine, days, now)
    return report


async def run_retention(store: Store, settings: Settings, stop: asyncio.Event, interval: float = 3600.0) -> None:
    """Purge once now and then every `interval` seconds until `stop` is set."""

    async def purge() -> None:
        from mailmoat.policy.site_lists import purge_expired

        report = await asyncio.to_thread(purge_everywhere, store, settings)
        if report.files:
            log.info("retention: removed %d raw messages (%d bytes)", report.files, report.bytes)
        if expired := await asyncio.to_thread(purge_expired, store):
            log.info("retention: removed %d expired allow/deny list entries", expired)

    await run_every(stop, 0.0, interval, purge, log, "retention purge")
