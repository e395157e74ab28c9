"""The small protocol every mailbox backend implements, and the records it exchanges with the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


def vault_file(vault: Path, tracking_id: str) -> Path:
    """A free file in the recall vault for a deleted copy: a copy recalled from two folders keeps both."""
    keep = vault / f"{tracking_id}.eml"
    n = 1
    while keep.exists():
        keep, n = vault / f"{tracking_id}.{n}.eml", n + 1
    return keep


@dataclass
class CopyRef:
    """One delivered copy as the engine knows it (restore also passes where it was put)."""

    tracking_id: str
    mailbox: str  # backend login / mailbox name
    header_message_id: str = ""
    folder: str = ""  # original folder (restore)
    flags: list[str] = field(default_factory=list)
    internal_date: float = 0.0
    location: str = ""  # where the backend put it (restore)


@dataclass
class CopyResult:
    tracking_id: str
    # recalled, not_found, already_gone, failed, restored, present, absent
    state: str
    folder: str = ""
    flags: list[str] = field(default_factory=list)
    internal_date: float = 0.0
    location: str = ""
    reason: str = ""
    # Set by backends that already proved, in the same session, that no visible folder holds
    # the copy any more; the engine then skips its separate verify pass for it.
    verified: bool = False


class MailboxBackend(Protocol):
    name: str

    async def recall(self, copies: list[CopyRef], mode: str) -> list[CopyResult]:
        """Find each copy in any folder (tracking header first, Message-ID as fallback) and hide or delete it.

        Results: recalled (with folder, flags, internal date, location), already_gone (it is in the
        hidden folder already), not_found, or failed (with reason). Must not notify the user.
        """
        ...

    async def verify(self, copies: list[CopyRef]) -> list[CopyResult]:
        """For recalled copies: 'absent' when no user-visible folder holds it any more, else 'present'."""
        ...

    async def restore(self, copies: list[CopyRef]) -> list[CopyResult]:
        """Put each copy back into its original folder with its flags and internal date: restored/failed."""
        ...

    async def close(self) -> None: ...
