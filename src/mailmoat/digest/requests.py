"""Release requests: a recipient asks, from a digest, that the administrators release their copy; the administrators see, release or decline them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailmoat.store.db import HELD, Store
from mailmoat.store.digest_models import ReleaseRequestRow
from mailmoat.store.models import DeliveryRow, MessageRow

OPEN, DECLINED, ANSWERED = "open", "declined", "answered"


class RequestError(Exception):
    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def record_request(store: Store, mail_id: str, recipient: str, now: float | None = None) -> bool:
    """Record, in a session of its own, that `recipient` asks for their copy of `mail_id`; False
    when they already had (a request declined before is open again: they asked once more)."""
    rcpt = recipient.strip().lower()
    now = time.time() if now is None else now

    def once() -> bool:
        with store.session() as s:
            row = s.scalar(select(ReleaseRequestRow).where(ReleaseRequestRow.message_id == mail_id,
                                                           ReleaseRequestRow.recipient == rcpt))
            if row is not None:
                row.requested_at, row.declined_at, row.declined_by, row.note = now, 0.0, "", ""
                return False
            s.add(ReleaseRequestRow(message_id=mail_id, recipient=rcpt, requested_at=now, declined_at=0.0,
                                    declined_by="", note=""))
            return True

    try:
        return once()
    except IntegrityError:  # the same copy asked for through two links at once: the loser updates
        return once()


def _copy_held(session: Session, mail_id: str, recipient: str) -> bool:
    return bool(session.scalar(
        select(func.count()).select_from(DeliveryRow).where(
            DeliveryRow.message_id == mail_id, func.lower(DeliveryRow.recipient) == recipient, DeliveryRow.status == HELD)
    ))


def state_of(session: Session, row: ReleaseRequestRow, status: str | None = None) -> str:
    """OPEN (the copy is still held, nobody declined), DECLINED, or ANSWERED (the copy is no longer
    held: released or deleted); `status`: the message's, when the caller is changing it."""
    if row.declined_at:
        return DECLINED
    msg = session.get(MessageRow, row.message_id)
    current = status if status is not None else (msg.status if msg is not None else None)
    if msg is None or current != "quarantined" or not _copy_held(session, row.message_id, row.recipient):
        return ANSWERED
    return OPEN


def request_dict(session: Session, row: ReleaseRequestRow, state: str | None = None) -> dict[str, Any]:
    return {"id": row.id, "mail_id": row.message_id, "recipient": row.recipient, "requested_at": row.requested_at,
            "state": state or state_of(session, row), "declined_at": row.declined_at, "declined_by": row.declined_by,
            "note": row.note}


def _open(what: Any) -> Any:
    """`what` selected over the open requests: not declined, the message still quarantined, the
    recipient's copy still held."""
    return (
        select(what)
        .join(MessageRow, MessageRow.id == ReleaseRequestRow.message_id)
        .join(DeliveryRow, (DeliveryRow.message_id == ReleaseRequestRow.message_id)
              & (func.lower(DeliveryRow.recipient) == ReleaseRequestRow.recipient))
        .where(ReleaseRequestRow.declined_at == 0.0, MessageRow.status == "quarantined", DeliveryRow.status == HELD)
    )


def open_requests(session: Session, limit: int = 200, mail_ids: Sequence[str] | None = None) -> list[tuple[ReleaseRequestRow, MessageRow]]:
    """The requests waiting for a decision, oldest first, with their messages (only for `mail_ids`
    when given)."""
    ids = _open(ReleaseRequestRow.id).distinct()
    if mail_ids is not None:
        ids = ids.where(ReleaseRequestRow.message_id.in_(list(mail_ids)))
    rows = session.execute(
        select(ReleaseRequestRow, MessageRow).join(MessageRow, MessageRow.id == ReleaseRequestRow.message_id)
        .where(ReleaseRequestRow.id.in_(ids)).order_by(ReleaseRequestRow.requested_at, ReleaseRequestRow.id).limit(limit)
    ).all()
    return [(req, msg) for req, msg in rows]


def count_open(session: Session) -> int:
    return int(session.scalar(_open(func.count(func.distinct(ReleaseRequestRow.id)))) or 0)


def for_message(session: Session, mail_id: str) -> list[dict[str, Any]]:
    """Every request made for a message's copies, with its state."""
    rows = session.scalars(select(ReleaseRequestRow).where(ReleaseRequestRow.message_id == mail_id)
                           .order_by(ReleaseRequestRow.requested_at)).all()
    return [request_dict(session, r) for r in rows]


def decline(session: Session, request_id: int, by: str, note: str = "", now: float | None = None) -> dict[str, Any]:
    """Decline an open request: the copy stays held, and the request leaves the list."""
    row = session.get(ReleaseRequestRow, request_id)
    if row is None:
        raise RequestError(f"no release request {request_id}", missing=True)
    state = state_of(session, row)
    if state != OPEN:
        raise RequestError(f"release request {request_id} is {state}, not open")
    row.declined_at, row.declined_by, row.note = time.time() if now is None else now, by[:128], note[:500]
    return request_dict(session, row, DECLINED)
