"""The gateway's state at a glance (`mailmoat status`): spool backlog, delivery queue, quarantine, the last hour, incidents, recalls.

Read-only: it opens the spool's directories and the record, never the spool lock, so it runs
beside a working gateway. `attention` lists what an operator should look at; the command exits 1
when it is not empty, for monitoring scripts.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mailmoat.config import Settings
from mailmoat.digest.requests import count_open
from mailmoat.reports.triage import count_open as open_reports
from mailmoat.store.accounts_models import IncidentRow
from mailmoat.store.db import DEFERRED, FAILED, PENDING, SENDING, Store
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.quarantine import is_held
from mailmoat.store.recall_models import RESUMABLE_STATES, RecallJobRow

# Mail waiting this long in the spool is not being processed (the workers keep up in seconds).
SPOOL_STALE = 300.0
# A recall not settled after this long is stuck (a mailbox server down, a task worker gone).
RECALL_STALE = 3600.0
# Free space under the data dir below this share of its file system, or below DISK_LOW_BYTES: the
# spool cannot take mail once the disk is full (clients are told to try later, 451).
DISK_LOW_FRACTION = 0.05
DISK_LOW_BYTES = 1 << 30
# Of the unsettled recalls, the ones something should be working on: a planned job is a preview
# nobody ran yet, and one awaiting approval waits for a person, however long either takes.
_WORKING_RECALLS = (*RESUMABLE_STATES, "restoring")
_UNSETTLED_RECALLS = ("planned", "awaiting_approval", *_WORKING_RECALLS)


@dataclass
class Status:
    spool_waiting: int = 0  # accepted, waiting for a worker
    spool_deferred: int = 0  # waiting for a later scan (an analyzer asked to try again)
    spool_processing: int = 0  # claimed by a worker now
    spool_oldest_age: float = 0.0  # seconds since the oldest waiting or claimed entry was written
    queue: dict[str, int] = field(default_factory=dict)  # delivery copies by status: pending, sending, deferred
    queue_oldest_age: float = 0.0  # seconds since the oldest deferred copy was accepted
    queue_last_reply: str = ""  # the downstream reply of the most recently deferred copy
    # Copies the mail system refused for good in the last day (shown, not flagged: a site's mail
    # system refuses some every day, an unknown mailbox say, and the senders get their notices).
    failed_24h: int = 0
    held: int = 0  # messages in quarantine
    release_requests: int = 0  # recipients' requests from digests waiting for a decision
    reports_open: int = 0  # messages colleagues reported that nobody has condemned or dismissed
    last_hour: dict[str, int] = field(default_factory=dict)  # messages by verdict action
    open_incidents: int = 0
    recalls_unsettled: int = 0
    recalls_stale: int = 0
    disk_free_bytes: int = 0  # on the data dir's file system
    disk_free_fraction: float = 0.0
    # What to look at: {"kind": spool_stale | queue_deferred | incidents_open | recalls_stale |
    # release_requests | reports_open | disk_low, "text": the line `mailmoat status` prints}; the console words each kind itself.
    attention: list[dict[str, str]] = field(default_factory=list)

    def notice(self, kind: str, text: str) -> None:
        self.attention.append({"kind": kind, "text": text})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return [e for e in it if e.is_file() and not e.name.startswith(".")]
    except FileNotFoundError:
        return []


def _mtime(entry: os.DirEntry[str]) -> float | None:
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:  # claimed or finished while we looked
        return None


def spool_backlog(spool_dir: Path, status: Status, now: float) -> None:
    """Counts of the spool's entries. A deferred entry is one whose mtime is in the future (its next try)."""
    oldest = now
    for e in _entries(spool_dir / "new"):
        mtime = _mtime(e)
        if mtime is None:
            continue
        if mtime > now:
            status.spool_deferred += 1
        else:
            status.spool_waiting += 1
            oldest = min(oldest, mtime)
    work = spool_dir / "work"
    for owner in (work.iterdir() if work.is_dir() else ()):
        for e in _entries(owner):
            mtime = _mtime(e)
            if mtime is not None:
                status.spool_processing += 1
                oldest = min(oldest, mtime)
    status.spool_oldest_age = max(0.0, now - oldest)


def record_state(store: Store, status: Status, now: float) -> None:
    with store.session() as s:
        rows = s.execute(
            select(DeliveryRow.status, func.count())
            .where(DeliveryRow.status.in_([PENDING, SENDING, DEFERRED]))
            .group_by(DeliveryRow.status)
        ).all()
        status.queue = {str(k): int(v) for k, v in rows}
        oldest = s.scalar(
            select(func.min(MessageRow.received_at)).join(DeliveryRow, DeliveryRow.message_id == MessageRow.id)
            .where(DeliveryRow.status == DEFERRED)
        )
        status.queue_oldest_age = max(0.0, now - float(oldest)) if oldest else 0.0
        status.queue_last_reply = s.scalar(
            select(DeliveryRow.reply).where(DeliveryRow.status == DEFERRED).order_by(DeliveryRow.updated_at.desc()).limit(1)
        ) or ""
        status.failed_24h = int(s.scalar(
            select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == FAILED, DeliveryRow.updated_at >= now - 86400)
        ) or 0)
        status.held = int(s.scalar(
            select(func.count()).select_from(MessageRow).where(is_held())
        ) or 0)
        status.release_requests = count_open(s)
        status.reports_open = open_reports(s)
        by_action = s.execute(
            select(MessageRow.action, func.count()).where(MessageRow.received_at >= now - 3600).group_by(MessageRow.action)
        ).all()
        status.last_hour = {str(k): int(v) for k, v in by_action}
        status.open_incidents = int(s.scalar(
            select(func.count()).select_from(IncidentRow).where(IncidentRow.state == "open")
        ) or 0)
        jobs = s.execute(select(RecallJobRow.state, RecallJobRow.updated_at, RecallJobRow.created_at)
                         .where(RecallJobRow.state.in_(_UNSETTLED_RECALLS))).all()
        status.recalls_unsettled = len(jobs)
        status.recalls_stale = sum(
            1 for state, updated, created in jobs
            if state in _WORKING_RECALLS and now - max(updated or 0.0, created or 0.0) > RECALL_STALE
        )


def _count(n: int, one: str, many: str) -> str:
    """'1 copy waits', '3 copies wait'."""
    return f"{n} {one if n == 1 else many}"


def gather(settings: Settings, store: Store, now: float | None = None) -> Status:
    """Everything `mailmoat status` shows, with the attention list filled in."""
    now = time.time() if now is None else now
    status = Status()
    spool_backlog(settings.spool_dir, status, now)
    record_state(store, status, now)
    try:
        disk = shutil.disk_usage(settings.data_path)
        status.disk_free_bytes, status.disk_free_fraction = disk.free, disk.free / disk.total if disk.total else 0.0
    except OSError:
        pass
    if status.spool_waiting + status.spool_processing and status.spool_oldest_age > SPOOL_STALE:
        status.notice(
            "spool_stale",
            f"mail has waited {status.spool_oldest_age / 60:.0f} min in the spool: is the gateway running and its workers alive?",
        )
    if status.queue.get(DEFERRED):
        status.notice(
            "queue_deferred",
            f"{_count(status.queue[DEFERRED], 'copy waits', 'copies wait')} for the mail system (oldest accepted {status.queue_oldest_age / 60:.0f} min ago;"
            f" last reply: {status.queue_last_reply or '-'})",
        )
    if status.open_incidents:
        status.notice("incidents_open", f"{_count(status.open_incidents, 'open compromised-account incident', 'open compromised-account incidents')} (`mailmoat incidents list`)")
    if status.disk_free_bytes and (status.disk_free_fraction < DISK_LOW_FRACTION or status.disk_free_bytes < DISK_LOW_BYTES):
        status.notice(
            "disk_low",
            f"{status.disk_free_bytes / 2**30:.1f} GiB ({status.disk_free_fraction:.0%}) free on the data dir's disk:"
            " the spool stops taking mail when it is full",
        )
    if status.recalls_stale:
        status.notice("recalls_stale", f"{_count(status.recalls_stale, 'recall', 'recalls')} unsettled for over an hour (`mailmoat recall list`)")
    if status.reports_open:
        status.notice("reports_open", f"{_count(status.reports_open, 'message reported by colleagues waits', 'messages reported by colleagues wait')} for a decision (`mailmoat reports list`)")
    if status.release_requests:
        status.notice("release_requests",
                      f"{_count(status.release_requests, 'release request from a recipient waits', 'release requests from recipients wait')} for a decision (`mailmoat quarantine requests`)")
    return status
