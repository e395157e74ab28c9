"""Colleagues' reports of suspect mail, sent to the report mailbox and linked to the message they report."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailmoat.store.base import Base


class ReportRow(Base):
    """One message a colleague reported: the report mail (`report_id`), who sent it, and the
    recorded message it points at (`message_id`, "" when none was found) with how it was found."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = mapped_column(String(40), index=True)  # the report mail's envelope id
    reporter: Mapped[str] = mapped_column(String(320), index=True)  # lower case
    message_id: Mapped[str] = mapped_column(String(40), index=True)  # the reported message's envelope id, or ""
    matched_by: Mapped[str] = mapped_column(String(16))  # tracking_id, message_id, sender_subject, subject, none
    subject: Mapped[str] = mapped_column(String(998), default="")  # as the report gives it
    sender: Mapped[str] = mapped_column(String(320), default="")  # as the report gives it
    reported_at: Mapped[float] = mapped_column(Float, index=True)
    dismissed_at: Mapped[float] = mapped_column(Float, default=0.0)
    dismissed_by: Mapped[str] = mapped_column(String(128), default="")
    notified_at: Mapped[float] = mapped_column(Float, default=0.0)  # when the reporter was told the outcome
    acked_at: Mapped[float] = mapped_column(Float, default=0.0)  # when the reporter was thanked for the report
