"""Writing to the audit log (rows are only ever added, never changed)."""

from __future__ import annotations

import time
from typing import Any

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
