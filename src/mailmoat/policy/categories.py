"""Threat categories of a judged message (phishing, spam, malware, ...), from its findings' groups."""

from __future__ import annotations

from typing import Any

CATEGORIES = ("phishing", "spam", "malware", "qr", "impersonation", "internal")
OTHER = "other"
_GROUPS = {
    "malware": "malware", "qr": "qr", "impersonation": "impersonation", "bec": "impersonation",
    "phishing": "phishing", "url": "phishing", "intel": "phishing", "bayes": "spam", "content": "spam", "spam": "spam",
    "campaign": "phishing",
}
_SYMBOLS = {"ATTACH_BLOCKED_TYPE": "malware", "ARCHIVE_BOMB": "malware", "HTML_ATTACH_CREDENTIAL_FORM": "phishing"}


def categories(direction: str, action: str, status: str, findings: list[dict[str, Any]]) -> set[str]:
    """The threat categories of one message (empty when it was delivered as clean); "other" when no
    finding that counted names one."""
    if action == "deliver" and status != "condemned":
        return set()
    out: set[str] = set()
    for f in findings:
        if float(f.get("score") or 0.0) <= 0:
            continue
        sym = str(f.get("symbol", ""))
        cat = _SYMBOLS.get(sym) or _GROUPS.get(str(f.get("group", "")))
        if cat is None and sym.startswith(("CLAMAV", "YARA")):
            cat = "malware"
        if cat:
            out.add(cat)
    if direction == "internal":
        out.add("internal")
    return out or {OTHER}
