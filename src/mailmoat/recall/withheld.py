"""Copies still in the delivery queue when their message was recalled or marked a threat: withheld
when their turn comes, not delivered; put back in the queue when that recall is restored or the
mark taken back."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailmoat.store.db import DEFERRED, WITHHELD
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow

_UNDONE = ("restoring", "restored")


def withheld_because(session: Session, message_id: str, status: str) -> str:
    """Why a queued copy of this message must not be delivered now ("" when it may be)."""
    if status == "condemned":
        return "its message is marked as a threat"
    job = session.scalar(
        select(RecallJobRow.id).join(RecallCopyRow, RecallCopyRow.job_id == RecallJobRow.id)
        .where(RecallCopyRow.message_id == message_id, RecallCopyRow.state.in_(("recalled", "already_gone")),
               RecallJobRow.state.notin_(_UNDONE))
        .limit(1)
    )
    return f"its message was recalled (job {job})" if job else ""


def requeue(store: Any, message_ids: Iterable[str], now: float | None = None) -> int:
    """Copies withheld from these messages go back in the queue, due at once, where nothing holds
    them any more (the recall restored, the mark taken back); returns how many."""
    now = time.time() if now is None else now
    back = 0
    with store.session() as s:
        for mail_id in dict.fromkeys(message_ids):
            row = s.get(MessageRow, mail_id)
            if row is None or withheld_because(s, mail_id, row.status):
                continue
            res = s.execute(
                update(DeliveryRow).where(DeliveryRow.message_id == mail_id, DeliveryRow.status == WITHHELD)
                .values(status=DEFERRED, next_attempt=now, reply="back in the queue: no longer withheld", updated_at=now)
            )
            back += int(res.rowcount or 0)
        s.commit()
    return back
