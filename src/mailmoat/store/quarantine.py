"""The quarantine in the store: which messages are held, and discarding one (shared by the API and the CLI)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from mailmoat.recall.selection import Selector, message_conditions
from mailmoat.store.db import HELD, Store
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.queries import recipient_is

QUARANTINED = "quarantined"
DELETED = "deleted"
RELEASED = "released"


class QuarantineError(Exception):
    """A quarantine action that cannot be done; `missing` when there is no such message at all."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def held(session: Session, selector: Selector | None = None, limit: int = 50, offset: int = 0) -> tuple[int, list[MessageRow]]:
    """(how many messages are held, the page of them newest first), narrowed by the recall selectors.

    Raises SelectionError for a selector that cannot be read (a bad --since)."""
    conds: list[Any] = [MessageRow.status == QUARANTINED]
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
    if row.status != QUARANTINED:
        raise QuarantineError(f"message {mail_id} is not in quarantine (status {row.status})")
    row.status = DELETED
    session.execute(
        update(DeliveryRow).where(DeliveryRow.message_id == mail_id, DeliveryRow.status == HELD).values(status=DELETED)
    )


def release_state(store: Store, mail_id: str) -> str:
    """After a release: "released", or "partly released" while copies for other recipients stay held."""
    row = store.get_message(mail_id)
    return RELEASED if row is None or row.status == RELEASED else "partly released"
