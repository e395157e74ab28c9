"""Credential harvesting in a message's HTML body: password inputs and forms that submit to a web site.

HTML and SVG attachments (scripts, smuggling, redirects) are inspected by the attachment analyzer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser

MAX_HTML = 2 * 1024 * 1024
_REMOTE = re.compile(r"^(?:https?:)?//", re.I)
# HTML tag names are read literally (no entities, no escapes), so a document without this text has
# no input or form element and needs no parse.
_FORM_TAG = re.compile(r"<(?:input|form)", re.I)


@dataclass(frozen=True)
class HtmlIssue:
    """One credential-harvesting trait found in an HTML document, with what shows it."""

    kind: str  # "password" or "external-form"
    detail: str
    url: str = ""


def inspect_html(html: str) -> list[HtmlIssue]:
    """Password inputs and forms posting to a web site in one HTML document."""
    text = html[:MAX_HTML]
    if not _FORM_TAG.search(text):  # an input or form element always starts with one of these tags
        return []
    try:
        tree = LexborHTMLParser(text)
    except Exception:  # the parser rejects very few inputs; a bad one is simply not inspected
        return []
    issues: list[HtmlIssue] = []
    for node in tree.css("input"):
        if (node.attributes.get("type") or "").strip().lower() == "password":
            name = node.attributes.get("name") or node.attributes.get("id") or ""
            issues.append(HtmlIssue("password", f"password input field{f' {name!r}' if name else ''}"))
            break
    for form in tree.css("form"):
        action = (form.attributes.get("action") or "").strip()
        method = (form.attributes.get("method") or "get").strip().upper()
        # GET forms in mail are search boxes; credential traps post (or carry a password field).
        if method != "POST" and not any((n.attributes.get("type") or "").lower() == "password" for n in form.css("input")):
            continue
        if _REMOTE.match(action):
            url = "https:" + action if action.startswith("//") else action
            issues.append(HtmlIssue("external-form", f"form submits ({method}) to {action[:200]}", url=url))
    return issues
