"""The append-only audit log: who did what, when, from where."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailmoat.store.base import Base


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(320))  # user name, "system", "cli:<unix user>"
    action: Mapped[str] = mapped_column(String(64), index=True)  # e.g. recall.plan, recall.run, quarantine.release
    target: Mapped[str] = mapped_column(String(255), default="")  # job id, message id ...
    source: Mapped[str] = mapped_column(String(255), default="")  # IP address or "cli"
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
