"""The audit log, read-only and filterable: who did what, when, from where."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import func, select

from mailmoat.recall.selection import SelectionError, parse_time
from mailmoat.store.audit_models import AuditRow
from mailmoat.web.api.common import web
from mailmoat.web.auth import Auditor

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("")
def read_audit(
    request: Request,
    who: Auditor,
    actor: str = "",
    action: Annotated[str, Query(description="exact action, or a prefix ending in '.' (e.g. 'recall.')")] = "",
    target: str = "",
    since: Annotated[str, Query(description="3d, 12h, an ISO date or epoch seconds")] = "",
    until: str = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Audit rows, newest first."""
    conds: list[Any] = []
    if actor:
        conds.append(AuditRow.actor == actor)
    if action:
        conds.append(AuditRow.action.like(action.replace("%", "") + "%") if action.endswith(".") else AuditRow.action == action)
    if target:
        conds.append(AuditRow.target == target)
    try:
        if since:
            conds.append(AuditRow.at >= parse_time(since))
        if until:
            conds.append(AuditRow.at <= parse_time(until))
    except SelectionError as exc:
        raise HTTPException(422, str(exc)) from exc
    with web(request).store.session() as s:
        total = s.scalar(select(func.count()).select_from(AuditRow).where(*conds)) or 0
        rows = s.scalars(select(AuditRow).where(*conds).order_by(AuditRow.id.desc()).limit(limit).offset(offset)).all()
        items = [
            {"id": r.id, "at": r.at, "actor": r.actor, "action": r.action, "target": r.target, "source": r.source,
             "detail": r.detail, "note": r.note}
            for r in rows
        ]
    return {"total": total, "limit": limit, "offset": offset, "items": items}
