"""Allow and deny list entries kept in the store: what administrators add from the console, the API or the CLI."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mailmoat.store.base import Base


class SenderListRow(Base):
    """One entry of the allow or deny list: a sender address, a sender domain (and its sub-domains)
    or a client IP network. Every node's policy reads the table, so an entry holds on all of them."""

    __tablename__ = "sender_lists"
    __table_args__ = (UniqueConstraint("list", "kind", "value", name="uq_sender_lists_entry"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    list: Mapped[str] = mapped_column(String(8))  # allow, deny
    kind: Mapped[str] = mapped_column(String(8))  # sender, domain, ip
    value: Mapped[str] = mapped_column(String(320))  # lower case; a network in CIDR form
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[float] = mapped_column(Float, default=0.0)
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)  # 0 = never
