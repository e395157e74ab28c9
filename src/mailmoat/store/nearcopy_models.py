"""The verdicts that teach the near-copy memory, kept in the store so that every node reads them."""

from __future__ import annotations

from sqlalchemy import Float, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from mailmoat.store.base import Base


class NearCopyVerdictRow(Base):
    """A recalled message to hold near copies of, or a released one whose look-alikes are no longer
    held; appended in order, and read by every node's analyzer from the last id it has seen."""

    __tablename__ = "near_copy_verdicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), index=True)  # the message's id in the store
    label: Mapped[str] = mapped_column(String(16))  # "phish", "spam" or "ham"
    sketch: Mapped[bytes] = mapped_column(LargeBinary)  # nearcopy.K little-endian uint64
    at: Mapped[float] = mapped_column(Float)
