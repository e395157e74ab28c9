"""Tables for recorded messages, their delivered copies and the indicators that recall searches."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailmoat.store.base import Base


class MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # envelope id (ULID)
    received_at: Mapped[float] = mapped_column(Float, index=True)
    direction: Mapped[str] = mapped_column(String(16), index=True)
    mail_from: Mapped[str] = mapped_column(String(320), default="", index=True)
    rcpt_tos: Mapped[list[str]] = mapped_column(JSON, default=list)
    peer_ip: Mapped[str] = mapped_column(String(64), default="")
    helo: Mapped[str] = mapped_column(String(255), default="")
    auth_user: Mapped[str] = mapped_column(String(320), default="")
    from_addr: Mapped[str] = mapped_column(String(320), default="", index=True)
    from_display: Mapped[str] = mapped_column(String(512), default="")
    from_domain: Mapped[str] = mapped_column(String(255), default="", index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(998), default="", index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    action: Mapped[str] = mapped_column(String(16), index=True)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    symbols: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    headers: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    raw_path: Mapped[str] = mapped_column(String(1024), default="")  # retained raw message ("" once purged)
    status: Mapped[str] = mapped_column(String(16), default="processed")  # processed, quarantined, released, deleted
    scanned_at: Mapped[float] = mapped_column(Float, default=0.0)

    deliveries: Mapped[list[DeliveryRow]] = relationship(back_populates="message", cascade="all, delete-orphan")
    indicators: Mapped[list[IndicatorRow]] = relationship(back_populates="message", cascade="all, delete-orphan")


class DeliveryRow(Base):
    """One copy for one recipient; `tracking_id` is the X-Mailmoat-Id header of that copy."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("message_id", "recipient", name="uq_deliveries_message_rcpt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    mailbox: Mapped[str] = mapped_column(String(320), default="")  # login/mailbox it landed in
    tracking_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending, delivered, deferred, failed, held
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    reply: Mapped[str] = mapped_column(Text, default="")  # downstream reply or error
    location: Mapped[str] = mapped_column(Text, default="")  # backend-specific (e.g. Maildir file path)
    delivered_at: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[float] = mapped_column(Float, default=0.0)

    message: Mapped[MessageRow] = relationship(back_populates="deliveries")


class IndicatorRow(Base):
    """A searchable fact extracted from a message: sender, url, url_domain, sha256, qr, symbol ..."""

    __tablename__ = "indicators"
    __table_args__ = (Index("ix_indicators_kind_value", "kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(2048))

    message: Mapped[MessageRow] = relationship(back_populates="indicators")
