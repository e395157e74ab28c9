"""Helpers for recall tests: record delivered copies and lay them out like the Maildir delivery does."""

from __future__ import annotations

import time
from pathlib import Path

from mailmoat.store.db import Store
from mailmoat.store.models import DeliveryRow, IndicatorRow, MessageRow


class SqliteStore(Store):
    """The real store on a SQLite file of the test's own (recall only needs `session()`)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"sqlite:///{path}")


def raw_message(tracking_id: str, subject: str, message_id: str, body: str = "hello") -> bytes:
    return (
        f"X-Mailmoat-Id: {tracking_id}\r\nFrom: attacker@evil.example\r\nTo: someone@corp.example\r\n"
        f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n\r\n{body}\r\n"
    ).encode()


def record(
    store: SqliteStore,
    mail_root: Path,
    mail_id: str,
    recipients: list[str],
    *,
    subject: str = "工资补贴通知",
    sender: str = "attacker@evil.example",
    url_domain: str = "evil-bank.example",
    message_id: str = "",
    received_at: float | None = None,
    symbols: tuple[str, ...] = (),
) -> list[str]:
    """Record a message delivered to each recipient and write its Maildir copies; returns tracking ids."""
    message_id = message_id or f"<{mail_id}@evil.example>"
    tids = []
    with store.session() as s:
        s.add(
            MessageRow(
                id=mail_id, received_at=received_at or time.time(), direction="inbound", mail_from=sender,
                rcpt_tos=recipients, from_addr=sender, from_domain=sender.rpartition("@")[2], subject=subject,
                message_id=message_id, action="deliver", score=0.0,
            )
        )
        s.add(IndicatorRow(message_id=mail_id, kind="url_domain", value=url_domain))
        s.add(IndicatorRow(message_id=mail_id, kind="sender_domain", value=sender.rpartition("@")[2]))
        s.add(IndicatorRow(message_id=mail_id, kind="url", value=f"https://{url_domain}/login"))
        for sym in symbols:
            s.add(IndicatorRow(message_id=mail_id, kind="symbol", value=sym))
        for i, rcpt in enumerate(recipients):
            tid = f"{mail_id}-{i:04d}"
            tids.append(tid)
            s.add(DeliveryRow(message_id=mail_id, recipient=rcpt, mailbox=rcpt, tracking_id=tid, status="delivered"))
            box = mail_root / rcpt
            for sub in ("cur", "new", "tmp"):
                (box / sub).mkdir(parents=True, exist_ok=True)
            (box / "new" / f"{int(time.time())}.{tid}.testhost").write_bytes(raw_message(tid, subject, message_id))
        s.commit()
    return tids


def find_copy(mail_root: Path, rcpt: str, tid: str) -> list[Path]:
    return [p for p in (mail_root / rcpt).rglob(f"*.{tid}.*") if p.parent.name in ("cur", "new")]
