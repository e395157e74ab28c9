"""Text from mail as a digest shows it: one honest line that no mail client turns into a link."""

from __future__ import annotations

import re

MAX_SUBJECT = 150
# Control, line-break and bidi-override characters: a subject must show as one honest line.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,15}):/+")
# Schemes a client links without "//" (javascript:alert(1), data:text/html,...).
_BARE_SCHEME = re.compile(r"(?i)\b(javascript|vbscript|data|mailto|tel|sms|file):(?!\[)")
_WWW = re.compile(r"(?i)\b(www)\.")


def shown(text: str, limit: int = MAX_SUBJECT) -> str:
    """Text from mail as one line a reader can trust: no control or bidi characters, bounded, and
    no address a mail client would turn into a link (a subject must not pose as a release link)."""
    t = _UNSAFE.sub(" ", text).strip()
    t = _SCHEME.sub(lambda m: m.group(1) + "[:]//", t)
    t = _BARE_SCHEME.sub(lambda m: m.group(1) + "[:]", t)
    t = _WWW.sub(lambda m: m.group(1) + "[.]", t)
    return t if len(t) <= limit else t[: limit - 1] + "…"
