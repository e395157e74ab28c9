"""Mailbox backends that find, hide, delete and restore delivered copies (one module each)."""

from __future__ import annotations

from mailmoat.config import Settings
from mailmoat.recall.backends.base import CopyRef, CopyResult, MailboxBackend


def get_backend(settings: Settings, name: str | None = None) -> MailboxBackend:
    """The configured backend (or the one named)."""
    which = name or settings.recall.backend
    if which == "maildir":
        from mailmoat.recall.backends.maildir import MaildirBackend

        return MaildirBackend(settings)
    if which == "imap":
        from mailmoat.recall.backends.imap import ImapBackend

        imap: MailboxBackend = ImapBackend(settings)
        return imap
    if which == "doveadm":
        from mailmoat.recall.backends.doveadm import DoveadmBackend

        doveadm: MailboxBackend = DoveadmBackend(settings)
        return doveadm
    raise ValueError(f"unknown recall backend {which!r} (maildir, imap, doveadm)")


__all__ = ["CopyRef", "CopyResult", "MailboxBackend", "get_backend"]
