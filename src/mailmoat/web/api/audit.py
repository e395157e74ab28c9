"""The audit log, read-only and filterable: who did what, when, from where."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from mailmoat.recall.selection import SelectionError, parse_time
from mailmoat.store import audit as audit_log
from mailmoat.web.api.common import Offset, web
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
    offset: Offset = 0,
) -> dict[str, Any]:
    """Audit rows, newest first."""
    try:
        since_ts = parse_time(since) if since else None
        until_ts = parse_time(until) if until else None
    except SelectionError as exc:
        raise HTTPException(422, str(exc)) from exc
    with web(request).store.session() as s:
        total, items = audit_log.read_audit(
            s, actor=actor, action=action, target=target, since=since_ts, until=until_ts, limit=limit, offset=offset
        )
    return {"total": total, "limit": limit, "offset": offset, "items": items}
