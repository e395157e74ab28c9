"""Per-account sending profiles, the recent sending events they are built from, and compromise incidents."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailmoat.store.base import Base


class AccountProfileRow(Base):
    """What an internal account usually does; each item keeps first/last seen so new habits mature slowly."""

    __tablename__ = "account_profiles"

    account: Mapped[str] = mapped_column(String(320), primary_key=True)
    first_seen: Mapped[float] = mapped_column(Float, default=0.0)
    last_seen: Mapped[float] = mapped_column(Float, default=0.0)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    recipients_total: Mapped[int] = mapped_column(Integer, default=0)
    hours: Mapped[list[int]] = mapped_column(JSON, default=list)  # messages per hour of day (UTC), 24 slots
    # value -> {"n": count, "first": epoch, "last": epoch}
    ips: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hosts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    names: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recipients: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ext_domains: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # registrable domains the account's links (and QR codes) lead to, outside the organisation
    link_domains: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AccountEventRow(Base):
    """One message an account sent (kept for the signal windows; old rows are pruned)."""

    __tablename__ = "account_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(320), index=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    message_id: Mapped[str] = mapped_column(String(40), default="")  # recorded message (envelope id)
    direction: Mapped[str] = mapped_column(String(16), default="internal")
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    host: Mapped[str] = mapped_column(String(255), default="")
    display: Mapped[str] = mapped_column(String(512), default="")
    internal_rcpts: Mapped[list[str]] = mapped_column(JSON, default=list)
    external_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    n_rcpts: Mapped[int] = mapped_column(Integer, default=0)
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    qrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    action: Mapped[str] = mapped_column(String(16), default="")
    content_threat: Mapped[bool] = mapped_column(Boolean, default=False)  # quarantined by the content engines
    new_ip: Mapped[bool] = mapped_column(Boolean, default=False)
    new_name: Mapped[bool] = mapped_column(Boolean, default=False)  # a department/executive name never used


class IncidentRow(Base):
    """A compromised-account incident: the evidence, the hold, the alerts and the recall jobs."""

    __tablename__ = "account_incidents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account: Mapped[str] = mapped_column(String(320), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # open, released
    mode: Mapped[str] = mapped_column(String(16), default="automatic")  # automatic, approval, alert
    held: Mapped[bool] = mapped_column(Boolean, default=True)
    opened_at: Mapped[float] = mapped_column(Float, index=True)
    first_suspect_at: Mapped[float] = mapped_column(Float, default=0.0)
    first_suspect_message: Mapped[str] = mapped_column(String(40), default="")
    trigger_message: Mapped[str] = mapped_column(String(40), default="")
    suspect_messages: Mapped[int] = mapped_column(Integer, default=0)  # sent in the window up to containment
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    alerts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # log / webhook / email outcomes
    recall_jobs: Mapped[list[str]] = mapped_column(JSON, default=list)
    released_at: Mapped[float] = mapped_column(Float, default=0.0)
    released_by: Mapped[str] = mapped_column(String(320), default="")
    note: Mapped[str] = mapped_column(Text, default="")
