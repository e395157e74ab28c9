"""Recall jobs and the state of every delivered copy they act on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailmoat.store.base import Base

# Jobs that something is carrying on with (a restarted process resumes them; `mailmoat status`
# flags one that has not moved for long).
RESUMABLE_STATES = ("approved", "running", "verifying")


class RecallJobRow(Base):
    __tablename__ = "recall_jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    updated_at: Mapped[float] = mapped_column(Float, default=0.0)
    finished_at: Mapped[float] = mapped_column(Float, default=0.0)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    approved_by: Mapped[str] = mapped_column(String(320), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    trigger: Mapped[str] = mapped_column(String(64), default="manual")  # manual, auto:verdict, auto:indicator, auto:rescan, auto:wave, incident
    selection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    backend: Mapped[str] = mapped_column(String(32), default="maildir")
    mode: Mapped[str] = mapped_column(String(16), default="move")
    # planned → (awaiting_approval → approved) → running → verifying → done | failed; restoring → restored
    state: Mapped[str] = mapped_column(String(24), index=True)
    lease_owner: Mapped[str] = mapped_column(String(128), default="")
    lease_until: Mapped[float] = mapped_column(Float, default=0.0)

    copies: Mapped[list[RecallCopyRow]] = relationship(back_populates="job", cascade="all, delete-orphan")


class RecallCopyRow(Base):
    __tablename__ = "recall_copies"
    __table_args__ = (UniqueConstraint("job_id", "tracking_id", name="uq_recall_copies_job_tracking"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("recall_jobs.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(String(40), index=True)  # the recorded message (envelope id)
    header_message_id: Mapped[str] = mapped_column(String(998), default="")
    tracking_id: Mapped[str] = mapped_column(String(64), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    mailbox: Mapped[str] = mapped_column(String(320))  # login used by the backend
    # pending, recalled, not_found, already_gone, failed, restored
    state: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    folder: Mapped[str] = mapped_column(String(512), default="")  # where the user had it
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    internal_date: Mapped[float] = mapped_column(Float, default=0.0)
    location: Mapped[str] = mapped_column(Text, default="")  # where it is now (hidden folder path, uid ...)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[float] = mapped_column(Float, default=0.0)

    job: Mapped[RecallJobRow] = relationship(back_populates="copies")
