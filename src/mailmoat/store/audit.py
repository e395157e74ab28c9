"""The audit log: writing (rows are only ever added, never changed) and reading it filtered."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailmoat.store.audit_models import AuditRow


def audit(
    session: Session,
    actor: str,
    action: str,
    target: str = "",
    *,
    source: str = "",
    detail: dict[str, Any] | None = None,
    note: str = "",
) -> AuditRow:
    row = AuditRow(
        at=time.time(), actor=actor, action=action, target=target, source=source, detail=detail or {}, note=note
    )
    session.add(row)
    return row


def read_audit(
    session: Session,
    *,
    actor: str = "",
    action: str = "",
    target: str = "",
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """(how many rows match, the page of them newest first). `action` is exact, or a prefix when it
    ends in "." ("recall." is every recall action)."""
    conds: list[Any] = []
    if actor:
        conds.append(AuditRow.actor == actor)
    if action:
        conds.append(AuditRow.action.like(action.replace("%", "") + "%") if action.endswith(".") else AuditRow.action == action)
    if target:
        conds.append(AuditRow.target == target)
    if since is not None:
        conds.append(AuditRow.at >= since)
    if until is not None:
        conds.append(AuditRow.at <= until)
    total = session.scalar(select(func.count()).select_from(AuditRow).where(*conds)) or 0
    rows = session.scalars(select(AuditRow).where(*conds).order_by(AuditRow.id.desc()).limit(limit).offset(offset)).all()
    items = [
        {"id": r.id, "at": r.at, "actor": r.actor, "action": r.action, "target": r.target, "source": r.source,
         "detail": r.detail, "note": r.note}
        for r in rows
    ]
    return int(total), items
