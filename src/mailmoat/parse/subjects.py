"""Subjects compared as people see them: without the "FW:"/"Re:"/"转发:" a mail client puts before them and the tags gateways add."""

from __future__ import annotations

import re

# What mail clients put before a forwarded or replied subject, and the tags gateways put there
# ("[SUSPICIOUS]", policy.subject_prefix; "[EXTERNAL]", "[外部邮件]").
_PREFIX = re.compile(r"^\s*(?:(?:fw|fwd|tr|wg|rv|re|aw|sv|vs|转发|轉寄|回复|答复|回覆)\s*[:：]\s*|[\[【][^\]】]{1,40}[\]】]\s*)+", re.I)


def bare_subject(subject: str) -> str:
    """A subject without the FW:/Re:/转发: a client puts before it and the tags before that, folded for comparison."""
    return " ".join(_PREFIX.sub("", subject or "").split()).casefold()
