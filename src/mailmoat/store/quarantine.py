"""The quarantine in the store: which messages are held, and discarding one (shared by the API and the CLI)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from mailmoat.recall.selection import Selector, message_conditions
from mailmoat.store.audit import audit
from mailmoat.store.audit_models import AuditRow
from mailmoat.store.db import HELD, Store
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.queries import recipient_is

QUARANTINED = "quarantined"
DELETED = "deleted"
RELEASED = "released"
CONDEMNED = "condemned"  # a person marked it a threat (the status it had is in the mark's audit row)
PROCESSED = "processed"


class QuarantineError(Exception):
    """A quarantine action that cannot be done; `missing` when there is no such message at all."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def is_held() -> ColumnElement[bool]:
    """Messages in quarantine: held, or held and then marked a threat (still held, never released)."""
    return or_(MessageRow.status == QUARANTINED, and_(
        MessageRow.status == CONDEMNED,
        exists().where(DeliveryRow.message_id == MessageRow.id, DeliveryRow.status == HELD)))


def mark_condemned(session: Session, row: MessageRow, actor: str, reason: str = "", source: str = "",
                   *, once: bool = False) -> list[str] | None:
    """A person's word that a message is a threat (audit `message.condemn`). The status it had is
    kept in the audit row, so that taking the mark back restores it: held stays held, deleted deleted.
    Its recipients' open release requests are declined ("marked as a threat"): returns who asked, to
    be told (digest.decline_notice), rather than have their requests vanish unanswered.

    `once`: None, and nothing done, when the message is marked already, or was marked meanwhile
    (two colleagues' reports condemning it at the same moment, on two workers, mark it once)."""
    from mailmoat.digest.requests import OPEN, state_of
    from mailmoat.store.digest_models import ReleaseRequestRow

    was = row.status
    if once and was == CONDEMNED:
        return None
    if was != CONDEMNED:
        # Compare and set: of two markings at once, the one whose update finds the old status wins.
        won = session.execute(update(MessageRow).where(MessageRow.id == row.id, MessageRow.status == was)
                              .values(status=CONDEMNED)).rowcount  # type: ignore[attr-defined]
        if not won:
            return None if once else []
    asked = [r for r in session.scalars(select(ReleaseRequestRow).where(
        ReleaseRequestRow.message_id == row.id, ReleaseRequestRow.declined_at == 0.0))
        if state_of(session, r, was) == OPEN]
    detail = {} if was == CONDEMNED else {"was": was}
    row.status = CONDEMNED
    audit(session, actor, "message.condemn", row.id, source=source, note=reason, detail=detail)
    now = time.time()
    for r in asked:
        r.declined_at, r.declined_by, r.note = now, actor[:128], "marked as a threat"
        audit(session, actor, "quarantine.decline", row.id, source=source, detail={"request": r.id, "recipient": r.recipient},
              note="marked as a threat")
    return [r.recipient for r in asked]


def unmark_condemned(session: Session, row: MessageRow, actor: str, *, source: str = "", note: str = "",
                     detail: dict[str, Any] | None = None) -> str:
    """Take back a mark (audit `message.uncondemn`): the message gets the status it had before it
    (held stays held, deleted deleted), which is returned."""
    row.status = status_before_mark(session, row.id)
    audit(session, actor, "message.uncondemn", row.id, source=source, note=note, detail={**(detail or {}), "status": row.status})
    return row.status


def status_before_mark(session: Session, mail_id: str) -> str:
    """The status a condemned message had before it was marked (processed for marks older than this record)."""
    for detail in session.scalars(select(AuditRow.detail).where(
            AuditRow.action == "message.condemn", AuditRow.target == mail_id).order_by(AuditRow.id.desc())):
        was = (detail or {}).get("was")
        if isinstance(was, str) and was and was != CONDEMNED:
            if was == QUARANTINED and not session.scalar(select(exists().where(
                    DeliveryRow.message_id == mail_id, DeliveryRow.status == HELD))):
                return DELETED  # its held copies were deleted while it was marked
            return was
    return PROCESSED


def held(session: Session, selector: Selector | None = None, limit: int = 50, offset: int = 0) -> tuple[int, list[MessageRow]]:
    """(how many messages are held, the page of them newest first), narrowed by the recall selectors.

    Raises SelectionError for a selector that cannot be read (a bad --since)."""
    conds: list[Any] = [is_held()]
    if selector is not None:
        conds += message_conditions(selector)
        if selector.recipient:
            conds.append(MessageRow.id.in_(select(DeliveryRow.message_id).where(recipient_is(selector.recipient))))
    where = and_(*conds)
    total = session.scalar(select(func.count()).select_from(MessageRow).where(where)) or 0
    rows = session.scalars(
        select(MessageRow).where(where).order_by(MessageRow.received_at.desc(), MessageRow.id.desc()).limit(limit).offset(offset)
    ).all()
    return total, list(rows)


def discard(session: Session, mail_id: str) -> None:
    """Mark a held message deleted, with its held copies: it will never be delivered. The raw copy
    stays until retention ends (an analyst may still read it)."""
    row = session.get(MessageRow, mail_id)
    if row is None:
        raise QuarantineError(f"no message {mail_id}", missing=True)
    if not session.scalar(select(is_held()).where(MessageRow.id == mail_id)):
        raise QuarantineError(f"message {mail_id} is not in quarantine (status {row.status})")
    if row.status != CONDEMNED:  # a mark stays: its links and look-alikes still condemn other mail
        row.status = DELETED
    session.execute(
        update(DeliveryRow).where(DeliveryRow.message_id == mail_id, DeliveryRow.status == HELD).values(status=DELETED)
    )


def release_state(store: Store, mail_id: str) -> str:
    """After a release: "released", or "partly released" while copies for other recipients stay held."""
    row = store.get_message(mail_id)
    return RELEASED if row is None or row.status == RELEASED else "partly released"
