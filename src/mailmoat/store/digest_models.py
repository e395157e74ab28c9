"""Quarantine digests sent to recipients, and the release links they carry."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mailmoat.store.base import Base


class DigestRow(Base):
    """One recipient's digest for one scheduled time. The unique (recipient, slot) is the claim: of
    several nodes (or a scheduled run and a hand-run command) only the first sends it."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("recipient", "slot", name="uq_digests_recipient_slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(320), index=True)  # lower case
    slot: Mapped[str] = mapped_column(String(32))  # the scheduled time it stands for, "2026-12-01T08"
    status: Mapped[str] = mapped_column(String(16), default="sending")  # sending, sent, failed
    items: Mapped[int] = mapped_column(Integer, default=0)
    # The newest held message it listed (received_at): the next digest is due only for newer ones.
    covered_until: Mapped[float] = mapped_column(Float, default=0.0)
    mail_id: Mapped[str] = mapped_column(String(40), default="")  # the digest message in the store
    at: Mapped[float] = mapped_column(Float, default=0.0)


class DigestLinkRow(Base):
    """A link of a digest: a random token (only its hash is kept) that lets one recipient release
    their own copy of one held message (`kind` "release"), or ask the administrators to ("request"),
    once, until it expires."""

    __tablename__ = "digest_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(40), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    used_at: Mapped[float] = mapped_column(Float, default=0.0)
    kind: Mapped[str] = mapped_column(String(8), default="release", server_default="release")


class ReleaseRequestRow(Base):
    """A recipient's request, from a digest, that the administrators release their copy of a held
    message. It is open while that copy is held and nobody declined it; a release of the copy (by
    anyone, by any means) answers it."""

    __tablename__ = "release_requests"
    __table_args__ = (UniqueConstraint("message_id", "recipient", name="uq_release_requests_copy"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(40), index=True)
    recipient: Mapped[str] = mapped_column(String(320))  # lower case
    requested_at: Mapped[float] = mapped_column(Float, index=True)
    declined_at: Mapped[float] = mapped_column(Float, default=0.0)
    declined_by: Mapped[str] = mapped_column(String(128), default="")
    note: Mapped[str] = mapped_column(String(500), default="")


class SafeSenderRow(Base):
    """A sender one recipient chose, from a digest's release page, to always receive: their copy of
    mail from it that the policy holds as spam (only) is released to them at once."""

    __tablename__ = "safe_senders"
    __table_args__ = (UniqueConstraint("recipient", "sender", name="uq_safe_senders_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(320), index=True)  # lower case
    sender: Mapped[str] = mapped_column(String(320), index=True)  # the From address, lower case
    created_at: Mapped[float] = mapped_column(Float)
    via: Mapped[str] = mapped_column(String(64), default="")  # "digest", or who added it
